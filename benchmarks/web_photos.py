"""Gather the web photos listed in web_photos.tsv into one folder per class, for photos.py --photos.

    python benchmarks/web_photos.py DIR [--list FILE] [--source URL]
    python benchmarks/photos.py --photos DIR

The ImageNet stand-ins photos.py reads are mostly dogs and birds and hold no deer. These 223 photos of
all ten classes (12-40 each: airplanes, trucks, horses, ships, frogs and deer among them) are what
people put beside their own CIFAR-10 classifiers as test pictures, and the photo sites, catalogues and
camera-trap frames of other projects: whole photos, none from CIFAR-10 or Tiny Images, each looked at.
The repositories grant no licence for their pictures, so the list names each file (repository, commit,
path) and this script fetches it, rather than the project carrying the photos. Files already there are
kept, so an interrupted run picks up where it stopped.

web_photos_check.tsv lists 195 more (15-25 of each class, from 66 other repositories: classifier demos,
equestrian, airfield, trucking and boating sites, camera traps, nature pages), gathered the same way
after the app's views and its photo correction had been chosen on the first list and the ImageNet
photos. None of them was used to choose or fit anything, so photos.py on them says what a new photo
can expect: `--list benchmarks/web_photos_check.tsv` into another folder.
"""
from __future__ import annotations

import argparse
import urllib.parse
import urllib.request
from pathlib import Path

LIST = Path(__file__).with_name("web_photos.tsv")
SOURCE = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"
MAX_BYTES = 20 * 2**20       # the app's upload limit (app_pages/predict_parts.UPLOAD_LIMIT_MB, not imported:
                             # it brings Streamlit with it); no listed photo comes near it


def listed(path: Path = LIST) -> list[dict[str, str]]:
    """The photos in a list: one row each of class, repository, commit and path, tab-separated."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, repository, commit, file = line.split("\t")
            rows.append({"class": name, "repository": repository, "commit": commit, "path": file})
    return rows


def local_name(row: dict[str, str]) -> str:
    """A file name unique across the list: the repository and the path, slashes made underscores."""
    return f"{row['repository']}/{row['path']}".replace("/", "_")


def gather(rows: list[dict[str, str]], folder: Path, source: str = SOURCE) -> tuple[int, list[str]]:
    """Fetch each row's photo into folder/<class>/; (photos fetched now, rows that could not be)."""
    fetched, failed = 0, []
    for row in rows:
        target = folder / row["class"] / local_name(row)
        if target.exists():
            continue
        url = source.format(repository=row["repository"], commit=row["commit"],
                            path=urllib.parse.quote(row["path"]))
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = response.read(MAX_BYTES + 1)
        except OSError as error:
            failed.append(f"{url}: {error}")
            continue
        if len(body) > MAX_BYTES:
            failed.append(f"{url}: larger than {MAX_BYTES // 2**20} MB")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        fetched += 1
    return fetched, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="where the class folders go")
    parser.add_argument("--list", type=Path, default=LIST, help="the photos to fetch (default: web_photos.tsv)")
    parser.add_argument("--source", default=SOURCE, help="URL of one file, with {repository}, {commit} and {path}")
    args = parser.parse_args()
    rows = listed(args.list)
    fetched, failed = gather(rows, args.folder, args.source)
    print(f"{fetched} photos fetched, {len(rows) - fetched - len(failed)} already there, {len(failed)} failed")
    for line in failed:
        print(f"  {line}")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
