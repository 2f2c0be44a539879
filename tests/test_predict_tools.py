"""Grad-CAM, the doubts shown beside an answer, and the picture changes of "try to fool it"."""
import numpy as np
from PIL import Image
import pytest

from cifar_core import data, decoding, inference, perturbations
from cifar_core.perturbations import Changes


@pytest.fixture(scope="module")
def model():
    return inference.load_model()


def test_heatmap_is_a_32x32_map_that_depends_on_the_class(model):
    image = data.load_sample().x_test[0]
    maps = [inference.heatmap(model, image, c) for c in range(10)]
    for heat in maps:
        assert heat.shape == (32, 32) and heat.min() >= 0 and heat.max() <= 1.0 + 1e-6
    assert max(np.abs(maps[0] - m).mean() for m in maps[1:]) > 0.01
    predicted = int(inference.predict(model, image)[0].argmax())
    assert maps[predicted].max() > 0.5   # the answer's own map has something to show


def test_doubts_in_plain_words():
    photo = data.load_sample().x_test[3]
    assert inference.doubts(photo, np.eye(10)[3] * 0.9 + 0.01) == []
    unsure = inference.doubts(photo, np.full(10, 0.1))
    assert len(unsure) == 1 and unsure[0].startswith("The model is unsure")
    text = np.full((32, 32, 3), 255, np.uint8)
    text[10:12, 4:28] = 0
    assert any("drawing, text or a screenshot" in note for note in inference.doubts(text, np.eye(10)[0]))


def test_changes_do_what_their_names_say():
    image = data.load_sample().x_test[7]
    assert np.array_equal(perturbations.apply(image, Changes()), image)
    assert np.array_equal(perturbations.apply(image, Changes(mirror=True)), image[:, ::-1])
    assert perturbations.apply(image, Changes(brightness=0.0)).max() == 0
    flat = perturbations.apply(image, Changes(contrast=0.0))
    assert flat.std(axis=(0, 1)).max() < 1
    patched = perturbations.apply(image, Changes(patch=(0.25, 0.25, 0.25)))
    assert (patched[4:12, 4:12] == 128).all() and np.array_equal(patched[16:, 16:], image[16:, 16:])
    blurred = perturbations.apply(image, Changes(blur=2.0)).astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(image.astype(float), axis=1)).mean()
    noisy = perturbations.apply(image, Changes(noise=40))
    assert 20 < (noisy.astype(float) - image).std() < 45
    # The smallest square is a pixel, not none: 0.01 of 32 rounded to nothing, yet the answer showed as changed.
    speck = perturbations.apply(image, Changes(patch=(0.5, 0.5, 0.01)))
    assert (speck != image).any(axis=2).sum() <= 1 and (speck[16, 16] == 128).all()
    edge = perturbations.apply(image, Changes(patch=(1.0, 1.0, 0.03)))            # at the corner, still on it
    assert (edge != image).any(axis=2).sum() == 1 and (edge[31, 31] == 128).all()
    assert perturbations.changes_nothing(Changes(patch=(0.1, 0.9, 0.0)))        # a square of no size, moved
    assert not perturbations.changes_nothing(Changes(patch=(0.1, 0.9, 0.01)))
    turned = perturbations.apply(image, Changes(rotation=90))
    assert np.abs(turned.astype(float) - np.rot90(image).astype(float)).mean() < 25


def test_the_batch_tables_sure_is_rounded_once_as_the_answer_above_the_bars(model):
    """A photo answered 50.45% sure: rounded to a tenth first, the table showed 51% beside "50% sure"."""
    import io

    from app_pages import predict_parts

    class Upload(io.BytesIO):
        name = "photo.png"

    rng = np.random.default_rng(3)
    for _ in range(5):
        buffer = Upload()
        Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)).resize((480, 640)).save(buffer, "PNG")
        image = decoding.load_image(buffer.getvalue())
        probabilities = inference.predict_views(model, inference.views(image), image.size)
        row = predict_parts._row(buffer, predict_parts._decoded(buffer), model)
        assert row["sure"] == 100 * float(probabilities.max())
        assert f"{row['sure']:.0f}%" == f"{probabilities.max():.0%}"   # the table's format, the answer's format


def test_a_drawing_is_said_to_be_one_once_before_any_other_doubt():
    from cifar_core import explain
    text = np.full((32, 32, 3), 255, np.uint8)
    text[10:12, 4:28] = 0                                  # looks like a drawing, and is one
    notes = explain.doubts(text, np.full(10, 0.1), (320, 320), drawing=True)
    assert notes[0] == explain.ON_A_DRAWING and not any("drawing, text or a screenshot" in n for n in notes)
    assert notes[1].startswith("The model is unsure")
    assert explain.ON_A_DRAWING not in explain.doubts(text, np.full(10, 0.1), (320, 320))


def test_the_batch_tables_picked_classes_are_taken_only_for_its_own_rows():
    """The data editor's edits come as a browser (or a script) sends them: a row past the end would be a
    new row of the table, on every rerun."""
    from app_pages.predict_parts import picked_classes
    edited = {"0": {"true class": "cat"}, "2": {"true class": "ship"}, "3": {"true class": "dog"},
              "99999": {"true class": "dog"}, "-1": {"true class": "dog"}, "1": {"true class": "unicorn"},
              "x": {"true class": "dog"}, "1.0": {"true class": "dog"}, **{str(i): "cat" for i in range(4, 9)}}
    assert picked_classes(edited, 3) == {0: "cat", 2: "ship"}
    assert picked_classes({}, 3) == {}


def test_the_batch_table_takes_only_edits_a_person_can_make():
    """Streamlit applies a data editor's sent state before the page sees it, rows added to a fixed table
    included: 4,000 empty rows were 45 s of the server's CPU on every rerun."""
    from app_pages.predict_parts import person_could_send
    assert person_could_send({"edited_rows": {}, "added_rows": [], "deleted_rows": []}, 3)
    assert person_could_send({"edited_rows": {"0": {"true class": "cat"}, "2": {"true class": None}}}, 3)
    for sent in ({"edited_rows": {}, "added_rows": [{}] * 8000, "deleted_rows": []},
                 {"edited_rows": {}, "added_rows": [], "deleted_rows": [0]},
                 {"edited_rows": {"3": {"true class": "cat"}}}, {"edited_rows": {"-1": {"true class": "cat"}}},
                 {"edited_rows": {"0": {"answer": "cat"}}}, {"edited_rows": {"0": {"true class": "unicorn"}}},
                 {"edited_rows": {"0": "cat"}}, {"edited_rows": ["0"]}, "x", None):
        assert not person_could_send(sent, 3), sent


def test_a_batch_table_sent_what_no_person_could_send_starts_again_under_a_new_key():
    from streamlit.testing.v1 import AppTest

    def script():
        import streamlit as st

        from app_pages import predict_parts
        st.session_state["drawn_under"] = predict_parts.editor_key("predict_batch_files", 2)

    at = AppTest.from_function(script)
    at.run()
    assert at.session_state["drawn_under"] == "predict_batch_files_0"
    at.session_state["predict_batch_files_0"] = {"edited_rows": {"1": {"true class": "dog"}}}
    at.run()
    assert at.session_state["drawn_under"] == "predict_batch_files_0"      # a person's pick: kept
    at.session_state["predict_batch_files_0"] = {"edited_rows": {}, "added_rows": [{}] * 8000}
    at.run()
    fresh = at.session_state["drawn_under"]
    assert fresh.startswith("predict_batch_files_") and fresh != "predict_batch_files_0"   # a script's rows: never applied
    # Not one a script can foresee: a counted "_1" let it send its rows for the next key in the same message.
    assert fresh != "predict_batch_files_1"
    at.session_state[fresh] = {"edited_rows": {}, "added_rows": [{}]}
    at.run()
    assert at.session_state["drawn_under"] not in (fresh, "predict_batch_files_2")


def test_each_upload_is_answered_once_however_often_a_script_names_it():
    """One upload named 300 times in the uploader's state was read and answered 300 times (4.1 s), a
    hundred thousand times in a 16 MB message."""
    from types import SimpleNamespace

    from app_pages import predict_parts
    photo, other = SimpleNamespace(file_id="a"), SimpleNamespace(file_id="b")
    assert predict_parts.each_once([photo] * 300 + [other], 100) == [photo, other]
    assert len(predict_parts.each_once([SimpleNamespace(file_id=str(i)) for i in range(500)], 100)) == 100


def test_the_batch_table_never_prints_an_answer_short_of_certain_as_certain():
    """A photo 99.7% sure read "100%" in the table, beside "over 99%" above the bars; the CSV keeps 99.7."""
    import pandas as pd

    from app_pages import predict_parts
    table = pd.DataFrame([{"file": "a.png", "sure": 99.7, "cat (%)": 99.97, "dog (%)": 0.03},
                          {"file": "b.png", "sure": None, "cat (%)": None, "dog (%)": None}])
    shown = predict_parts.shown(table)
    assert f"{shown.loc[0, 'sure']:.0f}%" == "99%" and f"{shown.loc[0, 'cat (%)']:.1f}%" == "99.9%"
    assert f"{shown.loc[0, 'dog (%)']:.1f}%" == "0.1%" and shown.loc[1].isna().sum() == 3
    assert table.loc[0, "sure"] == 99.7      # the figures themselves
    # The CSV to a tenth, and never certain either: 99.97 was "100.0", 0.03 "0.0".
    csv = predict_parts.as_csv(table.assign(picture=None))
    assert csv.splitlines()[1] == "a.png,99.7,99.9,0.1" and "100.0" not in csv


def test_a_batch_row_says_when_the_model_is_torn_as_the_single_answer_does(model, monkeypatch):
    import io

    from app_pages import predict_parts

    class Upload(io.BytesIO):
        name = "torn.png"
    upload = Upload()
    Image.fromarray(data.load_sample().x_test[3]).resize((320, 320)).save(upload, "PNG")
    torn = np.array([0.3, 0.29] + [0.41 / 8] * 8, np.float32)
    monkeypatch.setattr(inference, "predict_views", lambda *a, **k: torn)
    row = predict_parts._row(upload, predict_parts._decoded(upload), model)
    assert row["problem"].startswith("The model is unsure: it is torn between airplane (30%) and automobile (29%)")


def test_a_drawing_of_a_million_shapes_is_not_a_persons():
    """A script's canvas value of a million shapes stayed in the session while the canvas was on the page
    (430 MB at 16 MB, the reader's): the page draws a fresh canvas instead."""
    from types import SimpleNamespace

    from app_pages import predict_parts
    stroke = {"type": "path", "path": [["M", 1, 2], ["L", 3, 4]]}
    assert predict_parts.drawn_by_a_person(SimpleNamespace(json_data={"objects": [stroke] * 300}))
    assert predict_parts.drawn_by_a_person(SimpleNamespace(json_data=None)) and predict_parts.drawn_by_a_person(None)
    assert not predict_parts.drawn_by_a_person(SimpleNamespace(json_data={"objects": [{}] * 1_000_000}))
    assert not predict_parts.drawn_by_a_person(SimpleNamespace(json_data={"objects": "x"}))


def test_a_tiny_picture_is_never_told_its_sure_holds_and_its_batch_row_says_why(model):
    """An 8 x 8 upload got "cat, 98% sure", "of the answers this model gives 98% sure ... about 98% are
    right" and, below, "the answer is close to a guess"; its batch row showed 98% with no word at all."""
    import io

    from app_pages import predict_parts
    from cifar_core import explain

    class Upload(io.BytesIO):
        name = "tiny.png"
    upload = Upload()
    Image.fromarray(data.load_sample().x_test[3][::4, ::4]).save(upload, "PNG")     # 8 x 8
    row = predict_parts._row(upload, predict_parts._decoded(upload), model)
    assert row["answer"] and row["problem"].startswith("This picture is only 8 x 8 pixels")
    photo = data.load_sample().x_test[3]
    assert explain.unlike_a_photo(photo, (8, 8)) and not explain.unlike_a_photo(photo, (500, 400))


def test_safari_on_a_mac_is_not_offered_heic_so_it_sends_a_jpeg_of_it():
    """Safari on a Mac sends a HEIC as it is when the uploader offers HEIC, and a JPEG it makes of it when
    not: 0.03 s of the server's CPU at an eighth, not 0.2 s from its preview (0.9 s without one).
    Browsers that cannot make one are offered HEIC, which they would otherwise grey out."""
    from app_pages import predict_parts
    safari = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.6 Safari/605.1.15")
    chrome_mac = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Safari/537.36")
    edge_windows = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0")
    firefox_mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0"
    assert not {"heic", "heif", "hif"} & set(predict_parts.upload_formats(safari))
    assert predict_parts.upload_formats(safari)[0] == "jpg"          # Safari makes the first it can
    assert {"jfif", "jpe"} <= set(predict_parts.upload_formats(safari))
    for browser in (chrome_mac, edge_windows, firefox_mac, ""):
        assert {"heic", "heif", "hif", "jpg", "jfif", "avif"} <= set(predict_parts.upload_formats(browser)), browser
