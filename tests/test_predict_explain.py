"""What the Predict page explains: Grad-CAM against its definition, the heat colours and key, the crop
outline, the doubts for flat, tiny and torn answers, and the upload limit's sentence."""
import io

import numpy as np
from PIL import Image

from cifar_core import charts, data, decoding, explain, inference


def cam_model(seed: int = 0):
    """conv (linear) -> BatchNorm with some negative scales -> ReLU -> global average -> logits -> softmax:
    Grad-CAM of this net has a closed form (CAM, Zhou et al. 2016), and a raw-convolution reading differs."""
    import keras
    from keras import layers
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(6, 3, padding="same", name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    maps = layers.Activation("relu", name="maps")(x)
    pooled = layers.GlobalAveragePooling2D()(maps)
    logits = layers.Dense(10, name="logits")(pooled)
    model = keras.Model(inputs, layers.Activation("softmax", name="probabilities")(logits))
    rng = np.random.default_rng(seed)
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    model.get_layer("bn").set_weights([np.array([1, -1, 1, -2, 0.5, -1], np.float32), beta + 0.1,
                                       mean, var])
    kernel, bias = model.get_layer("conv").get_weights()
    model.get_layer("conv").set_weights([rng.normal(0, 0.02, kernel.shape).astype(np.float32), bias])
    model.get_layer("logits").set_weights([rng.normal(0, 1, (6, 10)).astype(np.float32), np.zeros(10, np.float32)])
    return model


def test_gradcam_matches_its_definition_on_a_net_where_it_has_a_closed_form():
    import keras
    model = cam_model()
    image = (np.random.default_rng(1).uniform(0, 255, (32, 32, 3))).astype(np.uint8)
    assert explain.feature_layer(model).name == "maps"        # the rectified maps, not the raw convolution
    maps = keras.Model(model.input, model.get_layer("maps").output)(image[None].astype(np.float32))[0].numpy()
    weights = model.get_layer("logits").get_weights()[0]       # (channels, classes)
    shown = 0
    for c in range(10):
        # d logit_c / d A_k(i, j) = w_kc / (H W) everywhere: Grad-CAM is ReLU(sum_k w_kc A_k), scaled to max 1.
        reference = np.maximum(maps @ weights[:, c], 0)
        reference = reference / reference.max() if reference.max() > 0 else reference
        shown += reference.max() > 0
        heat = explain.gradcam(model, image, c, mirror=False)
        assert heat.shape == (32, 32) and heat.dtype == np.float32
        np.testing.assert_allclose(heat, reference, atol=1e-3)
    assert shown >= 3                                          # most classes have a map to compare


def test_gradcam_shows_what_the_model_used_on_real_test_pictures(real_archive):
    """Greying the quarter of a picture the heat map marks hottest must hurt the answer far more than
    greying the coldest quarter (the "deletion" check of a saliency map)."""
    model = inference.load_model()
    test = data.read(real_archive)
    pictures = test.x_test[:40]
    probabilities = inference.predict(model, pictures)
    answers = probabilities.argmax(1)
    hot, cold = [], []
    for image, answer in zip(pictures, answers):
        order = np.argsort(explain.gradcam(model, image, int(answer)).ravel(), kind="stable")
        for chosen, out in ((order[-256:], hot), (order[:256], cold)):
            changed = image.reshape(-1, 3).copy()
            changed[chosen] = image.reshape(-1, 3).mean(0)
            out.append(changed.reshape(32, 32, 3))
    rows = np.arange(len(pictures))
    drop_hot = (probabilities[rows, answers] - inference.predict(model, np.stack(hot))[rows, answers]).mean()
    drop_cold = (probabilities[rows, answers] - inference.predict(model, np.stack(cold))[rows, answers]).mean()
    assert drop_hot > 3 * drop_cold, (drop_hot, drop_cold)      # measured: 0.49 against 0.03 on 120 pictures


def test_heat_colours_run_dark_to_light_and_blend_with_the_picture():
    ramp = explain.colourise(np.linspace(0, 1, 11))
    assert tuple(ramp[0]) == (0, 0, 4) and tuple(ramp[-1]) == (252, 253, 191)    # the key's two ends
    brightness = ramp.astype(float) @ [0.299, 0.587, 0.114]
    assert (np.diff(brightness) > 0).all()                   # lighter all the way: readable in grey too
    picture = data.load_sample().x_test[3].repeat(8, 0).repeat(8, 1)
    heat = explain.enlarge(np.eye(32, dtype=np.float32), 256)
    assert np.array_equal(explain.blend(picture, heat, 0.0), picture)
    assert np.array_equal(explain.blend(picture, heat, 1.0), explain.colourise(heat))
    half = explain.blend(picture, heat, 0.5).astype(int)
    assert np.abs(half - picture).mean() > 20                # the map is plainly visible over the picture


def test_the_colour_key_is_a_chart_in_the_same_colours():
    spec = charts.heat_key(explain.HEAT_COLOURS).to_dict()
    assert spec["encoding"]["color"]["scale"]["range"] == list(explain.HEAT_COLOURS)
    assert spec["mark"]["type"] == "rect" and len(spec["data"]["values"] if "values" in spec["data"]
                                                  else next(iter(spec["datasets"].values()))) > 10


def test_what_the_model_was_shown_is_framed_on_the_photo():
    assert inference.crop_box(640, 480) == (80, 0, 560, 480)
    assert inference.crop_box(300, 500) == (0, 100, 300, 400)
    photo = Image.fromarray(np.full((480, 640, 3), (40, 160, 60), np.uint8))
    shown = explain.outline_crop(photo)
    assert shown.shape == (360, 480, 3)                          # at most 480 across, same shape

    def red(picture):
        return (picture[..., 0] > 200) & (picture[..., 1] < 80) & (picture[..., 2] < 80)
    assert red(shown)[:, :3].all() and red(shown)[:, -3:].all()   # the whole photo framed thick...
    assert red(shown)[36:324, 95:98].any(axis=1).mean() > 0.9     # ...the closer square thin (384 -> 288
    assert not red(shown)[40:320, 100:380].any()                  # across, from 96)
    assert np.array_equal(shown[180, 240], [40, 160, 60])         # inside: as it is, to the margins
    assert np.array_equal(shown[20, 20], [40, 160, 60]) and np.array_equal(shown[340, 460], [40, 160, 60])
    panorama = Image.fromarray(np.full((100, 500, 3), (40, 160, 60), np.uint8))
    ends = explain.outline_crop(panorama, (inference.whole_box(500, 100),))
    assert (255 - ends[50, 20]).mean() < 0.5 * (255 - ends[50, 250]).mean()   # a panorama's ends: washed out
    assert red(ends)[:, 95:100].any(axis=1).mean() > 0.9 and not red(ends)[10:86, 105:380].any()  # 100 -> 96


def encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_tiny_flat_picture_is_doubted_and_real_test_pictures_are_not_called_flat():
    # Said once: a red dot had three notes, each saying the answer may be none of the ten classes.
    torn = np.array([0.23, 0.10] + [0.67 / 8] * 8)
    red = decoding.load_image(encode(Image.new("RGB", (1, 1), "red")))
    [note] = explain.doubts(inference.prepare(red), torn, red.size)
    assert "only 1 x 1 pixels" in note and "may not be one of the ten classes" in note
    wall = decoding.load_image(encode(Image.new("RGB", (400, 300), "red")))
    [note] = explain.doubts(inference.prepare(wall), torn, wall.size)
    assert "flat colour" in note and "may not be one of the ten classes" in note
    sample = data.load_sample()
    confident = np.eye(10)[3] * 0.9 + 0.01
    assert not any("flat colour" in note or "This picture is only" in note
                   for image in sample.x_test for note in explain.doubts(image, confident, (32, 32)))


def test_a_torn_answer_is_called_unsure_and_a_clear_one_is_not():
    photo = data.load_sample().x_test[3]
    torn = np.array([0.38, 0.30, 0.12] + [0.2 / 7] * 7)
    [note] = explain.doubts(photo, torn, (500, 500))
    assert note.startswith("The model is unsure") and "airplane (38%)" in note and "automobile (30%)" in note
    close = np.array([0.5, 0.4] + [0.1 / 8] * 8)                  # sure enough, but only 10 points ahead
    assert explain.doubts(photo, close)[0].startswith("The model is unsure")
    assert explain.doubts(photo, np.array([0.6, 0.3] + [0.1 / 8] * 8)) == []
    # Unsure but not torn: well ahead of the rest, yet only half sure.
    [weak] = explain.doubts(photo, np.array([0.5, 0.2] + [0.3 / 8] * 8))
    assert "only 50% sure of airplane" in weak and "next, automobile: 20%" in weak and "torn" not in weak


def test_an_upload_over_the_limit_gets_one_sentence():
    from app_pages import predict_parts

    class Upload:
        def __init__(self, size):
            self.size = size
    sentence = predict_parts.too_big(Upload(21 * 2**20 + 4))
    assert sentence.startswith("This file is 21.0 MB; pictures of up to 20 MB can be read.")
    assert predict_parts.too_big(Upload(3 * 2**20)) is None
    # Rounded up, never to the limit itself: 20.04 MB was "20.0 MB" beside "up to 20 MB".
    assert predict_parts.too_big(Upload(20 * 2**20 + 40_000)).startswith("This file is 20.1 MB;")


def test_streamlit_takes_a_little_more_than_the_page_refuses():
    """So an upload just over the page's limit reaches the page, which says so in words."""
    import tomllib

    from app_pages import predict_parts
    from conftest import ROOT
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert predict_parts.UPLOAD_LIMIT_MB < config["server"]["maxUploadSize"] <= 2 * predict_parts.UPLOAD_LIMIT_MB


def test_predict_page_shows_the_heat_map_side_by_side_with_a_key_and_an_opacity_slider(tiny_env, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "studio.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/predict.py").run()
    at.button_group(key="predict_source").set_value("Test picture").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = [picture.caption for element in at.get("image") for picture in element.proto.imgs]
    start = captions.index("The picture")                     # side by side, in this order
    assert captions[start + 1].startswith("Heat map for") and captions[start + 2] == "The two together"
    assert at.slider(key="predict_heat_opacity").value == 0.55
    assert any("the most" in chart.proto.spec and "#fcfdbf" in chart.proto.spec for chart in at.get("vega_lite_chart"))
    assert any("Colour key" in m.value for m in at.markdown)
    assert any("Pale yellow and orange" in c.value for c in at.caption)
    # The bundled model is two networks: its map is of both, though a sure test picture is answered by one.
    assert any("the map is of both together" in c.value for c in at.caption)


def test_where_a_map_counts_most_is_said_in_words():
    """A heat map's colours told a screen reader nothing of where the model looked: its alt text says the
    ninth of the picture where it is strongest."""
    heat = np.zeros((32, 32), np.float32)
    heat[0:6, 0:6] = 1
    assert explain.hottest_place(heat) == "the top left"
    heat = np.zeros((32, 32), np.float32)
    heat[13:19, 26:] = 1
    assert explain.hottest_place(heat) == "the right"
    heat = np.zeros((7, 7), np.float32)
    heat[6, 3] = 2
    assert explain.hottest_place(heat) == "the bottom"
    assert explain.hottest_place(np.zeros((32, 32))) is None        # a blank map has no such place
    assert explain.hottest_place(np.array([[3.0, 1.0], [0.0, 0.0]])) == "the top left"   # ninths left empty
