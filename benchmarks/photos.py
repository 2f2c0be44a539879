"""How often a model is right on real photos, as the app answers them, against one sharp centre square.

    python benchmarks/photos.py --photos DIR [--model PATH]
    python benchmarks/photos.py --imagenet-samples DIR [--model PATH]
    python benchmarks/photos.py --imagenet-detection DIR [--model PATH]

CIFAR-10's test pictures say little about an uploaded photo: a photo is far larger, its subject smaller
in the frame, and shrinking it leaves it sharper than CIFAR-10's pictures. This benchmark loads each
photo as the app does (`inference.load_image`) and compares, in the same run:

- before: the photo's largest centre square shrunk to 32 x 32 with Lanczos, the one view the app used
  to answer from;
- now: the squares the app is shown now (`inference.views`), answered by `inference.predict_views`.

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
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core import inference  # noqa: E402
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


def one_sharp_square(image: Image.Image) -> np.ndarray:
    """How the app prepared a photo before it averaged views: the centre square, Lanczos, nothing else."""
    return np.asarray(image.resize((32, 32), Image.Resampling.LANCZOS, box=inference.crop_box(*image.size),
                                   reducing_gap=3.0), dtype=np.uint8)


def report(name: str, answers: np.ndarray, labels: np.ndarray) -> None:
    right = answers == labels
    per_class = {CLASS_NAMES[c]: float(right[labels == c].mean()) for c in np.unique(labels)}
    print(f"{name:<44}{right.mean():>9.1%}{np.mean(list(per_class.values())):>11.1%}  "
          + " ".join(f"{c[:5]} {a:.0%}" for c, a in per_class.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--photos", type=Path, help="a folder with one folder of photos per class")
    source.add_argument("--imagenet-samples", type=Path, help="a clone of EliSchwartz/imagenet-sample-images")
    source.add_argument("--imagenet-detection", type=Path, help="a clone of ajschumacher/imagen")
    parser.add_argument("--model", help="a .keras model (default: the bundled one)")
    args = parser.parse_args()

    photos = (imagenet_samples(args.imagenet_samples) if args.imagenet_samples
              else imagenet_detection(args.imagenet_detection) if args.imagenet_detection
              else class_folders(args.photos))
    if not photos:
        raise SystemExit("No photos found there.")
    model = inference.load_model(args.model)
    labels, before, now, sure, unread = [], [], [], [], 0
    for path, label in photos:
        try:
            image = inference.load_image(path)
        except inference.ImageError:
            unread += 1
            continue
        labels.append(label)
        before.append(int(inference.predict(model, one_sharp_square(image))[0].argmax()))
        probabilities = inference.predict_views(model, inference.views(image))
        now.append(int(probabilities.argmax()))
        sure.append(float(probabilities.max()))
    labels = np.array(labels)
    counts = ", ".join(f"{CLASS_NAMES[c]} {n}" for c, n in zip(*np.unique(labels, return_counts=True)))
    print(f"{len(labels)} photos ({counts}){f'; {unread} could not be read' if unread else ''}")
    print(f"{'':<44}{'right':>9}{'balanced':>11}  per class")
    report("before: one sharp centre square", np.array(before), labels)
    report(f"now: {len(inference.VIEW_SCALES)} softened squares, answers averaged", np.array(now), labels)
    # The "% sure" the Predict page shows is calibrated on CIFAR-10's own test pictures; on photos it can say more.
    print(f"the app's answers were {np.mean(sure):.0%} sure on average and right on {np.mean(np.array(now) == labels):.0%}")


if __name__ == "__main__":
    main()
