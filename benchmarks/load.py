"""A classroom on one server: N visitors at once against one `streamlit run app.py`, this code and a baseline.

    python benchmarks/load.py --sessions 10 [--baseline 575a79a] [--data PATH] [--watch 20]

For the code here and for the code at the baseline revision (`git archive` into a
temporary folder; same Python, same data, same photo, each its own empty runs
folder) it starts one server on the full data set and drives N Playwright
contexts in one Chromium: N visitors, each with its own cookie, all at once.

1. Predict: open the page, then all upload a 12-megapixel photo at the same moment; answered = the
   model's answer is on the page.
2. Explore: open the page, then all change the class; answered = the new grid's caption.
3. Train: open the page and choose the recipe (the `class` preset where the code has one, else the
   smallest: quick on 5,000 pictures for 1 epoch), then all press Start at once; answered = the run's
   place in the queue, its progress, or the sentence that refuses it.
4. Watching: the N Train pages stay open, each watching its run, while one run trains, then once
   every run has ended: the server's CPU per second.

CPU is the server process's own (utime + stime in /proc/<pid>/stat): the browser,
and the trainers it starts (its children, shown apart), do not count. Memory is
the server's peak resident size (VmHWM). A first visitor opens Predict and
Explore before anything is measured, so the one-time loading of the data set,
TensorFlow and the model is not spread over the sessions.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from test_browser import CHROMIUM, free_port  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TICKS = os.sysconf("SC_CLK_TCK")
CLASS_PICKED = "cat"
ANSWER_TIMEOUT_MS = 600_000     # thirty visitors on a baseline server on 2 cores take minutes, not seconds


# ---------------------------------------------------------------- the server and what it costs

def cpu_seconds(pid: int) -> tuple[float, float]:
    """(the process's own CPU seconds, its reaped children's), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def children_cpu(pid: int) -> float:
    """CPU seconds of the live processes `pid` started (trainers), summed."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A line of /proc/<pid>/status in MB: VmHWM (peak resident), RssAnon (the process's own memory)
    or RssFile (pages of mapped files, such as the decoded data set, shared with other processes)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) / 1024


@dataclass
class Server:
    label: str
    tree: Path
    runs: Path
    process: subprocess.Popen
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def trainer_pids(self) -> list[int]:
        pids = []
        for status in self.runs.glob("*/status.json"):
            try:
                pid = json.loads(status.read_text()).get("pid")
            except (OSError, ValueError):
                continue
            if isinstance(pid, int):
                pids.append(pid)
        return pids

    def states(self) -> list[str]:
        found = []
        for status in self.runs.glob("*/status.json"):
            try:
                found.append(json.loads(status.read_text()).get("state", "?"))
            except (OSError, ValueError):
                found.append("?")
        return found

    def end_every_run(self) -> None:
        """Stop the running trainer and cancel the queue, through the run-directory contract."""
        for run in self.runs.iterdir():
            status_file = run / "status.json"
            try:
                status = json.loads(status_file.read_text())
            except (OSError, ValueError):
                continue
            if status.get("state") == "queued":
                status.update(state="stopped", ended=time.time(), error="Cancelled by the benchmark.")
                tmp = run / ".status.benchmark"
                tmp.write_text(json.dumps(status))
                os.replace(tmp, status_file)
            elif status.get("state") == "running":
                (run / "STOP").touch()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        for pid in self.trainer_pids():     # trainers run in their own session: they outlive the server
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def serve(label: str, tree: Path, runs: Path, data: str, settings: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = {**os.environ, "CIFAR10_DATA": data, "CIFAR_RUNS_DIR": str(runs), "PYTHONPATH": str(tree),
           "CIFAR_MAX_QUEUED_RUNS": "100",      # every visitor's Start is queued: the burst measures the server
           "MALLOC_ARENA_MAX": "2",             # as the README's hosting guide runs a class's server
           **(settings or {})}
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                                "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                               cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return Server(label, tree, runs, process, url)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"The {label} server did not start.")


def baseline_tree(revision: str, folder: Path) -> Path:
    """The code at `revision`, as files (no checkout: the working tree is left alone)."""
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def photo(path: Path, data: str) -> Path:
    """A 12-megapixel JPEG made from a real test picture (a dog), enlarged smoothly, with sensor-like noise."""
    from cifar_core import data as cifar
    test = cifar.read(data)
    dog = test.x_test[np.flatnonzero(test.y_test == cifar.CLASS_NAMES.index("dog"))[0]]
    big = np.asarray(Image.fromarray(dog).resize((4032, 3024), Image.BICUBIC), np.float32)
    big += np.random.default_rng(0).normal(0, 6, big.shape)
    Image.fromarray(big.clip(0, 255).astype(np.uint8)).save(path, quality=88)
    return path


# ---------------------------------------------------------------- what one visitor does

# Whether the page has run every rerun it asked for, and those they handed over to (tests/run_watch.js reads
# Streamlit's own messages: no text on the page says a run is going).
RUN_WATCH = (ROOT / "tests" / "run_watch.js").read_text()


async def new_context(browser, **options):
    """A visitor's browser context (a 1400 x 1000 window unless `options` say otherwise), whose pages watch
    their runs for `settle`."""
    context = await browser.new_context(**{"viewport": {"width": 1400, "height": 1000}, **options})
    await context.add_init_script(RUN_WATCH)
    return context


async def settle(page) -> None:
    await page.wait_for_timeout(300)
    await page.wait_for_function("window.__settled()", timeout=ANSWER_TIMEOUT_MS)


async def open_page(page, url: str, ready: str | re.Pattern | None = None) -> float:
    """Seconds until the page's title, or the text `ready`, is on it and the script has finished."""
    started = time.monotonic()
    await page.goto(url, timeout=ANSWER_TIMEOUT_MS)
    await page.get_by_role("heading", level=1).first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    if ready is not None:
        await page.get_by_text(ready).first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    await settle(page)
    return time.monotonic() - started


GRID_READY = re.compile(r"pictures, page 1 of")     # Explore's grid is drawn: the data set has been read


async def upload(page, picture: Path) -> float:
    started = time.monotonic()
    await page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(picture))
    await page.locator("[data-testid=stMetric]").filter(has_text="The model says").first.wait_for(
        timeout=ANSWER_TIMEOUT_MS)
    return time.monotonic() - started


async def change_class(page) -> float:
    await page.locator("[data-testid=stSelectbox]").filter(has_text="Class").click()
    started = time.monotonic()
    await page.get_by_role("option", name=CLASS_PICKED, exact=True).click()
    await page.get_by_text(re.compile(r"^5,000 pictures, page 1 of 100")).first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    return time.monotonic() - started


async def choose_recipe(page) -> str:
    """The `class` recipe where the page offers it, else the smallest settings of the quick one."""
    group = page.locator("[data-testid=stButtonGroup]").first    # a segmented control: its choices are radios
    await group.wait_for(timeout=ANSWER_TIMEOUT_MS)              # drawn: what it offers can be counted
    named = re.compile(r"\bclass", re.I)
    recipe = group.get_by_role("radio", name=named).or_(group.get_by_role("button", name=named))
    if await recipe.count():
        await recipe.first.click()
        await settle(page)
        return "class"
    await page.locator("[data-testid=stSelectbox]").filter(has_text="Training pictures").click()
    await page.get_by_role("option", name="5,000", exact=True).click()
    await page.get_by_role("spinbutton", name="Epochs").fill("1")
    return "quick, 5,000 pictures, 1 epoch"


async def press_start(page, name: str) -> float:
    """Start a run called `name`; answered when the page shows that run, or the sentence refusing it."""
    await page.get_by_role("textbox", name="Run name").fill(name)
    started = time.monotonic()
    await page.get_by_role("button", name="Start training").click()
    await page.get_by_role("heading", name=name, exact=True).or_(
        page.locator("[data-testid=stAlert]").filter(has_text=re.compile("already|at once"))).first.wait_for(
        timeout=ANSWER_TIMEOUT_MS)
    return time.monotonic() - started


# ---------------------------------------------------------------- the measurement

@dataclass
class Figures:
    label: str
    recipe: str = ""
    times: dict[str, list[float]] = field(default_factory=dict)
    cpu_per_session: dict[str, float] = field(default_factory=dict)
    memory_after: dict[str, float] = field(default_factory=dict)
    cpu_per_second: dict[str, float] = field(default_factory=dict)
    children_cpu: float = 0.0
    peak_mb: float = 0.0
    own_mb: float = 0.0
    mapped_mb: float = 0.0
    first_visit_s: float = 0.0
    lone_visits: list[float] = field(default_factory=list)
    starts: dict[str, int] = field(default_factory=dict)


class Meter:
    """Server CPU over a phase: its own, and its live and reaped children's apart."""

    def __init__(self, pid: int):
        self.pid = pid
        self.own, self.reaped = cpu_seconds(pid)
        self.children = children_cpu(pid)
        self.wall = time.monotonic()

    def spent(self) -> tuple[float, float, float]:
        """(own CPU s, children CPU s, wall s) since this meter began."""
        own, reaped = cpu_seconds(self.pid)
        return own - self.own, (reaped - self.reaped) + children_cpu(self.pid) - self.children, \
            time.monotonic() - self.wall


async def phase(name: str, figures: Figures, server: Server, pages, action) -> list:
    meter = Meter(server.pid)
    results = await asyncio.gather(*(action(p) for p in pages))
    own, children, _ = meter.spent()
    figures.cpu_per_session[name] = own / len(pages)
    figures.memory_after[name] = memory_mb(server.pid, "VmRSS")
    figures.children_cpu += children
    figures.times[name] = list(results)
    return results


async def cpu_per_second(server: Server, seconds: float, while_training: bool) -> tuple[float, float]:
    """The server's own CPU per second over `seconds` of wall time during which a run trains
    (`while_training`) or none does; only such one-second intervals count. Returns (CPU/s, seconds measured)."""
    spent = measured = 0.0
    deadline = time.monotonic() + max(120.0, seconds * 6)
    while measured < seconds and time.monotonic() < deadline:
        before, _ = cpu_seconds(server.pid)
        training_before = "running" in server.states()
        t0 = time.monotonic()
        await asyncio.sleep(1.0)
        after, _ = cpu_seconds(server.pid)
        dt = time.monotonic() - t0
        if training_before == while_training == ("running" in server.states()):
            spent += after - before
            measured += dt
    return (spent / measured if measured else float("nan")), measured


async def visit(server: Server, browser, sessions: int, picture: Path, watch_s: float, lone_visits: int) -> Figures:
    figures = Figures(server.label)
    warm = await new_context(browser)
    first = await warm.new_page()
    started = time.monotonic()
    await open_page(first, server.url + "/predict")
    await upload(first, picture)
    await open_page(first, server.url + "/explore", GRID_READY)
    figures.first_visit_s = time.monotonic() - started
    await warm.close()
    # A lone visitor's CPU is a few 10 ms ticks of /proc: measured again and again, one new browser at a
    # time (each left open, as a class's are), its median is the figure.
    lone = []
    for _ in range(lone_visits):
        lone.append(await new_context(browser))
        page = await lone[-1].new_page()
        await asyncio.sleep(1.0)     # what the visit before left (its last messages, a closed session) is done
        meter = Meter(server.pid)
        await open_page(page, server.url + "/predict")
        await upload(page, picture)
        figures.lone_visits.append(meter.spent()[0])

    contexts = [await new_context(browser) for _ in range(sessions)]
    pages = [await c.new_page() for c in contexts]
    try:
        await phase("open Predict", figures, server, pages, lambda p: open_page(p, server.url + "/predict"))
        await phase("upload, answer", figures, server, pages, lambda p: upload(p, picture))
        # The same visitors again: their browsers have Streamlit's own front-end files by now (3.1 MB,
        # fetched once per browser), so this is what every later visit costs the server.
        await phase("open Predict again", figures, server, pages, lambda p: open_page(p, server.url + "/predict"))
        await phase("upload again, answer", figures, server, pages, lambda p: upload(p, picture))
        await phase("open Explore", figures, server, pages, lambda p: open_page(p, server.url + "/explore", GRID_READY))
        await phase("change class", figures, server, pages, change_class)
        await phase("open Train", figures, server, pages, lambda p: open_page(p, server.url + "/train"))
        recipes = await asyncio.gather(*(choose_recipe(p) for p in pages))
        figures.recipe = recipes[0]
        names = iter(range(1, sessions + 1))
        await phase("press Start", figures, server, pages, lambda p: press_start(p, f"visitor {next(names)}"))
        for state in server.states():
            figures.starts[state] = figures.starts.get(state, 0) + 1
        figures.starts["refused"] = sessions - len(server.states())
        meter = Meter(server.pid)
        figures.cpu_per_second["watching a run train"], _ = await cpu_per_second(server, watch_s, True)
        server.end_every_run()
        figures.cpu_per_second["watching, nothing new"], _ = await cpu_per_second(server, watch_s, False)
        figures.children_cpu += meter.spent()[1]
        figures.peak_mb = memory_mb(server.pid)
        figures.own_mb, figures.mapped_mb = memory_mb(server.pid, "RssAnon"), memory_mb(server.pid, "RssFile")
    finally:
        for context in contexts + lone:
            await context.close()
    return figures


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(results: list[Figures], sessions: int) -> None:
    print(f"\n{sessions} sessions at once, one server; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs\n")
    header = f"{'':<34}" + "".join(f"{r.label:>32}" for r in results)
    print(header)

    def row(name: str, cells: list[str]) -> None:
        print(f"{name:<34}" + "".join(f"{c:>32}" for c in cells))

    row("first visitor (loads everything) s", [f"{r.first_visit_s:.1f}" for r in results])
    for step in results[0].times:
        row(f"{step}: median / p95 s", [f"{statistics.median(r.times[step]):.2f} / "
                                        f"{percentile(r.times[step], 95):.2f}" for r in results])
        row(f"{step}: server CPU s per session", [f"{r.cpu_per_session[step]:.3f}" for r in results])
        row(f"{step}: server memory after, MB", [f"{r.memory_after[step]:.0f}" for r in results])
    for label, visit_cpu in (("Predict visit", ("open Predict", "upload, answer")),
                             ("Predict visit again", ("open Predict again", "upload again, answer"))):
        row(f"{label}: CPU s per session", [f"{sum(r.cpu_per_session[s] for s in visit_cpu):.3f}" for r in results])
    if results[0].lone_visits:
        row(f"Predict visit alone: median of {len(results[0].lone_visits)} s",
            [f"{statistics.median(r.lone_visits):.3f} ({min(r.lone_visits):.2f}-{max(r.lone_visits):.2f})"
             for r in results])
    for name in results[0].cpu_per_second:
        row(f"{name}: server CPU s/s", [f"{r.cpu_per_second[name]:.3f}" for r in results])
    row("runs after the Start burst", [", ".join(f"{v} {k}" for k, v in sorted(r.starts.items())) for r in results])
    row("trainers' CPU s (not counted)", [f"{r.children_cpu:.0f}" for r in results])
    row("peak server memory MB", [f"{r.peak_mb:.0f}" for r in results])
    row("at the end: own / mapped files MB", [f"{r.own_mb:.0f} / {r.mapped_mb:.0f}" for r in results])
    print("\nrecipe pressed: " + "; ".join(f"{r.label}: {r.recipe}" for r in results))


async def run_all(args, servers_to_try: list[tuple[str, Path]], picture: Path, workdir: Path) -> list[Figures]:
    from playwright.async_api import async_playwright
    results = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for label, tree in servers_to_try:
            runs = workdir / f"runs-{len(results)}"
            runs.mkdir()
            server = serve(label, tree, runs, args.data)
            try:
                print(f"{label}: {args.sessions} sessions…", file=sys.stderr, flush=True)
                results.append(await visit(server, browser, args.sessions, picture, args.watch, args.lone))
            finally:
                server.close()
        await browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=1, help="visitors at once (1, 10, 30...)")
    parser.add_argument("--baseline", default="575a79a", help="git revision to compare with ('' for none)")
    parser.add_argument("--data", default=os.environ.get("CIFAR10_DATA"),
                        help="cifar-10-python.tar.gz (default: CIFAR10_DATA)")
    parser.add_argument("--watch", type=float, default=15.0, help="seconds of watching measured, each way")
    parser.add_argument("--lone", type=int, default=0,
                        help="first measure this many Predict visits one at a time (median printed)")
    args = parser.parse_args()
    if not args.data:
        raise SystemExit("Give the full data set: --data PATH or CIFAR10_DATA "
                         "(python ../shared/tools/cifar10_archive.py prints one).")
    with tempfile.TemporaryDirectory(prefix="cifar-load-") as folder:
        workdir = Path(folder)
        picture = photo(workdir / "photo.jpg", args.data)
        trees = []
        if args.baseline:
            trees.append((f"baseline {args.baseline}", baseline_tree(args.baseline, workdir / "baseline")))
        trees.append(("this code", ROOT))
        results = asyncio.run(run_all(args, trees, picture, workdir))
    report(results, args.sessions)


if __name__ == "__main__":
    main()
