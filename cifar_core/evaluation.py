"""How good a model is on labelled images: accuracy, per-class figures, confusion matrix."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cifar_core import rundir
from cifar_core.data import CLASS_NAMES

# Mirror test-time augmentation changes an answer only where the model is unsure of it: a picture it is at
# least this sure of at first sight (after its temperature, as "% sure" shows it) is not shown again
# mirrored. On the 10,000 test pictures the bundled pair is that sure of 75%, and of those not one answer
# changed when mirrored (at most one in each of its networks alone); the mirrored pass is a quarter of
# what it was: 1.6 times the pictures a second on a 2-core AMD EPYC (benchmarks/inference.py).
# Networks side by side take the same cut one step earlier: the first network alone looks first, and
# a picture it is this sure of (under its own temperature) is not shown to the others
# (`inference.predict`). The bundled pair's first network is that sure of 67% of the test pictures,
# 98.4% sure of them on average and right on 99.0%, where the pair changed none of its answers; with
# the mirror images, the pair's accuracy moved by 2 pictures in 10,000 (benchmarks/inference.py).
SURE_ENOUGH = 0.95

# One accuracy per model, everywhere: measured once, shown with the same rounding and definition.
ACCURACY_DEFINITION = ("Accuracy is the share of the test pictures the model gets right. A picture it is "
                       f"less than {SURE_ENOUGH:.0%} sure of is shown to it again, mirrored, and the two "
                       "answers are averaged (mirror test-time augmentation). The bundled model, two networks "
                       f"side by side, shows a picture to its first network alone first, and to the second only "
                       f"where the first is less than {SURE_ENOUGH:.0%} sure.")


def percent(fraction: float | None, decimals: int = 1) -> str:
    """An accuracy or a share as people read it on every page: one decimal, "69.4%"; "–" when unknown.
    Never rounded to all or nothing, as `sure` words it: 99.96% is "over 99.9%", 0.04% "under 0.1%"."""
    if fraction is None or fraction != fraction:
        return "–"
    shown = f"{fraction:.{decimals}%}"
    step = f"{10.0 ** -decimals:.{decimals}f}"
    if shown == f"{100:.{decimals}f}%" and fraction < 1:
        return f"over {100 - float(step):.{decimals}f}%"
    if shown == f"{0:.{decimals}f}%" and fraction > 0:
        return f"under {step}%"
    return shown


def told_apart(first: float, second: float) -> tuple[str, str]:
    """Two accuracies side by side, `percent` each, or to two decimals where one decimal reads the same for
    both and they are not: "92.1%" twice, with one model called the better, reads as a mistake."""
    shown = percent(first), percent(second)
    if shown[0] == shown[1] and first != second:
        return percent(first, 2), percent(second, 2)
    return shown


def counted(n: int, thing: str) -> str:
    """A count as people write it: "1 picture", "1,204 pictures"."""
    return f"{n:,} {thing}" + ("" if n == 1 else "s")


def sure(probability: float) -> str:
    """A "% sure" in whole percents, as every page prints one, that never rounds to certainty or to
    nothing: 99.7% is "over 99%" (as "100%" a student reads it as certain, and a confident mistake as an
    impossible one), 0.3% is "under 1%". Never "100%" or "0%": a softmax is never certain either way, and a
    1.0 is float32's rounding of anything above 0.99999997 (a network's own output, or one under a sharpening
    temperature), a 0.0 of anything under about 1e-45."""
    shown = f"{probability:.0%}"
    if shown == "100%":
        return "over 99%"
    if shown == "0%":
        return "under 1%"
    return shown


def kept_off_certainty(percents, decimals: int, probabilities: bool = False) -> np.ndarray:
    """Percents as a table's column will print them to `decimals` places, moved just inside 0 and 100
    where they are not exactly that: a column's fixed format printed 99.7 as "100%" and 0.04 as "0.0%".
    A model's `probabilities` are moved inside even where they are exactly 0 or 100, as `sure` words
    them (a softmax is never certain: float32 rounds it there). Only for showing (a table, and the CSV of
    it that is printed to as many places); the figures themselves keep their value."""
    percents = np.asarray(percents, dtype=float)
    step = 10.0 ** -decimals
    inside = np.isfinite(percents) if probabilities else (percents > 0) & (percents < 100)
    return np.where(inside, np.clip(percents, step, 100 - step), percents)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """counts[t, p]: how many images of true class t were predicted as p."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Recall of each class: the share of its images that were predicted correctly."""
    counts = confusion_matrix(y_true, y_pred)
    totals = counts.sum(axis=1)
    return {name: (float(counts[i, i] / totals[i]) if totals[i] else float("nan"))
            for i, name in enumerate(CLASS_NAMES)}


def summary(probabilities: np.ndarray, y_true: np.ndarray) -> dict:
    """{"accuracy", "per_class": {class: accuracy}, "n"} for predicted probabilities."""
    y_pred = np.asarray(probabilities).argmax(axis=1)
    return {"accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
            "per_class": per_class_accuracy(y_true, y_pred),
            "n": int(len(y_true))}


def class_report(y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
    """Precision, recall and F1 of every class (NaN where undefined), with its number of images."""
    counts = confusion_matrix(y_true, y_pred)
    rows = []
    for i, name in enumerate(CLASS_NAMES):
        hits, predicted, actual = counts[i, i], counts[:, i].sum(), counts[i].sum()
        precision = hits / predicted if predicted else float("nan")
        recall = hits / actual if actual else float("nan")
        # 2 TP / (2 TP + FP + FN), their harmonic mean where both exist: a class with pictures it never
        # named has no precision, yet an F1 of 0 (it found none of them), the worst there is, not a blank.
        f1 = 2 * hits / (predicted + actual) if predicted + actual else float("nan")
        rows.append({"class": name, "precision": float(precision), "recall": float(recall), "f1": float(f1),
                     "images": int(actual)})
    return rows


def beyond_chance(only_first: int, only_second: int) -> bool:
    """Whether two models' gap on the same test pictures is larger than chance alone would often make:
    McNemar's exact test at the 5% level, on the pictures only one of them gets right (`only_first`,
    `only_second`). The pictures both get right, or both wrong, say nothing about which is better; of the
    rest, a coin would give each model about half. Exact (the binomial sum, in whole numbers), not the
    usual normal approximation: with a few pictures apart, as between a run and its continuation, that
    called 4 to 0 "seldom by chance" where a coin does it one time in eight."""
    n, fewer = only_first + only_second, min(only_first, only_second)
    term = tail = 1                 # C(n, k) for k = 0..fewer, and their sum
    for k in range(fewer):
        term = term * (n - k) // (k + 1)
        tail += term
    return n > 0 and 2 * tail * 20 < 2 ** n      # two-sided p = 2 * tail / 2^n, under 1/20


def confident_mistakes(probabilities: np.ndarray, y_true: np.ndarray, n: int = 20) -> np.ndarray:
    """Indices of the wrong answers given with the most confidence, most confident first."""
    y_pred = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    return wrong[np.argsort(-probabilities[wrong, y_pred[wrong]], kind="stable")][:n]


CALIBRATION_BINS = 15   # confidence groups of 1/15 each, for the chart and the calibration error alike


def _confidence_bins(probabilities: np.ndarray, y_true: np.ndarray, bins: int):
    """Each answer's confidence, whether it is right, and its group (equal widths of confidence)."""
    probabilities = np.asarray(probabilities, np.float64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(y_true)
    return confidence, correct, np.clip((confidence * bins).astype(int), 0, bins - 1)


def calibration(probabilities: np.ndarray, y_true: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict]:
    """For answers grouped by confidence: how confident on average, and how often right. The groups are
    those `expected_calibration_error` averages over, so a chart of these rows shows that figure."""
    confidence, correct, which = _confidence_bins(probabilities, y_true, bins)
    return [{"confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean()),
             "answers": int((which == b).sum())} for b in range(bins) if (which == b).any()]


def cached_probabilities(model_path, images: np.ndarray, data_key: str, predict) -> np.ndarray:
    """The model's probabilities on `images`, computed once and kept beside the model file.

    The file name holds a hash of the model's bytes and of `data_key`, so a
    retrained model or other data never reads a stale answer. Where the
    model's folder cannot be written, the answer is simply not kept.
    """
    import hashlib
    from pathlib import Path
    model_path = Path(model_path)
    digest = hashlib.sha256(model_path.read_bytes() + data_key.encode()).hexdigest()[:16]
    cache = model_path.with_name(f"{model_path.stem}.eval-{digest}.npy")
    try:
        return np.load(cache)
    except (OSError, ValueError):
        pass
    probabilities = predict(images)
    keep_beside(cache, probabilities)
    return probabilities


KEPT_ANSWERS = 4    # answer files kept beside one model: one per data set it has met, the newest


def keep_beside(cache, array: np.ndarray) -> None:
    """Write `array` to `cache` (a model's `x.eval-<digest>.npy`) whole or not at all, and remove that
    model's oldest answer files beyond KEPT_ANSWERS: each new data set (every test's tiny one, on a
    developer's machine) would otherwise leave one more behind for good."""
    import glob
    cache = Path(cache)
    try:
        with rundir.whole_file(cache) as file:
            np.save(file, array)
        model_stem = cache.name.split(".eval-")[0]
        kept = sorted(cache.parent.glob(f"{glob.escape(model_stem)}.eval-*.npy"), key=lambda f: f.stat().st_mtime, reverse=True)
        for old in kept[KEPT_ANSWERS:]:
            old.unlink(missing_ok=True)
    except OSError:   # a folder that cannot be written, or a file another process removed first
        pass


SHIPPED_SUFFIX = ".test.npz"   # beside x.keras: x.test.npz, its answers on the test set (and on the sample)


def fingerprint(data: bytes | np.ndarray, *more: bytes | np.ndarray) -> str:
    """A short hash of arrays or bytes: equal fingerprints mean the very same pictures, labels or model."""
    import hashlib
    digest = hashlib.sha256()
    for part in (data, *more):
        digest.update(part if isinstance(part, bytes) else np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()[:32]


def ship_beside(model_path, suffix: str, name: str, sets: list[tuple[str, np.ndarray]]) -> Path:
    """Write, beside the model file `x.keras`, the file `x<suffix>`: one array per data set, named
    `{name}_0`, `{name}_1`..., with the fingerprint of the model file and of each set's data (`sets`:
    (fingerprint, array)), so what it holds is only ever used for that model on that data
    (`shipped_beside`). Written whole or not at all."""
    model_path = Path(model_path)
    target = model_path.with_name(model_path.stem + suffix)
    with rundir.whole_file(target) as file:
        np.savez_compressed(file, model=fingerprint(model_path.read_bytes()),
                            data=np.array([data for data, _ in sets]),
                            **{f"{name}_{i}": array for i, (_, array) in enumerate(sets)})
    return target


def shipped_beside(model_path, suffix: str, name: str, data: str, model: bytes | None = None) -> np.ndarray | None:
    """The array `ship_beside` kept beside the model file for the data fingerprinted `data`, if it is for
    this very model file (its bytes `model`, read here if not given); None otherwise (none shipped,
    another model or data set, a damaged file)."""
    model_path = Path(model_path)
    try:
        with np.load(model_path.with_name(model_path.stem + suffix), allow_pickle=False) as shipped:
            sets = [str(d) for d in np.atleast_1d(shipped["data"])]
            if data not in sets or str(shipped["model"]) != fingerprint(
                    model_path.read_bytes() if model is None else model):
                return None
            return shipped[f"{name}_{sets.index(data)}"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def save_test_probabilities(model_path, probabilities: np.ndarray, images: np.ndarray, labels: np.ndarray,
                            also: tuple = ()) -> Path:
    """Ship a model's answers on the test set with it, so no one waits for them again.

    Written when the model is exported, beside it (`x.keras` -> `x.test.npz`):
    the probabilities before the model's temperature (float32, about 200 KB for
    10,000 pictures: in float16, near-ties of two classes came back as ties or the
    other way round, and the accuracy read from them differed from the model's
    own now and then), with fingerprints of the model file and of the test
    pictures and labels, so they are only ever used for that model on that data.
    `also` adds more data sets, as (probabilities, images, labels): the bundled
    model carries its answers on the bundled sample too, for a laptop offline.
    """
    return ship_beside(model_path, SHIPPED_SUFFIX, "probabilities", [
        (fingerprint(x, y), np.asarray(p, np.float32)) for p, x, y in [(probabilities, images, labels), *also]])


def shipped_probabilities(model_path, images: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """The answers `save_test_probabilities` shipped with a model, as float32, if they are for this very
    model file and these very pictures; None otherwise (none shipped, another data set, a damaged file)."""
    probabilities = shipped_beside(model_path, SHIPPED_SUFFIX, "probabilities", fingerprint(images, labels))
    if probabilities is None or probabilities.shape != (len(labels), len(CLASS_NAMES)):
        return None
    return probabilities.astype(np.float32)


def expected_calibration_error(probabilities: np.ndarray, y_true: np.ndarray,
                               bins: int = CALIBRATION_BINS) -> float:
    """How far "% sure" is from "% right", averaged over answers: 0 for a perfectly honest model.

    Answers are grouped by confidence into equal-width bins; each bin's gap
    between mean confidence and accuracy counts by its share of the answers.
    """
    if not len(probabilities):
        return float("nan")
    rows = calibration(probabilities, y_true, bins)
    return float(sum(r["answers"] * abs(r["confidence"] - r["accuracy"]) for r in rows) / len(probabilities))


def with_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities re-tempered: softmax(log p / T). T > 1 softens over-confident answers, T < 1
    sharpens under-confident ones (label smoothing makes models under-confident). The top answer
    never changes."""
    if temperature == 1.0:
        return np.asarray(probabilities, np.float32)
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def fit_temperature(probabilities: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature that makes `probabilities` most honest on these labelled pictures: the one
    that minimises their cross-entropy (Guo et al., 2017). Fit it on pictures the model did not
    train on and that are not the test set, or the test figures stop being a fair measurement."""
    y_true = np.asarray(y_true)
    log_p = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0))

    def loss(log_t: float) -> float:
        z = log_p / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), y_true]))

    # Golden-section search on log T in [1/20, 20]: the loss is smooth and has one minimum there.
    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    for _ in range(60):
        if loss(a) < loss(b):
            high, b = b, a
            a = high - ratio * (high - low)
        else:
            low, a = a, b
            b = low + ratio * (high - low)
    return float(np.exp((low + high) / 2))
