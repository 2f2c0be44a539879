"""What the Predict page's reruns cost the server: a photo is decoded once per upload, and a heat map
takes milliseconds."""

import numpy as np

from cifar_core import decoding, evaluation, explain, inference


def _photo_script():
    """The Predict page's upload step on a 1200 x 900 JPEG, as an app of its own (AppTest cannot upload)."""
    import io
    from types import SimpleNamespace

    import numpy as np
    import streamlit as st
    from PIL import Image

    from app_pages import predict_parts
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (900, 1200, 3), np.uint8)).save(buffer, "JPEG")
    picture = predict_parts.upload(SimpleNamespace(file_id=st.session_state.get("file_id", "first"),
                                                   name="photo.jpg", getvalue=buffer.getvalue))
    st.write(f"read {picture.small.shape} from {picture.original.size}")
    st.slider("Anything else on the page", 0, 10, key="other")


def test_a_rerun_after_the_answer_does_not_decode_the_photo_again(monkeypatch):
    from streamlit.testing.v1 import AppTest
    decoded = []
    real = decoding.load_image
    monkeypatch.setattr(decoding, "load_image", lambda *a, **k: decoded.append(1) or real(*a, **k))
    at = AppTest.from_function(_photo_script, default_timeout=60)
    at.run()
    assert not at.exception and at.markdown[0].value == "read (32, 32, 3) from (600, 450)"   # decoded at half size
    at.slider(key="other").set_value(3).run()
    at.run()
    assert len(decoded) == 1                    # two reruns, one decoding
    at.session_state["file_id"] = "second"     # a new upload is read
    at.run()
    assert not at.exception and len(decoded) == 2


def _drawing_script():
    """The Predict page's drawing step, on what a browser (or a script in its place) sends as the canvas."""
    import io
    from types import SimpleNamespace

    import numpy as np
    import streamlit as st
    from PIL import Image

    from app_pages import predict_parts
    pixels = np.zeros((320, 320, 4), np.uint8)
    pixels[100:200, 50:250] = (200, 30, 30, 255)     # a red stroke; the rest transparent
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    raw = buffer.getvalue() + b"\0" * st.session_state.get("padding", 0)   # PNG readers ignore what follows
    picture = predict_parts.drawn(SimpleNamespace(image_bytes=raw), "#8fc3ea")
    st.write("nothing" if picture is None else f"read {picture.small.shape}")
    st.slider("Anything else on the page", 0, 10, key="other")


def test_a_drawing_is_read_once_and_one_larger_than_a_canvas_makes_is_refused(monkeypatch):
    from streamlit.testing.v1 import AppTest
    decoded = []
    real = decoding.load_image
    monkeypatch.setattr(decoding, "load_image", lambda *a, **k: decoded.append(1) or real(*a, **k))
    at = AppTest.from_function(_drawing_script, default_timeout=60)
    at.run()
    assert not at.exception and at.markdown[0].value == "read (32, 32, 3)"
    at.slider(key="other").set_value(3).run()
    assert len(decoded) == 1                    # two runs, one decoding
    at.session_state["padding"] = 3 << 20      # 3 MB: no 320 x 320 canvas sends that
    at.run()
    assert not at.exception and len(decoded) == 1 and at.markdown[0].value == "nothing"
    assert at.error[0].value == "The drawing is larger than the canvas can make, so it was not read."


def test_a_drawing_is_only_what_a_canvas_sends():
    """A canvas sends a PNG of its own size (times a screen's pixel ratio): a script may send any file in its
    place, and a run-length BMP of 2 MB is 0.4 s of the server's CPU, with every new one."""
    import io

    from PIL import Image

    from app_pages.predict_parts import canvas_png

    def saved(size, kind):
        buffer = io.BytesIO()
        Image.new("RGBA" if kind == "PNG" else "RGB", size).save(buffer, kind)
        return buffer.getvalue()
    assert canvas_png(saved((320, 320), "PNG")) and canvas_png(saved((960, 960), "PNG"))   # a phone: 3 to 1
    assert not canvas_png(saved((4000, 4000), "PNG"))          # 56 KB, 16 megapixels to decode
    assert not canvas_png(saved((320, 320), "BMP")) and not canvas_png(saved((320, 320), "GIF"))
    assert not canvas_png(b"") and not canvas_png(b"\x89PNG\r\n\x1a\n")


def _batch_script():
    """The Predict page's batch table for `count` uploaded photos (AppTest cannot upload)."""
    import io
    from types import SimpleNamespace

    import numpy as np
    import streamlit as st
    from PIL import Image

    from app_pages import predict_parts

    def photo(seed):
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (300, 400, 3), np.uint8)).save(buffer, "JPEG")
        return SimpleNamespace(file_id=f"upload{seed}", name=f"photo{seed}.jpg", size=len(buffer.getvalue()),
                               getvalue=buffer.getvalue)
    predict_parts.batch([photo(seed) for seed in range(st.session_state.get("count", 3))])
    st.slider("Anything else on the page", 0, 10, key="other")


def test_the_batch_table_reads_and_answers_each_upload_once_per_model(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from app_pages import common
    decoded = []
    real_load = decoding.load_image
    monkeypatch.setattr(decoding, "load_image", lambda *a, **k: decoded.append(1) or real_load(*a, **k))
    at = AppTest.from_function(_batch_script, default_timeout=120)
    at.run()
    assert not at.exception and len(decoded) == 3
    at.slider(key="other").set_value(3).run()
    assert not at.exception and len(decoded) == 3        # a rerun reads nothing again
    at.session_state["count"] = 4
    at.run()
    assert not at.exception and len(decoded) == 4        # one more upload: only it is read
    answered = []
    real_answer = inference.predict_views
    monkeypatch.setattr(inference, "predict_views", lambda *a, **k: answered.append(1) or real_answer(*a, **k))
    monkeypatch.setattr(common, "model_id", lambda choice: (str(choice.path), 0.0))   # another version of the model
    at.run()
    assert not at.exception and len(answered) == 4      # its answers are its own
    assert len(decoded) == 4                             # of the same pictures, not read again


def test_a_broken_upload_keeps_its_sentence_on_every_rerun(monkeypatch):
    from streamlit.testing.v1 import AppTest

    def script():
        from types import SimpleNamespace

        import streamlit as st

        from app_pages import predict_parts
        notes = SimpleNamespace(file_id="x", name="notes.jpg", getvalue=lambda: b"not a picture")
        picture = predict_parts.upload(notes)
        st.write(f"picture: {picture}")
    at = AppTest.from_function(script, default_timeout=60)
    for _ in range(2):
        at.run()
        assert not at.exception and [e.value for e in at.error] == [
            r"notes\.jpg: This file is not a picture in a format we can read (try JPEG, PNG, WebP, AVIF, HEIC, GIF, BMP or "
            "TIFF; SVG is not supported)."]


def test_a_heat_map_is_compiled_once_per_model_not_run_eagerly():
    """Grad-CAM of the bundled model, picture and mirror image: ~14 ms of CPU compiled, ~170 ms when it
    ran eagerly under a tape (measured on the 2-core server this app is sized for; timed by
    benchmarks/inside.py). Every picture and class goes through the one trace."""
    model = inference.load_model()
    pictures = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), np.uint8)
    maps = [explain.gradcam(model, picture, index) for index, picture in enumerate(pictures)]
    assert explain._probe(model).experimental_get_tracing_count() == 1
    assert all(m.shape == (32, 32) and 0 <= m.min() <= m.max() <= 1 for m in maps)


def _two_minded_photo() -> bytes:
    """An 800 x 480 JPEG whose two views disagree: a ship, with a cat filling the closer square."""
    import io

    from PIL import Image

    from cifar_core import data
    sample = data.load_sample()
    cat, ship = (sample.x_test[int(np.flatnonzero(sample.y_test == c)[0])] for c in (3, 8))
    photo = Image.fromarray(ship).resize((800, 480), Image.Resampling.BICUBIC)
    photo.paste(Image.fromarray(cat).resize((384, 384), Image.Resampling.BICUBIC), (208, 48))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _fooling_script():
    """The Predict page's answer and fooling sliders for that photo."""
    from app_pages import predict_parts
    from test_predict_rerun_cost import _two_minded_photo
    picture = predict_parts.load(_two_minded_photo(), "photo")
    predict_parts.answer(picture.small, "t", picture.original, heat=False, views=picture.views)
    predict_parts.fool(picture.small, "t", picture.original.size, picture.views)


def test_a_photo_changed_to_fool_the_model_is_answered_from_every_view():
    from streamlit.testing.v1 import AppTest

    from cifar_core import perturbations
    from cifar_core.data import CLASS_NAMES
    at = AppTest.from_function(_fooling_script, default_timeout=120)
    at.run()
    at.slider(key="t_brightness").set_value(1.05).run()
    assert not at.exception, [e.value for e in at.exception]
    image = decoding.load_image(_two_minded_photo())
    views = inference.views(image)
    changed = np.stack([perturbations.apply(view, perturbations.Changes(brightness=1.05)) for view in views])
    model = inference.load_model()

    def shown(probabilities):
        best = int(probabilities.argmax())
        return f"{CLASS_NAMES[best]}, {evaluation.sure(probabilities[best])} sure"
    both, first_alone = (shown(inference.predict_views(model, v, image.size)) for v in (changed, changed[:1]))
    assert both != first_alone, "the photo's views must disagree for this test to tell them apart"
    assert at.metric[1].value == both


def _heat_map_script():
    """The Predict page's answer and heat map for the photo whose two views disagree."""
    from app_pages import predict_parts
    from test_predict_rerun_cost import _two_minded_photo
    picture = predict_parts.load(_two_minded_photo(), "photo")
    predict_parts.answer(picture.small, "t", picture.original, heat=True, views=picture.views)


def test_each_square_of_a_photo_has_its_own_heat_map():
    """The answer averages a photo's two squares, so the heat map can be of either, and says which."""
    import hashlib

    from streamlit.testing.v1 import AppTest
    at = AppTest.from_function(_heat_map_script, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    views = inference.views(decoding.load_image(_two_minded_photo()))
    digests = [hashlib.sha1(np.ascontiguousarray(view).tobytes()).hexdigest() for view in views]

    def mapped():
        return {digest for _, digest, _ in at.session_state["predict_heat_cache"]}
    chooser = at.button_group(key="t_heat_square")
    assert chooser.options == ["The red frame", "The closer square"] and mapped() == {digests[0]}
    assert any("average of both squares" in c.value for c in at.caption)
    chooser.set_value("The closer square").run()
    assert not at.exception and mapped() == set(digests)
    captions = [picture.caption for element in at.get("image") for picture in element.proto.imgs]
    assert "The closer square" in captions and "The picture" not in captions


def test_a_long_thin_picture_is_kept_to_show_at_a_bounded_size_and_answered_as_loaded():
    """A strip of a few KB loads 4,096 pixels long (6 MB), and the page kept that for its visitor's whole
    session: the copy kept to show is at most SHOWN_LONGEST long, while the model's views and the size
    that decides how a photo is answered come from the picture as loaded."""
    import io

    from PIL import Image

    from app_pages import predict_parts
    strip = Image.new("RGB", (511, 4096), (200, 30, 30))
    strip.paste((20, 20, 220), (0, 1500, 511, 2500))
    buffer = io.BytesIO()
    strip.save(buffer, "PNG")
    assert len(buffer.getvalue()) < 100_000
    picture = predict_parts._read(buffer.getvalue(), "strip", (255, 255, 255))
    loaded = decoding.load_image(buffer.getvalue())
    assert max(loaded.size) > 3 * predict_parts.SHOWN_LONGEST           # what the page kept before
    assert max(picture.original.size) <= predict_parts.SHOWN_LONGEST
    assert picture.size == loaded.size
    assert np.array_equal(picture.views, inference.views(loaded))


def _strip_script():
    """The Predict page's answer for a plain strip of the size in the session (AppTest cannot upload)."""
    import io

    import streamlit as st
    from PIL import Image

    from app_pages import predict_parts
    strip = Image.linear_gradient("L").convert("RGB").resize(st.session_state["size"])
    buffer = io.BytesIO()
    strip.save(buffer, "PNG")
    picture = predict_parts.load(buffer.getvalue(), "strip")
    predict_parts.answer(picture.small, "s", picture.original, heat=False, views=picture.views, size=picture.size)


def test_a_strip_a_pixel_or_two_across_is_answered_and_a_long_one_framed_as_answered():
    """A web page's 1 x 600 gradient strip stopped the page (the frame drawn on the copy shown was under a
    pixel across); a 160 x 4096 one, answered from two squares, was framed with one, as the copy shown (40
    pixels across) has only one."""
    from streamlit.testing.v1 import AppTest
    for size in ((1, 600), (4096, 1), (2, 3000)):
        at = AppTest.from_function(_strip_script, default_timeout=120)
        at.session_state["size"] = size
        at.run()
        assert not at.exception, (size, [e.value for e in at.exception])
        assert at.metric[0].label == "The model says"
    at = AppTest.from_function(_strip_script, default_timeout=120)
    at.session_state["size"] = (160, 4096)
    at.run()
    assert not at.exception
    captions = [picture.caption for element in at.get("image") for picture in element.proto.imgs]
    assert any("and the closer square (thin frame), and averages its two answers" in c for c in captions)


def _another_test_picture_script():
    """The Predict page's answer and heat map for the test picture the session names."""
    import streamlit as st

    from app_pages import predict_parts
    from cifar_core import data
    predict_parts.answer(data.load_sample().x_test[st.session_state["index"]], "t", heat=True)


def test_a_new_picture_opens_on_the_heat_map_of_its_own_answer():
    """The class box kept the first picture's answer (a box with a key keeps its value whatever its index
    says): a truck answered 99% sure showed the heat map for "ship", the first picture's answer. A class
    chosen for one picture stays while that picture is shown."""
    from streamlit.testing.v1 import AppTest

    from cifar_core import data
    at = AppTest.from_function(_another_test_picture_script, default_timeout=120)
    answers = inference.predict(inference.load_model(), data.load_sample().x_test[:40]).argmax(axis=1)
    first, other = 0, int(np.flatnonzero(answers != answers[0])[0])
    at.session_state["index"] = first
    at.run()
    assert at.selectbox(key="t_heat_class").value == data.CLASS_NAMES[answers[first]]
    at.selectbox(key="t_heat_class").select("frog").run()
    assert not at.exception and at.selectbox(key="t_heat_class").value == "frog"
    at.run()
    assert at.selectbox(key="t_heat_class").value == "frog"      # chosen for this picture: kept
    at.session_state["index"] = other
    at.run()
    assert not at.exception and at.metric[0].value.startswith(data.CLASS_NAMES[answers[other]])
    assert at.selectbox(key="t_heat_class").value == data.CLASS_NAMES[answers[other]]
    # The map turned off and on: its box, not drawn a moment, lost its value; it opens on the answer, not
    # on the first class in the list.
    at.toggle(key="t_heat").set_value(False).run()
    at.toggle(key="t_heat").set_value(True).run()
    assert at.selectbox(key="t_heat_class").value == data.CLASS_NAMES[answers[other]]


def _batch_with_a_broken_file():
    import io
    from types import SimpleNamespace

    import streamlit as st
    from PIL import Image

    from app_pages import predict_parts
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    good = SimpleNamespace(file_id="good", name="red.png", size=len(buffer.getvalue()), getvalue=buffer.getvalue)
    broken = SimpleNamespace(file_id="broken", name="notes.png", size=13, getvalue=lambda: b"not a picture")
    predict_parts.batch([good, broken], st.session_state.get("looked_at"))


def test_a_broken_upload_looked_at_below_the_table_is_said_there_not_twice():
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_function(_batch_with_a_broken_file, default_timeout=120)
    at.session_state["looked_at"] = "good"
    at.run()
    assert not at.exception and [e.value.split(":")[0] for e in at.error] == [r"notes\.png"]   # as it is, not Markdown
    at.session_state["looked_at"] = "broken"       # answered below the table, with its sentence there
    at.run()
    assert not at.exception and not at.error
