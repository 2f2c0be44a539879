"""A class downloading a run's model at once: the server's memory and CPU, this code and a baseline.

    python benchmarks/model_download.py --visitors 10 [--baseline 970a750] [--data PATH]

For the code here and at the baseline revision (as benchmarks/load.py builds and
serves each: `streamlit run app.py`, the full data set), a runs folder holds one
finished run whose model is a copy of the bundled model (16 MB). N Playwright
contexts in one Chromium open the Train page and pick that run on the board, then
all press "Model (.keras)" at the same moment; each waits for its download and
checks it is the whole file.

Memory: the server's peak resident size (VmHWM) once every page is ready, and
after the downloads, and the difference. CPU: the server process's own, from
pressing to the last byte received.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from load import (CHROMIUM, CHROMIUM_ARGS, ROOT, baseline_tree, cpu_seconds, memory_mb, new_context, open_page, serve,
                  settle)

BUTTON = "Model (.keras)"


def runs_folder(folder: Path) -> Path:
    """A runs folder with one finished run, made as the app makes one, its model the bundled one."""
    from cifar_core import rundir, runs
    from cifar_core.config import TrainConfig
    folder.mkdir(parents=True)
    os.environ["CIFAR_RUNS_DIR"] = str(folder)
    run = runs.create(TrainConfig.from_preset("best", name="Whole class"), owner="teacher")
    shutil.copy(ROOT / "cifar_core" / "assets" / "default.keras", run.path / rundir.MODEL)
    rundir.update_status(run.path, state="finished", started=rundir.now() - 600, ended=rundir.now(),
                         test_accuracy=0.92)
    return folder


async def pick_the_run(page, url: str) -> None:
    page.set_default_timeout(600_000)     # thirty Train pages opening at once on 2 cores take minutes
    await open_page(page, url + "/train", "All runs on this server")
    board = page.locator("[data-testid=stDataFrame]")
    await board.scroll_into_view_if_needed()
    box = await board.bounding_box()
    await page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)     # the first row's tick box, under the header
    await page.get_by_text(BUTTON).first.wait_for(timeout=300_000)
    await settle(page)


async def download(context, page, size: int) -> str | None:
    """Press the button; the download comes to this page (a download button) or to the tab a link opens.
    None once the whole file has arrived, else why the browser gave it up."""
    arrived = asyncio.get_running_loop().create_future()

    def watch(tab):
        tab.on("download", lambda d: arrived.done() or arrived.set_result(d))
    watch(page)
    context.on("page", watch)
    await page.get_by_text(BUTTON).first.click()
    try:
        got = await asyncio.wait_for(arrived, 120)
    except TimeoutError:
        return "no download within 2 minutes"
    failure = await got.failure()
    if failure:
        return failure
    path = await got.path()
    assert Path(path).stat().st_size == size, (Path(path).stat().st_size, size)
    return None


async def measure(label: str, tree: Path, data: str, visitors: int, browser) -> dict:
    runs = runs_folder(Path(tempfile.mkdtemp(prefix=f"download-{label}-")) / "runs")
    size = (next(runs.iterdir()) / "model.keras").stat().st_size
    server = serve(label, tree, runs, data)
    print(f"{label}: serving", file=sys.stderr, flush=True)
    try:
        contexts = [await new_context(browser, viewport={"width": 1400, "height": 1400}, accept_downloads=True)
                    for _ in range(visitors)]
        pages = [await c.new_page() for c in contexts]
        await asyncio.gather(*(pick_the_run(p, server.url) for p in pages))
        await asyncio.sleep(2)
        ready_mb, cpu_before = memory_mb(server.pid), cpu_seconds(server.pid)[0]
        started = time.monotonic()
        failures = [f for f in await asyncio.gather(*(download(c, p, size) for c, p in zip(contexts, pages))) if f]
        seconds = time.monotonic() - started
        peak_mb, cpu = memory_mb(server.pid), cpu_seconds(server.pid)[0] - cpu_before
        for c in contexts:
            await c.close()
        return {"label": label, "model_mb": size / 1e6, "ready_mb": ready_mb, "peak_mb": peak_mb,
                "extra_mb": peak_mb - ready_mb, "cpu_s": cpu, "seconds": seconds, "failed": failures}
    finally:
        server.close()


async def run(args) -> list[dict]:
    from playwright.async_api import async_playwright
    trees = [("now", ROOT)]
    if args.baseline:
        trees.append((args.baseline, baseline_tree(args.baseline, Path(tempfile.mkdtemp(prefix="baseline-")))))
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        results = [await measure(label, tree, args.data, args.visitors, browser) for label, tree in trees]
        await browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=10, help="browsers pressing the button at once")
    parser.add_argument("--baseline", default="970a750", help="git revision to compare with ('' for none)")
    parser.add_argument("--data", default=os.environ.get("CIFAR10_DATA"), help="the data set (CIFAR10_DATA)")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(f"{args.visitors} visitors download a {results[0]['model_mb']:.1f} MB model at once")
    print(f"{'code':>10} {'ready MB':>9} {'peak MB':>8} {'extra MB':>9} {'server CPU s':>13} {'all done s':>11}"
          f" {'failed':>7}")
    for r in results:
        print(f"{r['label']:>10} {r['ready_mb']:9.0f} {r['peak_mb']:8.0f} {r['extra_mb']:9.0f} "
              f"{r['cpu_s']:13.2f} {r['seconds']:11.1f} {len(r['failed']):7d}  {' '.join(sorted(set(r['failed'])))}")


if __name__ == "__main__":
    main()
