"""How fast the app's pages appear in a real browser, against a one-line Streamlit app, same run.

    python benchmarks/app_startup.py [--data PATH] [--repeat 3]

For each app it starts `streamlit run` on a free port and measures, in
Debian's Chromium: the first page's title after the server answers; then,
for CIFAR-10 Studio, the Explore page's picture grid on a first visit (the
data set is read) and on later visits (the data set is cached).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_browser import free_port  # noqa: E402


def serve(script: Path, env: dict) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                                "--server.headless", "true"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            return process, url, time.monotonic() - started
        except OSError:
            time.sleep(0.05)


def seconds_until(page, url: str, selector: str) -> float:
    started = time.monotonic()
    page.goto(url)
    page.locator(selector).first.wait_for(timeout=120_000)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="cifar-10-python.tar.gz (default: CIFAR10_DATA or the Keras cache)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, **({"CIFAR10_DATA": args.data} if args.data else {})}

    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        baseline = Path(folder) / "hello.py"
        baseline.write_text("import streamlit as st\nst.title('Hello')\n")
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        results = {}
        for name, script, pages in (("one-line app (baseline)", baseline, [("first page", "", "h1")]),
                                    ("CIFAR-10 Studio", ROOT / "app.py",
                                     [("first page", "", "h1"),
                                      ("Explore, data cached", "explore", "[data-testid=stVegaLiteChart]")])):
            process, url, boot = serve(script, {**env, "CIFAR_RUNS_DIR": folder + "/runs"})
            try:
                page = browser.new_page()
                if name == "CIFAR-10 Studio":   # the first Explore visit reads the data set
                    results[(name, "Explore, first visit")] = [seconds_until(page, f"{url}/explore",
                                                                             "[data-testid=stVegaLiteChart]")]
                for label, path, selector in pages:
                    results[(name, label)] = [seconds_until(page, f"{url}/{path}", selector) for _ in range(args.repeat)]
                results[(name, "server start")] = [boot]
            finally:
                process.terminate()
                process.wait()
        browser.close()

    print(f"\n{'app':<26}{'measure':<24}{'median s':>10}{'max s':>8}")
    for (name, label), times in results.items():
        print(f"{name:<26}{label:<24}{statistics.median(times):>10.2f}{max(times):>8.2f}")


if __name__ == "__main__":
    main()
