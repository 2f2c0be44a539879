"""How often a model is right on real photos, as the app answers them, against one sharp centre square.

    python benchmarks/photos.py [--photos DIR] [--imagenet-samples DIR] [--imagenet-detection DIR]
                                [--model PATH] [--fit]

CIFAR-10's test pictures say little about an uploaded photo: a photo is far larger, its subject smaller
in the frame, and shrinking it leaves it sharper than CIFAR-10's pictures. This benchmark loads each
photo as the app does (`decoding.load_image`) and compares, in the same run, set by set and over all
the sets given:

- before: the photo's largest centre square shrunk to 32 x 32 with Lanczos, the one view the app used
  to answer from;
- centre squares: the two views the app showed later (the largest centre square and the closer one,
  softened), their answers averaged;
- views: what the app shows the model (`inference.views`: the whole photo squeezed into a square and a
  closer centre square), their answers averaged (`view_answers`);
- now: the same evened out as the app does for photos (`inference.PHOTO_BIAS`), as `predict_views`
  answers. Its calibration error is the "% sure" shown on the Predict page, against how often it is right;
- from a preview: the same, from a copy of the photo 320 pixels long (Lanczos), the size of the preview
  an iPhone's HEIC holds, which the app reads instead of the photo (`decoding.PREVIEW_SMALLEST`), and
  how many of its answers are the photo's.

--fit works out PHOTO_BIAS and PHOTO_TEMPERATURE from all the photos given (`fit_photo_correction`), and,
to show what that is worth on photos it was not fitted on, fits it again on all sets but one and answers
that one with it, set by set, and the centre squares the same way (rows marked "(centre)"), each correction
fitted on the centre squares' own answers. The figures under "now" are of the shipped constants, which
were fitted on these same sets: only the held-out rows say what a new photo can expect.

--photos DIR: one folder per class, named as CIFAR-10 names them (airplane, automobile, bird, ...), each
holding photos of that class; web_photos.py gathers 223 web photos of all ten classes that way.
--imagenet-samples DIR: a clone of github.com/EliSchwartz/imagenet-sample-images, one photo for each
ImageNet class; the ImageNet classes that are CIFAR-10 classes are listed below (no deer: ImageNet has
none). Dogs (118) and birds (59) outnumber the rest, so the class-balanced mean is printed too.
--imagenet-detection DIR: a clone of github.com/ajschumacher/imagen, five photos for each of ImageNet's
200 detection categories; eight are CIFAR-10 classes (DETECTION_CLASSES), 40 photos, five of each. They
are scenes more than portraits: a plane far off in the sky, a dog in bronze, a bird on a beach at sunset.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core import decoding, evaluation, inference  # noqa: E402
from cifar_core.data import CLASS_NAMES  # noqa: E402

# ImageNet classes (WordNet ids) that are CIFAR-10 classes. Vans, ambulances and other boxy vehicles
# that CIFAR-10 would call neither an automobile nor a truck are left out, as are antelopes (not deer).
IMAGENET_WORDNET = {
    "airplane": "n02690373 n04552348 n04592741",   # airliner, warplane, wing
    "automobile": "n02814533 n02930766 n03100240 n03594945 n03670208 n03770679 n03777568 n04037443 n04285008",
    "ship": "n02687172 n02981792 n03095699 n03344393 n03662601 n03673027 n03947888 n04147183 n04273569 "
            "n04483307 n04612504",
    "truck": "n03345487 n03417042 n03796401 n03930630 n04461696 n04467665",
    "horse": "n02389026",                          # sorrel
    "cat": "n02123045 n02123159 n02123394 n02123597 n02124075",
    "frog": "n01641577 n01644373 n01644900",
}
# ImageNet's birds and dogs are whole ranges of WordNet ids (its classes 7-24, 80-100 and 127-146;
# 151-268), given here by their first and last ids.
IMAGENET_RANGES = {
    "bird": [("n01514668", "n01622779"), ("n01795545", "n01860187"), ("n02002556", "n02058221")],
    "dog": [("n02085620", "n02113978")],
}
# The detection categories (the last word of each file name) that are CIFAR-10 classes.
DETECTION_CLASSES = {"airplane": "airplane", "car": "automobile", "bird": "bird", "cat": "cat", "dog": "dog",
                     "frog": "frog", "horse": "horse", "watercraft": "ship"}
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def imagenet_class(wordnet_id: str) -> str | None:
    for name, ids in IMAGENET_WORDNET.items():
        if wordnet_id in ids.split():
            return name
    return next((name for name, spans in IMAGENET_RANGES.items()
                 if any(first <= wordnet_id <= last for first, last in spans)), None)


def imagenet_samples(folder: Path) -> list[tuple[Path, int]]:
    photos = []
    for path in sorted(folder.glob("n*.JPEG")):
        name = imagenet_class(path.name.split("_")[0])
        if name:
            photos.append((path, CLASS_NAMES.index(name)))
    return photos


def imagenet_detection(folder: Path) -> list[tuple[Path, int]]:
    photos = []
    for path in sorted(folder.glob("imagen/n*.jpg")):
        name = DETECTION_CLASSES.get(path.stem.rsplit("_", 1)[-1])
        if name:
            photos.append((path, CLASS_NAMES.index(name)))
    return photos


def class_folders(folder: Path) -> list[tuple[Path, int]]:
    return [(path, CLASS_NAMES.index(name)) for name in CLASS_NAMES if (folder / name).is_dir()
            for path in sorted((folder / name).iterdir()) if path.suffix.lower() in SUFFIXES]


def centre_squares(image: Image.Image) -> np.ndarray:
    """The two views the app showed before the whole photo: the largest centre square and the closer one."""
    return np.stack([inference.prepare(image, inference.crop_box(*image.size, scale)) for scale in (1.0, 0.8)])


def one_sharp_square(image: Image.Image) -> np.ndarray:
    """How the app prepared a photo before it averaged views: the centre square, Lanczos, nothing else."""
    return np.asarray(image.resize((32, 32), Image.Resampling.LANCZOS, box=inference.crop_box(*image.size),
                                   reducing_gap=3.0), dtype=np.uint8)


def preview(path: Path) -> bytes:
    """The photo upright, 320 pixels long (Lanczos), as PNG: the size of an iPhone's HEIC preview."""
    with Image.open(path) as photo:
        small = ImageOps.exif_transpose(photo).convert("RGB")
    small.thumbnail((320, 320), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "PNG")
    return buffer.getvalue()


def report(name: str, probabilities: np.ndarray, labels: np.ndarray) -> None:
    """One row: how often the top answer is right, overall and class-balanced, how sure it says it is, and
    how true that is."""
    right = probabilities.argmax(axis=1) == labels
    per_class = {CLASS_NAMES[c]: float(right[labels == c].mean()) for c in np.unique(labels)}
    error = evaluation.expected_calibration_error(probabilities, labels)
    print(f"  {name:<62}{right.mean():>9.1%}{np.mean(list(per_class.values())):>11.1%}"
          f"{probabilities.max(axis=1).mean():>8.1%}{error:>8.3f}  "
          + " ".join(f"{c[:5]} {a:.0%}" for c, a in per_class.items()))


def fit_photo_correction(answers: np.ndarray, labels: np.ndarray, temperature: float) -> tuple[np.ndarray, float]:
    """(PHOTO_BIAS, PHOTO_TEMPERATURE) for a model's averaged view answers (N, 10) on labelled photos: the
    bias that gives each class among `labels` as large a share of the evened answers as any other, each
    class's photos weighed alike (with every class among them, it is also the bias under which the true
    classes are likeliest, each class weighed alike), found by taking each class's share off its
    logarithm until the shares are level; a class with no photos here is left at the others' mean. The
    temperature, as a multiple of the model's own (`temperature`), is the one that makes the evened
    answers' "% sure" true on these photos."""
    classes = np.unique(labels)
    bias = np.zeros(answers.shape[1])
    for _ in range(10_000):    # sharp answers take longer to level: a few dozen rounds for real models' answers
        evened = inference.evened(answers, bias)
        shares = np.mean([evened[labels == c].mean(axis=0) for c in classes], axis=0)[classes]
        step = np.log(shares / shares.mean())
        if np.abs(step).max() < 1e-6:
            break
        bias[classes] -= step
        bias[classes] -= bias[classes].mean()
    else:
        print("the shares did not level out in 10,000 rounds; the bias printed is the last one")
    return bias, evaluation.fit_temperature(inference.evened(answers, bias), labels) / temperature


def held_out(sets: dict[str, tuple[np.ndarray, np.ndarray]], temperature: float, name: str = "") -> None:
    """Each set answered with the correction fitted on all the others; `name` says which views."""
    pooled = []
    for each, (answers, labels) in sets.items():
        others = [other for other in sets if other != each]
        bias, factor = fit_photo_correction(np.concatenate([sets[o][0] for o in others]),
                                            np.concatenate([sets[o][1] for o in others]), temperature)
        tempered = inference.as_photo(answers, temperature, bias, factor)
        report(f"{each}{name}, evened ({factor:.2f} x temperature)", tempered, labels)
        pooled.append((answers, tempered, labels))
    answers, tempered, labels = (np.concatenate(parts) for parts in zip(*pooled))
    report(f"all{name}, not evened", evaluation.with_temperature(answers, temperature), labels)
    report(f"all{name}, each set evened as fitted on the others", tempered, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, help="a folder with one folder of photos per class")
    parser.add_argument("--imagenet-samples", type=Path, help="a clone of EliSchwartz/imagenet-sample-images")
    parser.add_argument("--imagenet-detection", type=Path, help="a clone of ajschumacher/imagen")
    parser.add_argument("--model", help="a .keras model (default: the bundled one)")
    parser.add_argument("--fit", action="store_true", help="fit the photo correction on these photos")
    args = parser.parse_args()
    finders = {"photos": (args.photos, class_folders), "imagenet samples": (args.imagenet_samples, imagenet_samples),
               "imagenet detection": (args.imagenet_detection, imagenet_detection)}
    found = {name: find(folder) for name, (folder, find) in finders.items() if folder}
    if not found:
        parser.error("give at least one of --photos, --imagenet-samples and --imagenet-detection")
    if not any(found.values()):
        raise SystemExit("No photos found there.")

    model = inference.load_model(args.model)
    temperature = getattr(model, "calibration_temperature", 1.0)
    answered = {}
    for name, photos in found.items():
        labels, before, centre, views, now, previews, unread = [], [], [], [], [], [], 0
        for path, label in photos:
            try:
                image = decoding.load_image(path)
            except decoding.ImageError:
                unread += 1
                continue
            labels.append(label)
            before.append(inference.predict(model, one_sharp_square(image))[0])
            centre.append(inference.view_answers(model, centre_squares(image)))
            shown = inference.views(image)
            views.append(inference.view_answers(model, shown))
            now.append(inference.predict_views(model, shown, image.size))
            small = decoding.load_image(preview(path))
            previews.append(inference.predict_views(model, inference.views(small), small.size))
        if not labels:
            print(f"{name}: {'no photos found there' if not photos else 'no photo could be read'}")
            continue
        labels = np.array(labels)
        counts = ", ".join(f"{CLASS_NAMES[c]} {n}" for c, n in zip(*np.unique(labels, return_counts=True)))
        print(f"{name}: {len(labels)} photos ({counts}){f'; {unread} could not be read' if unread else ''}")
        answered[name] = (np.array(before), np.array(centre), np.array(views), np.array(now), labels,
                          np.array(previews))
    sets = list(answered)
    if not sets:
        raise SystemExit("No photo could be read.")
    if len(sets) > 1:
        answered["all"] = tuple(np.concatenate(parts) for parts in zip(*answered.values()))
    print(f"{'':<64}{'right':>9}{'balanced':>11}{'sure':>8}{'error':>8}  per class "
          f"(sure: the % sure shown, on average; error: its expected calibration error)")
    for name, (before, centre, views, now, labels, previews) in answered.items():
        print(name)
        report("before: one sharp centre square", before, labels)
        report("centre squares, softened, averaged", evaluation.with_temperature(centre, temperature), labels)
        report("views: whole and closer, softened, averaged",
               evaluation.with_temperature(views, temperature), labels)
        report("now: the views evened out (PHOTO_BIAS)", now, labels)
        same = np.mean(previews.argmax(axis=1) == now.argmax(axis=1))
        report(f"from a preview 320 pixels long (answers as now: {same:.1%})", previews, labels)

    if args.fit:
        _, _, views, _, labels, _ = answered["all" if len(sets) > 1 else sets[0]]
        bias, factor = fit_photo_correction(views, labels, temperature)
        print(f"PHOTO_BIAS = ({', '.join(f'{b:.2f}' for b in bias)})\nPHOTO_TEMPERATURE = {factor:.2f}")
        if len(sets) > 1:
            print("fitted on the other sets, answered on each:")
            held_out({name: (answered[name][2], answered[name][4]) for name in sets}, temperature)
            held_out({name: (answered[name][1], answered[name][4]) for name in sets}, temperature, " (centre)")
        else:
            print("(answering each set as fitted on the others needs two sets or more)")


if __name__ == "__main__":
    main()
