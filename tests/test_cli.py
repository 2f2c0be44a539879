import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from cifar_core import data, evaluation, fast_inference, inference, inside, rundir
from cifar_core.config import PRESETS
from conftest import ROOT
from test_inside import shipped_top


# The runs the command line's `train` looks at go to a folder of this test session's, not the checkout's runs/;
# the folder goes when the session ends (each worker collecting this file makes one).
_RUNS = tempfile.TemporaryDirectory(prefix="cli-runs-")
RUNS_DIR = _RUNS.name


def cli(*args, env=None, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CIFAR_RUNS_DIR": RUNS_DIR, **(env or {})}
    return subprocess.run([sys.executable, "-m", "cifar_core", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


@pytest.mark.parametrize("command", ["train", "combine", "quantize", "evaluate", "predict", "download"])
def test_help(command):
    result = cli(command, "--help")
    assert result.returncode == 0 and "usage: python -m cifar_core " + command in result.stdout


@pytest.fixture(scope="module")
def trained(tiny_archive, tmp_path_factory):
    """A model trained by the command line on the tiny archive, and its run directory."""
    folder = tmp_path_factory.mktemp("cli")
    result = cli("train", "--preset", "quick", "--epochs", "2", "--batch-size", "20", "--data", tiny_archive,
                 "--run-dir", folder / "run", "--save", folder / "model.keras", "--precision", "float32", "--name", "Class 7B's first try")
    assert result.returncode == 0, result.stderr
    (folder / "said.txt").write_text(result.stdout)
    return folder


def test_train_writes_the_run_and_a_model_card(trained):
    assert rundir.read_status(trained / "run")["state"] == "finished"
    card = json.loads((trained / "model.json").read_text())
    assert card["architecture"] == PRESETS["quick"]["arch"] and card["epochs"] == 2
    assert "teachers" not in card       # learnt from labels alone
    assert card["command"].startswith("python -m cifar_core train --preset quick")
    # A command that can be run again as it is written, spaces and quotes in its values included.
    assert shlex.split(card["command"])[-2:] == ["--name", "Class 7B's first try"]
    assert set(card["per_class_accuracy"]) == set(data.CLASS_NAMES)
    status = rundir.read_status(trained / "run")
    assert card["data"].endswith(f"; trained on {status['train_images']:,} of the 200 training images, "
                                 f"{status['calibration_images']:,} held out for the temperature")
    # Calibrated on held-out training pictures: the temperature is in the card, with the error it fixes.
    assert 0.05 <= card["temperature"] <= 20
    assert 0 <= card["calibration_error_after"] <= 1 and 0 <= card["calibration_error_before"] <= 1
    assert 0 <= card["test_accuracy_without_tta"] <= 1 and card["wall_seconds"] >= card["training_seconds"]
    assert json.loads((trained / "run" / "status.json").read_text())["temperature"] == card["temperature"]
    # It ends saying the model's one accuracy, as every page measures it (not the epochs' one look).
    assert (trained / "said.txt").read_text().splitlines()[-1] == (
        f"Test accuracy {status['test_accuracy']:.2%}: {evaluation.ACCURACY_DEFINITION}")
    # The figures are the model's as this machine serves it (bfloat16 where the CPU has it).
    assert card["inference_precision"] == ("bfloat16" if fast_inference._bfloat16_here() else "float32")


def test_a_saved_model_ships_its_closer_look_for_the_test_set_it_was_measured_on(trained, tiny_archive):
    saved = trained / "model.keras"
    assert shipped_top(saved, data.read(tiny_archive).x_test) is not None


def _how_made(trained) -> dict:
    """What a card says of the model trained above, when another run learns or starts from it."""
    card = json.loads((trained / "model.json").read_text())
    return {"model": str(trained / "model.keras"),
            **{key: card[key] for key in ("command", "test_accuracy", "epochs", "training_seconds", "machine")}}


def test_train_learns_from_saved_models_named_as_the_user_typed_them(trained, tiny_archive):
    common = ("train", "--preset", "quick", "--epochs", "1", "--batch-size", "20", "--data", tiny_archive,
              "--precision", "float32", "--label-smoothing", "0")
    result = cli(*common, "--run-dir", trained / "student", "--distill-from", "model.keras",
                 "--save", "student.keras", cwd=trained)
    assert result.returncode == 0, result.stderr
    config = json.loads((trained / "student" / "config.json").read_text())
    assert config["distill_from"] == [str(trained / "model.keras")]   # whatever folder the run trains from
    assert rundir.read_status(trained / "student")["state"] == "finished"
    # The student's card says how the model it learnt from was made, from that model's own card.
    assert json.loads((trained / "student.json").read_text())["teachers"] == [_how_made(trained)]
    result = cli(*common, "--run-dir", trained / "nobody", "--distill-from", "gone.keras", cwd=trained)
    assert result.returncode == 2 and not (trained / "nobody").exists()
    assert result.stderr == f"Error: There is no model file at {trained / 'gone.keras'} to learn from.\n"


def test_train_continues_from_a_saved_model(trained, tiny_archive):
    common = ("train", "--preset", "quick", "--epochs", "1", "--batch-size", "20", "--data", tiny_archive,
              "--precision", "float32")
    # `~` is expanded once, by this program (a quoted one reaches it as typed): not a folder named "~".
    result = cli(*common, "--run-dir", trained / "more", "--initial-model", "model.keras", "--save", "~/more.keras",
                 cwd=trained, env={"HOME": str(trained)})
    assert result.returncode == 0, result.stderr
    assert (trained / "more.keras").is_file() and not (trained / "~").exists()
    assert result.stderr.splitlines()[-1] == f"Saved {trained / 'more.keras'}"
    assert json.loads((trained / "more" / "config.json").read_text())["initial_model"] == str(trained / "model.keras")
    assert rundir.read_status(trained / "more")["state"] == "finished"
    # Its card counts its own epoch, and says how the model it started from was made.
    card = json.loads((trained / "more.json").read_text())
    assert card["epochs"] == 1 and card["continued_from"] == _how_made(trained) and "teachers" not in card
    result = cli(*common, "--run-dir", trained / "nothing", "--initial-model", "gone.keras", cwd=trained)
    assert result.returncode == 2 and not (trained / "nothing").exists()
    assert result.stderr == f"Error: There is no model file at {trained / 'gone.keras'} to continue from.\n"


def test_combine_puts_two_trained_models_side_by_side_with_a_card(trained, tiny_archive):
    import keras
    import numpy as np

    from cifar_core import models
    result = cli("train", "--preset", "quick", "--epochs", "1", "--batch-size", "20", "--data", tiny_archive,
                 "--seed", "1",
                 "--run-dir", trained / "other", "--save", trained / "other.keras", "--precision", "float32")
    assert result.returncode == 0, result.stderr
    result = cli("combine", "model.keras", "other.keras", "--data", tiny_archive, "--save", "both.keras", cwd=trained)
    assert result.returncode == 0, result.stderr
    card = json.loads((trained / "both.json").read_text())
    other = json.loads((trained / "other.json").read_text())
    assert card["architecture"] == f"2 {PRESETS['quick']['arch']} networks side by side"
    # Each member as its card says it was made, and which training pictures it kept out (for `quantize`).
    config = json.loads((trained / "model.json").read_text())["config"]
    held_out = {"train_subset": config["train_subset"], "calibration_images": config["calibration_images"]}
    assert card["members"] == [{**_how_made(trained), "held_out": held_out},
                               {"model": str(trained / "other.keras"), "held_out": held_out, **{
                                   key: other[key] for key in ("command", "test_accuracy", "epochs", "training_seconds", "machine")}}]
    assert shlex.split(card["command"])[3:6] == ["combine", "model.keras", "other.keras"]
    assert card["training_seconds"] == round(_how_made(trained)["training_seconds"] + other["training_seconds"], 1)
    # Its temperature fitted on the training pictures both kept out (the 20 each held out: the same ones).
    assert card["data"].endswith("the temperature fitted on 20 training images none of the 2 trained on")
    assert 0.05 <= card["temperature"] <= 20 and 0 <= card["calibration_error_after"] <= 1
    assert 0.05 <= card["first_network_temperature"] <= 20       # the first network answers alone where sure
    assert inference.load_model(trained / "both.keras").first_network_temperature == card["first_network_temperature"]
    assert set(card["per_class_accuracy"]) == set(data.CLASS_NAMES) and (trained / "both.test.npz").exists()
    # Look inside's closer look ships with it, for the test set and for the bundled sample (a laptop offline).
    for pictures in (data.read(tiny_archive).x_test, data.load_sample().x_test[:inside.TOP_PICTURES]):
        assert shipped_top(trained / "both.keras", pictures) is not None
    # Its networks in int8 beside it, measured on those pictures, and its card's figures as they answer.
    assert (trained / "both.int8.npz").exists() and card["inference_precision"] == "int8"
    assert fast_inference.precision(inference.load_model(trained / "both.keras")) == "int8"
    # One model of plain layers, whose scores are the two models' averaged.
    both, first, second = (keras.models.load_model(trained / name)
                           for name in ("both.keras", "model.keras", "other.keras"))
    assert models.members_of(both) == 2
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    scores = [keras.Model(m.input, m.get_layer("logits").output)(x) for m in (both, first, second)]
    np.testing.assert_allclose(scores[0], (np.asarray(scores[1]) + np.asarray(scores[2])) / 2, atol=1e-4)
    # Made again over it: the temperature is fitted afresh, not on top of the one in the card left there.
    result = cli("combine", "model.keras", "other.keras", "--data", tiny_archive, "--save", "both.keras", cwd=trained)
    assert result.returncode == 0
    assert json.loads((trained / "both.json").read_text())["temperature"] == card["temperature"]


def test_combine_refuses_in_one_sentence(trained, tiny_archive):
    import shutil

    from cifar_core import models
    models.build("airbench_tiny").save(trained / "another_network.keras")
    shutil.copyfile(trained / "model.keras", trained / "no_card.keras")
    for names, sentence in [
        (["model.keras"], "Give two or more models to put side by side."),
        (["model.keras", "another_network.keras"], "Error: airbench_tiny is not the same network as "),
        (["model.keras", "no_card.keras"], f"Error: {trained / 'no_card.keras'} has no model card saying which "
                                          "training pictures it kept out of training, so none can be trusted "
                                          "to fit the temperature on."),
        (["model.keras", "gone.keras"], "Error: There is no model file at "),
    ]:
        result = cli("combine", *names, "--data", tiny_archive, "--save", "refused.keras", cwd=trained)
        said = result.stderr.splitlines()[-1]     # after TensorFlow's start-up lines
        assert result.returncode == 2 and said.startswith(sentence), (names, result.stderr)
        assert not (trained / "refused.keras").exists()
    # Where it is saved is checked as train's --save is, before minutes of work; never over one of its models.
    (trained / "sub").mkdir(exist_ok=True)
    (trained / "link.keras").unlink(missing_ok=True)
    (trained / "link.keras").symlink_to(trained / "model.keras")
    kept = (trained / "model.keras").read_bytes()
    for save, sentence in [(trained, "that is a folder"), ("both.h5", "the file name must end in .keras"),
                           ("model.keras", "that is one of the models it is made of"),
                           # the same file by another way there: it was saved over, the model lost
                           ("sub/../model.keras", "that is one of the models it is made of"),
                           ("link.keras", "that is one of the models it is made of")]:
        result = cli("combine", "model.keras", "other.keras", "--save", save, cwd=trained)
        assert result.returncode == 2 and sentence in result.stderr.splitlines()[-1], (save, result.stderr)
    assert (trained / "model.keras").read_bytes() == kept
    # One model twice is no pair trained apart.
    for twice in (["model.keras", "model.keras"], ["model.keras", "./sub/../link.keras"]):
        result = cli("combine", *twice, "--save", "twice.keras", cwd=trained)
        assert result.returncode == 2 and "The same model is given twice" in result.stderr.splitlines()[-1], twice
        assert not (trained / "twice.keras").exists()


def test_train_data_is_this_trainers_alone(tiny_archive, tmp_path, monkeypatch):
    """--data was made the process's environment, so the app's queued runs this trainer starts when it is
    done trained on it too, or failed on its relative path."""
    from cifar_core import __main__ as command_line, runs, training
    seen = {}
    monkeypatch.delenv("CIFAR10_DATA", raising=False)
    monkeypatch.setattr(training, "train", lambda config, run_dir, dataset=None, progress=None:
                        seen.update(pictures=len(dataset.y_train)) or "finished")
    monkeypatch.setattr(runs, "dispatch", lambda: seen.update(environment=os.environ.get("CIFAR10_DATA")))
    monkeypatch.chdir(tiny_archive.parent)
    assert command_line.main(["train", "--preset", "class", "--data", tiny_archive.name,
                              "--run-dir", str(tmp_path / "run")]) == 0
    assert seen == {"pictures": 200, "environment": None}


def test_quantize_saves_a_models_networks_in_int8_and_measures_its_card_again(trained, tiny_archive):
    import shutil
    for suffix in (".keras", ".json"):
        shutil.copyfile(trained / f"model{suffix}", trained / f"small{suffix}")
    before = json.loads((trained / "small.json").read_text())
    result = cli("quantize", "small.keras", "--data", tiny_archive, cwd=trained)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"Saved small.int8.npz: ") and " in int8" in result.stderr
    card = json.loads((trained / "small.json").read_text())
    assert card["inference_precision"] == "int8" and shlex.split(card["quantized_with"])[3:5] == ["quantize", "small.keras"]
    assert card["command"] == before["command"] and card["config"] == before["config"]    # how it was made stays
    model = inference.load_model(trained / "small.keras")
    assert fast_inference.precision(model) == "int8" and model.calibration_temperature == card["temperature"]
    report = json.loads(cli("evaluate", "--model", trained / "small.keras", "--data", tiny_archive, "--json").stdout)
    assert report["accuracy"] == pytest.approx(card["test_accuracy"])       # the card is the model as served
    shutil.copyfile(trained / "model.keras", trained / "no_card.keras")
    for name, sentence in [("no_card.keras", "no_card.keras has no model card saying which training "
                                             "pictures it kept out of training, so none can be trusted to measure "
                                             "its int8 ranges on."),
                           ("gone.keras", "There is no model file at ")]:
        result = cli("quantize", name, "--data", tiny_archive, cwd=trained)
        assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith(sentence), result.stderr
        assert "Traceback" not in result.stderr
    assert not (trained / "no_card.int8.npz").exists()


def _copied(trained, name):
    import shutil
    for suffix in (".keras", ".json"):
        shutil.copyfile(trained / f"model{suffix}", trained / f"{name}{suffix}")
    return trained / f"{name}.keras"


def test_quantize_refuses_a_model_that_changed_while_it_was_read(trained, tiny_archive, monkeypatch):
    from cifar_core import combine
    path, load = _copied(trained, "moving"), inference.load_model

    def read_then_saved_again(where):
        model = load(where)
        where.write_bytes(where.read_bytes() + b"\0")      # a run saving its checkpoint meanwhile
        return model
    monkeypatch.setattr(inference, "load_model", read_then_saved_again)
    with pytest.raises(combine.CombineError, match="changed while it was read"):
        combine.quantize(path, dataset=data.load(tiny_archive))
    assert not (trained / "moving.int8.npz").exists()


def test_quantize_leaves_no_int8_networks_where_their_card_could_not_be_measured(trained, tiny_archive, monkeypatch):
    """Stopped after its new card was written (a Ctrl-C in its last step), the card said int8, with the
    temperature fitted for int8 answers, beside a model served in float32: it is all or nothing now."""
    from cifar_core import combine
    path = _copied(trained, "unmeasured")
    card = path.with_suffix(".json").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(inside, "ship_top_activations", interrupted)
    with pytest.raises(KeyboardInterrupt):
        combine.quantize(path, dataset=data.load(tiny_archive))
    assert not (trained / "unmeasured.int8.npz").exists() and path.with_suffix(".json").read_bytes() == card
    assert fast_inference.precision(inference.load_model(path)) != "int8"
    assert not [p for p in trained.iterdir() if ".saving-" in p.name]       # nothing half made left behind


def test_what_a_save_killed_outright_left_is_swept_by_the_next(tmp_path):
    """A save killed by the kernel (out of memory) left its hidden model-sized files for good."""
    left = tmp_path / ".kept.saving-999999999-1.keras"        # no such process
    mine = tmp_path / f".kept.saving-{os.getpid()}-1.keras"     # a save going on in a live process
    left.write_bytes(b"half a model")
    mine.write_bytes(b"a model being saved")
    with rundir.model_files(tmp_path / "kept.keras") as saving:
        saving.write_bytes(b"the model")
    assert not left.exists() and mine.exists() and (tmp_path / "kept.keras").read_bytes() == b"the model"


def test_a_model_saved_over_another_is_saved_whole_or_not_at_all(trained, tiny_archive, monkeypatch):
    """Copied straight over the file, a full disk left a truncated model (the good one it replaced gone)
    under the old model's card."""
    from cifar_core import evaluation, training
    path = _copied(trained, "kept")
    before = {p.name: p.read_bytes() for p in trained.iterdir() if p.name.startswith("kept.")}

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(evaluation, "save_test_probabilities", full)
    with pytest.raises(OSError):
        training.export(trained / "run", path, dataset=data.load(tiny_archive))
    assert {p.name: p.read_bytes() for p in trained.iterdir() if p.name.startswith("kept.")} == before
    assert not [p for p in trained.iterdir() if ".saving-" in p.name]


def test_evaluate_json_matches_the_card(trained, tiny_archive):
    result = cli("evaluate", "--model", trained / "model.keras", "--data", tiny_archive, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 40 and set(report["per_class"]) == set(data.CLASS_NAMES)
    assert report["accuracy"] == pytest.approx(json.loads((trained / "model.json").read_text())["test_accuracy"])


def test_predict_json_goes_on_past_a_bad_file(trained, tmp_path):
    good = tmp_path / "red.png"
    Image.new("RGB", (50, 40), (200, 30, 30)).save(good)
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    result = cli("predict", "--model", trained / "model.keras", "--json", good, bad, good)
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(good), str(bad), str(good)]
    assert lines[0]["label"] in data.CLASS_NAMES and 0 < lines[0]["confidence"] <= 1
    assert sum(lines[0]["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert "not a picture" in lines[1]["error"]
    assert "Traceback" not in result.stderr


def test_user_errors_are_one_sentence_and_nonzero(tmp_path):
    (tmp_path / "a file").write_text("not a folder")
    checks = [
        (cli("train", "--epochs", "0"), "Epochs must be"),
        (cli("train", "--learning-rate", "-1"), "Learning rate must be"),
        (cli("evaluate", "--data", tmp_path / "missing.tar.gz"), "does not exist"),
        (cli("predict", "--model", tmp_path / "none.keras", "x.png"), "There is no model file"),
        (cli("train", env={"CIFAR_TRAINER_NICE": "20"}), "CIFAR_TRAINER_NICE must be at most 19"),
        (cli("train", "--save", tmp_path / "no folder" / "m.keras"), "is not a folder this user may write in"),
        (cli("train", "--run-dir", tmp_path / "a file"), f"Error: {tmp_path / 'a file'} is a file, not a folder."),
        # Where a wrong path came from: the setting, not an option typed
        (cli("evaluate", env={"CIFAR10_DATA": str(tmp_path / "gone")}), f"Error: CIFAR10_DATA names {tmp_path / 'gone'}, "
                                                                        "which does not exist"),
        (cli("predict", "--model", tmp_path, "x.png"), f"Error: {tmp_path} is a folder: name the model's .keras file"),
        (cli("predict", "--model", tmp_path / "a file", "x.png"), "is not a CIFAR-10 Studio model we can load: not a "
                                                                  ".keras file, or a damaged one."),
    ]
    for result, message in checks:
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def _said(result) -> str:
    """What the command told a person: its only line on stderr, checked to be the only one."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_train_mistakes_are_one_sentence_before_any_run_is_made(tmp_path, tiny_archive):
    """Each of these once printed a traceback, most of them after a run directory was made: a failed run
    left on the app's board for a typing mistake."""
    import tarfile

    import keras

    from cifar_core import models
    not_a_model = tmp_path / "text.keras"
    not_a_model.write_text("some notes")
    not_cifar = tmp_path / "photos.tar.gz"
    with tarfile.open(not_cifar, "w:gz") as tar:
        tar.add(not_a_model, arcname="text.keras")
    models.build("airbench_tiny").save(tmp_path / "tiny.keras")      # quick's network is airbench16
    picture = keras.Input((32, 32, 3))
    keras.Model(picture, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(picture))).save(
        tmp_path / "five.keras")
    runs_dir = tmp_path / "runs"
    for options, sentence in [
        (["--data", tmp_path / "missing.tar.gz"], f"Error: {tmp_path / 'missing.tar.gz'} does not exist."),
        (["--data", not_cifar], f"Error: {not_cifar} does not have the official layout"),
        (["--initial-model", not_a_model], f"Error: {not_a_model} is not a CIFAR-10 Studio model we can load"),
        (["--initial-model", tmp_path / "tiny.keras"],
         f"Error: {tmp_path / 'tiny.keras'} is not an {PRESETS['quick']['arch']} model, so training cannot"),
        (["--distill-from", not_a_model], f"Error: Cannot learn from {not_a_model}: "),
        (["--distill-from", tmp_path / "five.keras"], "is not a CIFAR-10 model: it must take 32 x 32 colour pictures"),
        (["--zoom", "0.2"], "Error: Zoom only resizes pictures with augmentation on"),      # quick has it off
        (["--save", tmp_path], f"Error: The model cannot be saved as {tmp_path}: that is a folder"),
        (["--save", tmp_path / "m.h5"], "the file name must end in .keras."),
        (["--data", ""], "Error: --data was given an empty path"),
    ]:
        result = cli("train", "--preset", "quick", "--data", tiny_archive, *options, env={"CIFAR_RUNS_DIR": str(runs_dir)})
        assert result.returncode == 2 and sentence in _said(result), (options, result.stderr)
        assert not runs_dir.exists() or not list(runs_dir.iterdir()), options
    # A runs folder that cannot be made: said before the data is read, not "No such file or directory" after.
    (tmp_path / "a file").write_text("")
    unmade = tmp_path / "a file" / "runs"
    result = cli("train", "--preset", "quick", "--data", tiny_archive, env={"CIFAR_RUNS_DIR": str(unmade)})
    assert result.returncode == 2 and _said(result) == (f"Error: The runs folder {unmade} cannot be made or written: "
                                                        "set CIFAR_RUNS_DIR to a folder this user may write in, or "
                                                        "give --run-dir.")


def test_a_run_folders_settings_are_its_own(tmp_path, tiny_archive):
    damaged, file = tmp_path / "damaged", tmp_path / "a file"
    damaged.mkdir()
    (damaged / "config.json").write_text('{"epochs": 2,')
    file.write_text("")
    result = cli("train", "--run-dir", damaged, "--data", tiny_archive)
    assert result.returncode == 2 and _said(result) == f"Error: {damaged / 'config.json'} is damaged: it does " \
                                                        "not hold a run's settings as JSON."
    # Options that would change a run folder's settings are refused, not quietly ignored.
    given = tmp_path / "given"
    given.mkdir()
    (given / "config.json").write_text('{"epochs": -5}')
    result = cli("train", "--run-dir", given, "--epochs", "3", "--data", tiny_archive)
    assert result.returncode == 2 and _said(result) == f"Error: {given / 'config.json'} already holds this run's " \
        "settings, so --epochs cannot change them: leave the recipe options out, or give a new --run-dir."
    assert not (given / "status.json").exists()
    # Trained as they are, a setting out of range fails the run in a sentence; the traceback is kept in its log.
    result = cli("train", "--run-dir", given, "--data", tiny_archive)
    assert result.returncode == 1 and _said(result) == "Training failed: Epochs must be a whole number from 1 to " \
                                                       "200, not -5."
    assert rundir.read_status(given)["state"] == "failed" and "Traceback" in (given / "log.txt").read_text()
    # Trained again, an ended run's records held two epoch 1s, its card and report two epochs of one.
    result = cli("train", "--run-dir", given, "--data", tiny_archive)
    assert result.returncode == 2 and _said(result) == f"Error: {given} holds a run that has failed already; " \
                                                       "give a new --run-dir to train again."


def test_a_run_folder_the_app_queued_or_another_trainer_trains_is_refused(tmp_path, tiny_archive):
    """Two trainers in one folder write over each other's records and model: a person's command on a run
    the app has queued (and will start) or is training is refused in a sentence, the folder untouched."""
    folder = tmp_path / "run"
    folder.mkdir()
    rundir.write_json(folder / rundir.CONFIG, {"epochs": 1, "batch_size": 20})
    rundir.write_json(folder / rundir.STATUS, {"state": "queued", "owner": "someone"})
    result = cli("train", "--run-dir", folder, "--data", tiny_archive)
    assert result.returncode == 2 and _said(result) == f"Error: {folder} holds a run waiting in the app's queue, " \
                                                       "which starts it; give a new --run-dir to train one yourself."
    rundir.write_json(folder / rundir.STATUS, {"state": "running", "pid": os.getpid()})     # this test: alive
    result = cli("train", "--run-dir", folder, "--data", tiny_archive)
    assert result.returncode == 2 and _said(result) == f"Error: {folder} holds a run another trainer is training " \
                                                       f"(process {os.getpid()}); give a new --run-dir to train one yourself."
    assert rundir.read_status(folder) == {"state": "running", "pid": os.getpid()} and not (folder / "metrics.jsonl").exists()
    # Its trainer killed (no one marks a folder outside the app failed): said as it is, not as another's.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    rundir.write_json(folder / rundir.STATUS, {"state": "running", "pid": gone.pid})
    result = cli("train", "--run-dir", folder, "--data", tiny_archive)
    assert result.returncode == 2 and _said(result) == f"Error: {folder} holds a run whose trainer ended without " \
                                                       "finishing; give a new --run-dir to train again."


def test_ctrl_c_stops_a_run_as_stop_does_and_a_second_at_once(tmp_path, tiny_archive):
    """Ctrl-C ended the process then and there, saying nothing; its run, "running" under a process gone, was
    called killed or out of memory when next looked at, and --save saved nothing."""
    import signal
    import time
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CIFAR_RUNS_DIR": RUNS_DIR}
    trainer = subprocess.Popen([sys.executable, "-m", "cifar_core", "train", "--preset", "class", "--epochs", "50",
                                "--batch-size", "20", "--data", str(tiny_archive), "--run-dir", str(folder),
                                "--save", str(tmp_path / "kept.keras")],
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                               # as from a terminal: a test runner's worker may ignore Ctrl-C, and a process
                               # started ignoring it keeps ignoring it (a run started in the background)
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not any(r.get("kind") == "epoch" for r in rundir.read_metrics(folder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    trainer.send_signal(signal.SIGINT)
    out, err = trainer.communicate(timeout=240)
    # Said as stopped, not as a finished run, and not a success (a script's next step does not go on).
    assert trainer.returncode == 130 and "Stopping after this batch" in err, err
    status = rundir.read_status(folder)
    assert status["state"] == "stopped" and status["stopped_because"] == "Stopped with Ctrl-C."
    epochs = sum(r.get("kind") == "epoch" for r in rundir.read_metrics(folder))
    assert f"Stopped with Ctrl-C. It had finished {epochs} of 50 epochs; its model is kept, from where it stopped." in err
    assert (tmp_path / "kept.keras").exists() and "Traceback" not in err
    card = json.loads((tmp_path / "kept.json").read_text())
    assert card["stopped_because"] == "Stopped with Ctrl-C." and card["epochs"] == epochs


def test_empty_paths_are_refused(capsys):
    from cifar_core import __main__ as main
    for argv, option in [(["predict", "--model", "", "x.png"], "--model"), (["evaluate", "--data", " "], "--data"),
                         (["train", "--run-dir", ""], "--run-dir"), (["train", "--save", ""], "--save"),
                         (["train", "--distill-from", "a.keras", "--distill-from", ""], "--distill-from"),
                         (["download", "--data-dir", ""], "--data-dir"), (["quantize", ""], "MODEL"),
                         (["combine", "a.keras", "", "--save", "b.keras"], "MODEL"), (["predict", "a.png", ""], "FILE")]:
        assert main.main(argv) == 2, argv
        assert capsys.readouterr().err == f"Error: {option} was given an empty path: name a file or folder, or " \
                                          "leave it out.\n"


def test_download_into_a_file_says_it_is_a_file(tmp_path, capsys):
    from cifar_core import __main__ as main
    (tmp_path / "notes").write_text("")
    assert main.main(["download", "--data-dir", str(tmp_path / "notes")]) == 2
    assert capsys.readouterr().err == f"Error: The data set cannot be saved in {tmp_path / 'notes'}: it is a " \
                                      "file, not a folder.\n"


def test_tensorflows_start_up_lines_are_not_shown(tmp_path):
    path = tmp_path / "sky.png"
    Image.new("RGB", (64, 64), (30, 90, 200)).save(path)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "cifar_core", "predict", path], capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr
    # TensorFlow Lite's line about its XNNPACK kernels (int8 networks) comes from a logger of its own that
    # no setting quiets; TensorFlow's own (CPU instructions, absl's note) are gone.
    assert [line for line in result.stderr.splitlines() if "TensorFlow Lite XNNPACK" not in line] == []


def test_what_tensorflow_says_as_it_fails_to_start_is_still_shown(tmp_path):
    """Its start-up notes are kept off by a filter its error stream goes through while it is imported: where
    it ends the process as it starts (an old CPU without AVX), its reason was lost with the process."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'The TensorFlow library was compiled to use AVX instructions, but these are not here.\\n')\n"
        "os.abort()\n")
    result = subprocess.run([sys.executable, "-c", "from cifar_core import quiet_start\n"
                             "quiet_start.keep_start_up_notes_off()\nimport tensorflow"], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}, timeout=60)
    assert result.returncode != 0
    assert result.stderr.splitlines() == ["The TensorFlow library was compiled to use AVX instructions, but these "
                                          "are not here."]


def test_ctrl_c_while_tensorflow_starts_is_the_commands_alone(tmp_path):
    """Ctrl-C reaches every process of the terminal's group, the notes' filter too, which printed a traceback
    of its own and stopped passing on what came after. And its loader can be copied (it recursed)."""
    import copy
    import signal
    import time

    from cifar_core import quiet_start
    assert copy.copy(quiet_start._Loader(object())).loader is not None
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os, time\nos.write(2, b'starting\\n')\ntime.sleep(60)\n")
    # Ctrl-C as at a terminal: a test worker may run with it ignored, which its children would inherit.
    command = subprocess.Popen([sys.executable, "-c", "import signal\n"
                                "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                                "from cifar_core import quiet_start\n"
                                "quiet_start.keep_start_up_notes_off()\nimport tensorflow"], stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert command.stderr.readline() == "starting\n"
    time.sleep(0.5)                               # both waiting: the command in its import, the filter on it
    os.killpg(command.pid, signal.SIGINT)         # as a terminal sends it: to the whole group
    said = command.communicate(timeout=60)[1]
    assert said.count("KeyboardInterrupt") == 1, said        # the command's own, not the filter's too


def test_download_offline_says_so(tmp_path, monkeypatch):
    from cifar_core import __main__ as main
    monkeypatch.setattr(data, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert main.main(["download", "--data-dir", str(tmp_path)]) == 2


def test_predict_with_the_bundled_model(tmp_path):
    path = tmp_path / "sky.png"
    Image.new("RGB", (64, 64), (30, 90, 200)).save(path)
    result = cli("predict", "--json", path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["label"] in data.CLASS_NAMES
    # In words, "% sure" as every page says it: never "100%" for an answer short of certain.
    said = cli("predict", path).stdout.strip()
    assert said == f"{path}: {answer['label']} ({evaluation.sure(answer['confidence'])} sure)"


def test_predict_says_when_a_models_percent_sure_was_never_checked(tmp_path):
    """A model without its card has no temperature: its "% sure" is the network's own (40% for a picture the
    calibrated model is 76% sure of), said as the app says it, and in the JSON."""
    import shutil
    path = tmp_path / "sky.png"
    Image.new("RGB", (64, 64), (30, 90, 200)).save(path)
    shutil.copyfile(inference.DEFAULT_MODEL, tmp_path / "bare.keras")
    bare = cli("predict", "--model", tmp_path / "bare.keras", path)
    assert bare.returncode == 0 and bare.stdout.strip().endswith(
        "sure), as the network says: never checked against how often it is right"), bare.stdout
    assert json.loads(cli("predict", "--model", tmp_path / "bare.keras", "--json", path).stdout)["calibrated"] is False
    assert json.loads(cli("predict", "--json", path).stdout)["calibrated"] is True


def test_a_saved_uncalibrated_models_card_has_no_temperature(tmp_path, tiny_archive):
    """With no training pictures kept aside, no temperature was fitted: its card said 1.0, which the app then
    read as a calibrated model's."""
    import shutil

    from cifar_core import training
    shutil.copyfile(inference.DEFAULT_MODEL, tmp_path / "bare.keras")
    model = inference.load_model(tmp_path / "bare.keras")
    card, _ = training.measured(model, data.load(tiny_archive))
    assert not model.calibrated and card["temperature"] is None
    assert training.measured(inference.load_model(), data.load(tiny_archive))[0]["temperature"] == \
        inference.temperature_for(inference.DEFAULT_MODEL)


def test_a_download_cut_short_says_so_on_a_line_of_its_own(tmp_path, monkeypatch, capsys):
    from cifar_core import __main__ as main

    def cut_short(folder, progress):
        progress(31_500_000, 170_000_000)
        raise data.DataError("The connection ended after 31 of 170 MB.")
    monkeypatch.setattr(data, "download", cut_short)
    assert main.main(["download", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.endswith("  31.5 / 170.0 MB\nError: The connection ended after 31 of 170 MB.\n")


def test_a_very_large_photo_is_answered_without_a_warning_of_an_attack(tmp_path):
    """A 169-megapixel photo (a 100-megapixel camera's is 11600 x 8700): Pillow warned of a "decompression bomb
    DOS attack" on the terminal, though the picture is read at an eighth within its budget."""
    import hostile_images
    path = tmp_path / "big.jpg"
    path.write_bytes(hostile_images.build("jpeg_huge_baseline"))
    result = cli("predict", path)
    assert result.returncode == 0 and "Warning" not in result.stderr and "attack" not in result.stderr, result.stderr


def test_predict_json_goes_on_past_a_file_that_once_broke_the_loader(tmp_path):
    import hostile_images
    good, bad, good2 = tmp_path / "good.png", tmp_path / "bad.tif", tmp_path / "good2.jpg"
    Image.new("RGB", (64, 48), (30, 90, 200)).save(good)
    bad.write_bytes(hostile_images.tiff_rational_offsets())   # Pillow raised TypeError inside load()
    Image.new("RGB", (48, 64), (200, 90, 30)).save(good2)
    result = cli("predict", "--json", good, bad, good2)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(good), str(bad), str(good2)]
    assert lines[0]["label"] in data.CLASS_NAMES and lines[2]["label"] in data.CLASS_NAMES
    assert set(lines[1]) == {"path", "error"} and lines[1]["error"].endswith(".") and "\n" not in lines[1]["error"]


def test_predict_goes_on_past_an_unexpected_error(tmp_path, monkeypatch, capsys):
    """Anything but an ImageError is a bug; it still costs only its own file, as a sentence."""
    from types import SimpleNamespace

    import numpy as np
    from cifar_core import __main__ as main, decoding, inference
    real = decoding.load_image

    def load_image(source):
        if str(source).endswith("boom.png"):
            raise RuntimeError("an unexpected bug")
        return real(source)

    monkeypatch.setattr(inference, "load_model", lambda path=None: SimpleNamespace(calibrated=True))
    monkeypatch.setattr(inference, "predict_views", lambda model, views, size: np.full(10, 0.1, np.float32))
    monkeypatch.setattr(decoding, "load_image", load_image)
    paths = [tmp_path / "boom.png", tmp_path / "fine.png"]
    for path in paths:
        Image.new("RGB", (40, 40), "green").save(path)
    assert main.main(["predict", "--json", *map(str, paths)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["path"] for line in lines] == list(map(str, paths))
    assert lines[0]["error"].endswith(".") and "bug" not in lines[0]["error"]
    assert lines[1]["label"] in data.CLASS_NAMES


def test_two_saves_to_one_name_move_their_files_one_set_at_a_time(tmp_path, monkeypatch):
    """Two saves to one model file moving at once could leave one's model under the other's card."""
    import threading
    import time
    moved, replace = [], os.replace

    def slow_replace(source, target):
        moved.append(Path(source).name.split(".saving-")[1].split(".")[0])     # which save moved it
        replace(source, target)
        time.sleep(0.1)
    monkeypatch.setattr(rundir.os, "replace", slow_replace)

    def save(content):
        with rundir.model_files(tmp_path / "kept.keras") as saving:
            saving.write_bytes(content)
            saving.with_suffix(".json").write_bytes(content)
            saving.with_suffix(".int8.npz").write_bytes(content)
    saves = [threading.Thread(target=save, args=(content,)) for content in (b"first", b"second")]
    for thread in saves:
        thread.start()
        time.sleep(0.05)
    for thread in saves:
        thread.join()
    assert len(moved) == 6 and moved[:3] == [moved[0]] * 3 and moved[3:] == [moved[3]] * 3
    assert len({(tmp_path / name).read_bytes() for name in ("kept.keras", "kept.json", "kept.int8.npz")}) == 1
