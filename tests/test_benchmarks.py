"""The benchmark scripts run end to end and print the figure beside its baseline."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def benchmarks_importable(monkeypatch):
    """benchmarks/ importable for this test only: its modules (inference, load, photos) share names a
    later import elsewhere in the worker could take for them."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))


def test_time_to_accuracy_prints_preset_and_baseline(tiny_archive, tmp_path):
    raw = tmp_path / "results.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "time_to_accuracy.py"), "--preset", "quick", "--epochs", "1",
         "--data", str(tiny_archive), "--json", str(raw)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    table = out.stdout[out.stdout.index("recipe"):].splitlines()
    assert "with TTA" in table[0]
    assert table[2].startswith("quick") and table[3].startswith("tutorial")
    results = json.loads(raw.read_text())
    assert [r["preset"] for r in results] == ["quick", "tutorial"]
    assert len(results[0]["epochs"]) == 1 and len(results[1]["epochs"]) == 10
    for result in results:
        assert 0 <= result["mirror_tta_accuracy"] <= 1
        assert all(0 <= r["test_accuracy"] <= 1 for r in result["epochs"])


def test_hostile_replays_every_archive_bomb_beside_a_legitimate_archive():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "hostile.py"), "--only", "archives"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "baseline" in lines[1] and "loaded" in lines[1]
    assert "CRASHED" not in out.stdout and "tar_million_members" in out.stdout
    peaks = [float(line.split()[1]) for line in lines[2:] if " MB " in line]
    assert len(peaks) >= 15 and max(peaks) < 300


def test_peer_airbench_trains_both_and_prints_the_ratios(tiny_archive, tmp_path):
    pytest.importorskip("torch", reason="PyTorch is a benchmark-only dependency (benchmarks/requirements.txt)")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peer_airbench.py"), "--epochs", "1",
                          "--data", str(tiny_archive)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split("  ")[0]: line for line in out.stdout.splitlines()}
    assert "PyTorch airbench94" in rows and "ours (best preset, Keras)" in rows
    for name in ("PyTorch airbench94", "ours (best preset, Keras)"):
        accuracy = float(rows[name].split()[-1].rstrip("%"))
        assert 0 <= accuracy <= 100 and float(rows[name].split()[-4]) > 0    # pictures a second
    assert "speed, ours / the peer's:" in out.stdout and "whole run, the peer's time / ours:" in out.stdout


def test_trainer_memory_prints_each_peak_beside_its_estimate_and_the_line_through_them(tiny_archive):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "trainer_memory.py"), "--archs", "airbench16_mini",
                          "--batches", "64", "512", "--precisions", "float32", "--data", str(tiny_archive)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith("airbench16_mini")]
    assert [row[2] for row in rows[:2]] == ["64", "512"]
    for _, _, _, peak, estimate, ratio, _ in rows[:2]:
        assert 200 < float(peak) < float(estimate) and float(ratio) == pytest.approx(float(estimate) / float(peak), abs=0.01)
    assert len(rows[2]) == 4 and float(rows[2][3]) > 0     # MB per picture of a batch


def test_temperature_sample_refits_on_fewer_held_out_pictures(tiny_archive):
    # The tiny archive's 200 training pictures: the bundled model's run held out a tenth, 20.
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "temperature_sample.py"), "--data",
                          str(tiny_archive), "--sizes", "10", "50", "--draws", "3"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("20 held-out pictures, 40 test pictures")
    baseline, drawn = lines[2].split(), lines[3].split()
    assert baseline[0] == "20" and "baseline" in lines[2] and drawn[0] == "10" and len(lines) == 4   # 50 > 20
    assert 0.05 <= float(baseline[1]) <= 20 and 0 <= float(drawn[-1]) <= 1


def test_photos_reads_the_detection_samples_that_are_cifar10_classes_and_fits_the_photo_correction(tmp_path):
    from PIL import Image
    folder = tmp_path / "imagen"
    folder.mkdir()
    for name, colour in (("n02958343_1_car", "red"), ("n04530566_2_watercraft", "blue"),
                         ("n00007846_3_person", "green"), ("n02084071_4_dog", "brown")):
        Image.new("RGB", (120, 90), colour).save(folder / f"{name}.jpg")
    for name, colour in (("cat", "orange"), ("frog", "green"), ("ship", "navy")):
        (tmp_path / "web" / name).mkdir(parents=True)
        Image.new("RGB", (90, 120), colour).save(tmp_path / "web" / name / "one.png")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "photos.py"), "--imagenet-detection", str(tmp_path),
                          "--photos", str(tmp_path / "web"), "--fit"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "photos: 3 photos (cat 1, frog 1, ship 1)" in lines
    assert "imagenet detection: 3 photos (automobile 1, dog 1, ship 1)" in lines
    assert "all" in lines and out.stdout.count("now: the views evened out") == 3
    assert out.stdout.count("from a preview 320 pixels long (answers as now: ") == 3
    bias = next(line for line in lines if line.startswith("PHOTO_BIAS = ("))
    assert len(bias.split(",")) == 10 and lines[lines.index(bias) + 1].startswith("PHOTO_TEMPERATURE = ")
    held_out = lines[lines.index("fitted on the other sets, answered on each:") + 1:]
    assert [row.split(",")[0].strip() for row in held_out] == ["photos", "imagenet detection", "all", "all"] + [
        "photos (centre)", "imagenet detection (centre)"] + ["all (centre)"] * 2
    assert out.stdout.count("centre squares, softened, averaged") == 3


def test_the_photo_correction_gives_every_class_an_equal_share_of_the_evened_answers(benchmarks_importable):
    import numpy as np
    import photos
    from cifar_core import evaluation, inference
    # Answers leaning towards class 0 and away from class 6, some classes with more photos than others.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), rng.integers(5, 40, 10))
    logits = rng.normal(size=(len(labels), 10)) + 2.5 * np.eye(10)[labels] + np.where(np.arange(10) == 0, 1.0, 0.0)
    logits[:, 6] -= 1.0
    answers = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    bias, factor = photos.fit_photo_correction(answers, labels, temperature=0.5)
    assert bias[0] < -0.5 and bias[6] > 0.5 and abs(bias.mean()) < 1e-9
    evened = inference.evened(answers, bias)
    shares = np.mean([evened[labels == c].mean(axis=0) for c in range(10)], axis=0)
    np.testing.assert_allclose(shares, 0.1, atol=1e-4)
    # The temperature, a multiple of the model's, is the one that fits the evened answers.
    assert factor * 0.5 == pytest.approx(evaluation.fit_temperature(evened, labels))
    assert ((evened.argmax(axis=1) == labels).mean() > (answers.argmax(axis=1) == labels).mean())
    # A class with no photos (6) is left at the others' mean; the others are levelled among themselves.
    some = labels != 6
    bias, _ = photos.fit_photo_correction(answers[some], labels[some], temperature=0.5)
    assert bias[6] == pytest.approx(np.delete(bias, 6).mean()) and bias[0] < -0.5
    evened = inference.evened(answers[some], bias)
    shares = np.delete(np.mean([evened[labels[some] == c].mean(axis=0) for c in np.unique(labels[some])], axis=0), 6)
    np.testing.assert_allclose(shares / shares.mean(), 1, atol=1e-4)


def test_each_photo_set_is_answered_with_the_correction_fitted_on_the_others(monkeypatch, capsys, benchmarks_importable):
    import numpy as np
    import photos
    fitted_on = []

    def fit(answers, labels, temperature):
        fitted_on.append(sorted(set(labels.tolist())))
        return np.zeros(10), 1.0
    monkeypatch.setattr(photos, "fit_photo_correction", fit)
    answers = np.full((6, 10), 0.1)
    photos.held_out({"a": (answers[:2], np.array([0, 0])), "b": (answers[2:4], np.array([1, 1])),
                     "c": (answers[4:], np.array([2, 2]))}, temperature=1.0)
    assert fitted_on == [[1, 2], [0, 2], [0, 1]]
    assert "all, each set evened as fitted on the others" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["web_photos.tsv", "web_photos_check.tsv"])
def test_web_photos_list_names_each_photo_once_with_its_commit(name, benchmarks_importable):
    import web_photos
    from cifar_core.data import CLASS_NAMES
    rows = web_photos.listed(ROOT / "benchmarks" / name)
    assert {row["class"] for row in rows} == set(CLASS_NAMES)
    assert all(re.fullmatch("[0-9a-f]{40}", row["commit"]) for row in rows)
    assert len({web_photos.local_name(row) for row in rows}) == len(rows)


def test_the_check_list_shares_no_repository_with_the_photos_choices_were_made_on(benchmarks_importable):
    import web_photos
    imagenet = {"EliSchwartz/imagenet-sample-images", "ajschumacher/imagen"}      # photos.py's other two sets
    chosen_on = {row["repository"] for row in web_photos.listed()} | imagenet
    assert not chosen_on & {row["repository"] for row in web_photos.listed(ROOT / "benchmarks" / "web_photos_check.tsv")}


def test_web_photos_fetches_each_listed_photo_into_its_class_folder(tmp_path):
    import functools
    import http.server
    import threading

    from PIL import Image
    served = tmp_path / "served"
    for repository, path, colour in (("a/b", "deer 1.jpg", "brown"), ("c/d", "img/ship.png", "blue")):
        file = served / repository / ("0" * 40) / path
        file.parent.mkdir(parents=True)
        Image.new("RGB", (120, 90), colour).save(file)
    listing = tmp_path / "list.tsv"
    listing.write_text("# class\trepository\tcommit\tpath\n" + "".join(
        f"{name}\t{repository}\t{'0' * 40}\t{path}\n" for name, repository, path in
        (("deer", "a/b", "deer 1.jpg"), ("ship", "c/d", "img/ship.png"), ("ship", "c/d", "gone.jpg"))))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        source = f"http://127.0.0.1:{server.server_port}/{{repository}}/{{commit}}/{{path}}"
        run = [sys.executable, str(ROOT / "benchmarks" / "web_photos.py"), str(tmp_path / "photos"),
               "--list", str(listing), "--source", source]
        first = subprocess.run(run, capture_output=True, text=True, timeout=120)
        again = subprocess.run(run, capture_output=True, text=True, timeout=120)
        server.shutdown()
    assert first.returncode == 1 and first.stdout.startswith("2 photos fetched, 0 already there, 1 failed")
    assert "gone.jpg: HTTP Error 404" in first.stdout
    assert again.stdout.startswith("0 photos fetched, 2 already there, 1 failed")
    assert sorted(p.relative_to(tmp_path / "photos").as_posix() for p in (tmp_path / "photos").rglob("*.*")) == [
        "deer/a_b_deer 1.jpg", "ship/c_d_img_ship.png"]
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "photos.py"), "--photos", str(tmp_path / "photos")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("photos: 2 photos (deer 1, ship 1)")


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="drives Debian's Chromium")
def test_model_download_has_every_visitor_receive_the_whole_model(tiny_archive):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "model_download.py"), "--visitors", "2",
                          "--baseline", "", "--data", str(tiny_archive)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    header, row = out.stdout.splitlines()[-2:]
    assert header.split()[:3] == ["code", "ready", "MB"] and row.split()[0] == "now"
    assert row.split()[6] == "0"          # no download failed, and each was the whole file


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_every_benchmark_explains_itself_when_run_as_the_readme_runs_it(script):
    """`python benchmarks/x.py --help` from the checkout's root, as the README runs them: one of them could
    not import the app's package that way."""
    result = subprocess.run([sys.executable, f"benchmarks/{script}", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]



def test_decoding_line_prints_the_photos_wait_beside_a_plain_locks():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "decoding_line.py"), "--tries", "2",
                          "--decode-ms", "5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = out.stdout.splitlines()[-2:]
    assert rows[0].startswith("the line (this code)") and rows[1].startswith("baseline: a plain lock")
    assert all(float(row.split()[-1]) >= float(row.split()[-2]) > 0 for row in rows)   # worst >= median
