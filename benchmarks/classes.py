"""A day of classes on one server: does anything the server holds grow with each class that comes and goes?

    python benchmarks/classes.py --classes 5 --sessions 10 [--baseline REV] [--data PATH] [--ttl 120]

One `streamlit run app.py` (as benchmarks/load.py starts it) serves one class after
another. Each class is N new browsers (each its own cookie, as new students are)
that open Predict and upload a photo, open Explore and change the class, play two
rounds of the Quiz, and press Start on the Train page; then every browser is closed,
every run stopped or cancelled, and the server is left alone for Streamlit's time
for a closed tab to come back (`server.disconnectedSessionTTL`, 120 s by default)
and a little more, before its figures are read:

- its own memory (RssAnon: what it allocated, not the pages of mapped files),
- its threads and open files,
- the runs folder on disk.

The first class loads what every server loads once (TensorFlow, the model, the data
set): its figures are the floor each later class is compared with, in the same run.
What grows by the same amount with every class is what a server running for days,
class after class, would run out of. With `--baseline`, the code at that revision
serves the same day afterwards on a server of its own.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from load import (CHROMIUM, CHROMIUM_ARGS, GRID_READY, baseline_tree, change_class, choose_recipe,  # noqa: E402
                  memory_mb, new_context, open_page, photo, press_start, serve, settle, upload)


def held(pid: int) -> dict[str, float]:
    """What the server holds now: own memory (MB), threads, open files."""
    status = Path(f"/proc/{pid}/status").read_text()
    threads = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))
    return {"own MB": memory_mb(pid, "RssAnon"), "threads": threads, "open files": len(os.listdir(f"/proc/{pid}/fd"))}


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


# The Quiz's Dog button: "Dog", with its key "Shortcut 6" in its name where the answers have keys.
DOG = re.compile(r"^Dog( Shortcut \d)?$")


async def quiz_rounds(page, url: str, rounds: int = 2) -> None:
    await open_page(page, url + "/quiz")
    for _ in range(rounds):
        await page.get_by_role("button", name=DOG).click()
        await page.get_by_text("It is a ").first.wait_for()
        await page.get_by_role("button", name="Next picture").click()
        await page.get_by_role("button", name=DOG).wait_for()


async def student(page, url: str, picture: Path, name: str) -> None:
    """What one student of a class does, in the order a lesson might; the page's screenshot kept where a step
    never came to an end."""
    try:
        await lesson_steps(page, url, picture, name)
    except Exception:
        shot = Path(tempfile.gettempdir()) / f"classes-{name.replace(' ', '-')}.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"{name}: a step did not end; the page is in {shot}", file=sys.stderr, flush=True)
        raise


async def lesson_steps(page, url: str, picture: Path, name: str) -> None:
    await open_page(page, url + "/predict")
    await upload(page, picture)
    await open_page(page, url + "/explore", GRID_READY)
    await change_class(page)
    await quiz_rounds(page, url)
    await open_page(page, url + "/train")
    await choose_recipe(page)
    await press_start(page, name)
    await settle(page)


async def no_run_going(server, limit_s: float = 300.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        server.end_every_run()
        if not {"queued", "running"} & set(server.states()):
            return
        await asyncio.sleep(1.0)


async def day(server, browser, classes: int, sessions: int, picture: Path, ttl_s: float) -> list[dict]:
    after = []
    for lesson in range(1, classes + 1):
        contexts = [await new_context(browser) for _ in range(sessions)]
        pages = [await c.new_page() for c in contexts]
        started = time.monotonic()
        await asyncio.gather(*(student(p, server.url, picture, f"class {lesson} student {i}")
                               for i, p in enumerate(pages, 1)))
        lesson_s = time.monotonic() - started
        for context in contexts:
            await context.close()
        await no_run_going(server)
        await asyncio.sleep(ttl_s + 15)       # closed tabs' sessions are let go, and what they held with them
        after.append({**held(server.pid), "runs MB": folder_mb(server.runs), "lesson s": lesson_s})
        print(f"{server.label}: class {lesson} of {classes} gone: {after[-1]}", file=sys.stderr, flush=True)
    return after


def report(days: dict[str, list[dict]], sessions: int) -> None:
    print(f"\n{sessions} new browsers a class, one server; each figure read after the class has gone\n")
    for label, after in days.items():
        columns = list(after[0])
        print(f"{label}\n{'after class':<12}" + "".join(f"{c:>14}" for c in columns))
        for lesson, figures in enumerate(after, 1):
            print(f"{lesson:<12}" + "".join(f"{figures[c]:>14.1f}" for c in columns))
        if len(after) >= 3:
            # From the second class on: the first loads what a server loads once.
            per_class = {c: (after[-1][c] - after[1][c]) / (len(after) - 2) for c in columns if c != "lesson s"}
            print("each class after the second adds: "
                  + ", ".join(f"{c} {v:+.1f}" for c, v in per_class.items()))
        print(f"the first class left the server at {after[0]['own MB']:.0f} MB of its own; the last at "
              f"{after[-1]['own MB']:.0f} MB\n")


async def run_all(args, trees: list[tuple[str, Path]], picture: Path, workdir: Path) -> dict[str, list[dict]]:
    from playwright.async_api import async_playwright
    days = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for label, tree in trees:
            runs = workdir / f"runs-{len(days)}"
            runs.mkdir()
            server = serve(label, tree, runs, args.data, {"STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(args.ttl)})
            try:
                days[label] = await day(server, browser, args.classes, args.sessions, picture, args.ttl)
            finally:
                server.close()
        await browser.close()
    return days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=5, help="classes one after another (at least 3 for a trend)")
    parser.add_argument("--sessions", type=int, default=10, help="new browsers in each class")
    parser.add_argument("--baseline", default="", help="git revision to serve the same day afterwards ('' for none)")
    parser.add_argument("--data", default=os.environ.get("CIFAR10_DATA"),
                        help="the data set archive (default: $CIFAR10_DATA)")
    parser.add_argument("--ttl", type=int, default=120,
                        help="seconds a closed tab's session is kept (Streamlit's server.disconnectedSessionTTL)")
    args = parser.parse_args()
    if not args.data:
        raise SystemExit("Name the data set archive with --data or $CIFAR10_DATA.")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        trees = [("this code", ROOT)]
        if args.baseline:
            trees.append((f"at {args.baseline}", baseline_tree(args.baseline, workdir / "baseline")))
        picture = photo(workdir / "photo.jpg", args.data)
        report(asyncio.run(run_all(args, trees, picture, workdir)), args.sessions)


if __name__ == "__main__":
    main()
