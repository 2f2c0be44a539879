"""How long a teacher waits on a fresh server's first visit to Evaluate and Quiz, in a real browser.

    python benchmarks/first_visit.py [--data PATH] [--root APP_FOLDER [--root OLDER_COPY]]

It starts `streamlit run app.py` from `--root` (default: this checkout) with
a fresh runs folder, opens Explore first so the data set is already read
(that wait has its own message), then measures, in Debian's Chromium, the
seconds from opening Evaluate until its accuracy is on screen and the
script has finished, and the same for Quiz's first picture. A second `--root`,
an older copy of the app, is measured after the first: the baseline, in the same run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_browser import CHROMIUM, free_port, new_context, settle  # noqa: E402


def serve(root: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                               cwd=root, env={**env, "PYTHONPATH": str(root)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("streamlit did not start")


def seconds_until_done(page, url: str, selector: str) -> float:
    """From opening `url` until `selector` shows and the script has stopped running."""
    started = time.monotonic()
    page.goto(url)
    page.locator(selector).first.wait_for(timeout=300_000)
    # Every run it asked for has ended (not `settle`, whose pauses would count in the time).
    page.wait_for_function("window.__settled({quiet: 0})", timeout=300_000)
    return time.monotonic() - started


def first_visits(root: Path, data: str | None, p) -> dict[str, float]:
    """Seconds to each page's figure on a fresh server of the app at `root`."""
    with tempfile.TemporaryDirectory() as runs:
        env = {**os.environ, "CIFAR_RUNS_DIR": runs, **({"CIFAR10_DATA": data} if data else {})}
        process, url = serve(root, env)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = new_context(browser, viewport={"width": 1400, "height": 1000}).new_page()
            seconds = {"Explore, first visit (reads the data set)":
                       seconds_until_done(page, f"{url}/explore", "[data-testid=stVegaLiteChart]")}
            settle(page)
            seconds["Evaluate, first visit"] = seconds_until_done(page, f"{url}/evaluate", "[data-testid=stMetric]")
            (ROOT / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(path=ROOT / "test-artifacts" / "first-visit-evaluate.png")    # to check the figure
            seconds["Quiz, first visit after it"] = seconds_until_done(page, f"{url}/quiz", "button:has-text('Dog')")
            seconds["Evaluate, second visit"] = seconds_until_done(page, f"{url}/evaluate", "[data-testid=stMetric]")
        finally:
            browser.close()
            process.terminate()
            process.wait(timeout=20)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="cifar-10-python.tar.gz (default: CIFAR10_DATA)")
    parser.add_argument("--root", action="append", help="the app's folder (default: this checkout); give it again "
                                                        "for an older copy, measured after it as the baseline")
    args = parser.parse_args()
    roots = [Path(r) for r in args.root or [str(ROOT)]]
    with sync_playwright() as p:
        measured = {root: first_visits(root, args.data, p) for root in roots}
    for what in next(iter(measured.values())):
        print(f"{what}: " + "; ".join(f"{seconds[what]:.1f} s ({root})" for root, seconds in measured.items()))


if __name__ == "__main__":
    main()
