"""A run's downloaded report: one HTML file that needs no network, charts included."""
import json
import os
import re
from pathlib import Path

import pytest

from cifar_core import evaluation, report
from conftest import ROOT
from prepared_runs import finished_run

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def page_html(tiny_env) -> str:
    return report.html(finished_run('<script>alert("name")</script> & co', accuracy=0.7134))


def test_the_report_loads_nothing_from_anywhere(page_html):
    assert "<script" not in page_html.lower()                       # no script at all, the run's name escaped
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page_html, re.I), "a link to fetch"
    assert "@import" not in page_html and "url(http" not in page_html
    assert "internet" not in page_html


def test_the_report_draws_its_curves_and_states_one_accuracy(page_html):
    assert page_html.count("<svg") == 1
    assert len(re.findall(r'class="mark-line role-mark', page_html)) >= 4     # training and test, loss and accuracy
    assert "Loss (lower is better)" in page_html and "Accuracy (higher is better)" in page_html
    assert "71.3%" in page_html and evaluation.ACCURACY_DEFINITION in page_html


def test_the_report_names_its_columns_and_says_why_a_run_ended_as_it_ended(tiny_env):
    from cifar_core import rundir, runs
    run = finished_run("cancelled", epochs=2)
    page = report.html(run)
    assert "training time so far (s)" in page and "pictures trained per second" in page
    assert "elapsed_s" not in page and "images_per_s" not in page and "Why it" not in page
    # On paper there is no hover: the time columns say what they measure beside the table, as the board's help does.
    assert f"Time: {runs.TIME_SAID} Of which testing: {runs.TESTING_SAID}" in page.replace("&#x27;", "'")
    rundir.update_status(run.path, state="stopped", error="Cancelled before it started.")
    assert "<b>Why it stopped:</b> Cancelled before it started." in report.html(runs.get(run.id))
    rundir.update_status(run.path, state="failed", error="The disk is full.")
    assert "<b>Why it failed:</b> The disk is full." in report.html(runs.get(run.id))
    # Stopped by the server at the end of its turn: the reason is kept apart from errors, and said too.
    rundir.update_status(run.path, state="stopped", error=None, stopped_because="Its 20 minutes were up.")
    assert "<b>Why it stopped:</b> Its 20 minutes were up." in report.html(runs.get(run.id))


def test_the_report_writes_big_numbers_whole_and_its_moment_with_its_time_zone(tiny_env):
    """Read later and anywhere, made once for everyone: "12,346" and not "1.235e+04", a UTC moment with its year."""
    from cifar_core import rundir, runs
    run = finished_run("fast", epochs=1)
    records = rundir.read_metrics(run.path)
    records[-1].update(images_per_s=12345.6, elapsed_s=10000.4, test_loss=0.00005)
    (run.path / rundir.METRICS).write_text("".join(json.dumps(r) + "\n" for r in records))
    rundir.update_status(run.path, created=1_764_900_000.0)       # 05 Dec 2025 02:00 UTC
    page = report.html(runs.get(run.id))
    assert "<td>12,346</td>" in page and "<td>10,000</td>" in page and "<td>0.00005</td>" in page
    assert "e+0" not in page and "e-0" not in page
    assert "<td>05 Dec 2025 02:00 UTC</td>" in page
    # A run folder the command line made has no "created": when it started, not 01 Jan 1970.
    status = rundir.read_status(run.path)
    status.pop("created")
    rundir.write_json(run.path / rundir.STATUS, {**status, "started": 1_764_903_600.0})
    assert "<td>05 Dec 2025 03:00 UTC</td>" in report.html(runs.get(run.id))


def test_a_run_with_no_progress_says_so_instead_of_an_empty_chart(tiny_env):
    run = finished_run("no progress", epochs=0)
    assert "no curves to draw" in report.html(run) and "<svg" not in report.html(run)


def test_the_report_says_which_way_the_running_average_lies(tiny_env):
    """Loss is better low: a running average from the untrained start ends above the test dot there, below it
    on accuracy (it said "below" of both, beside a loss chart showing the opposite)."""
    dotted = report.html(finished_run("two", epochs=2))
    assert "below them on accuracy, above them on loss" in dotted and "No epoch of this run" not in dotted


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_report_renders_in_a_browser_with_no_network(page_html, tmp_path):
    from playwright.sync_api import sync_playwright
    saved = tmp_path / "report.html"
    saved.write_text(page_html, encoding="utf-8")
    attempts = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1100, "height": 900}, offline=True)
        page = context.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (attempts.append(route.request.url), route.abort()))
        page.goto(saved.as_uri())
        drawn = page.evaluate("""() => [...document.querySelectorAll('svg g.role-mark > path')]
            .filter(p => { const b = p.getBBox(); return b.width > 0 || b.height > 0; }).length""")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "report-offline.png", full_page=True)
        browser.close()
    assert attempts == []
    assert drawn >= 4 + 2 * 3       # four lines and a test point per epoch in each of the two charts


def test_a_running_runs_report_draws_its_curves_to_its_last_whole_epoch(tiny_env):
    """A report asked for again and again while the run trains draws its curves (a second of CPU) once an
    epoch, not once for every record written since."""
    import os
    import re

    from cifar_core import rundir, runs
    run = finished_run("live", epochs=2)
    rundir.update_status(run.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()))
    run = runs.get(run.id)

    def curves(page: str) -> str:
        return re.search(r'<div id="curves">(.*?)</div>', page, re.S).group(1)
    first = report.html(run)
    rundir.append_metric(run.path, {"kind": "batch", "epoch": 3, "step": 10, "elapsed_s": 70.0, "loss": 0.4,
                                    "accuracy": 0.9})
    second = report.html(runs.get(run.id))
    assert "still training" in second and "<svg" in second and curves(second) == curves(first)
    rundir.update_status(run.path, state="stopped", ended=rundir.now())
    assert curves(report.html(runs.get(run.id))) != curves(first)     # ended: every record drawn


def test_a_report_in_the_first_epoch_says_so_and_nothing_about_curves_not_drawn(tiny_env):
    """Training, no epoch ended yet: "No progress was recorded" and how to read dashed lines were both untrue."""
    import os

    from cifar_core import rundir, runs
    run = finished_run("first epoch", epochs=1)
    batches = [r for r in rundir.read_metrics(run.path) if r["kind"] == "batch"]      # its epoch not ended yet
    (run.path / rundir.METRICS).write_text("".join(json.dumps(r) + "\n" for r in batches))
    rundir.update_status(run.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()))
    page = report.html(runs.get(run.id))
    assert "in its first epoch: its curves are drawn here once that has ended" in page
    assert "<svg" not in page and "No progress was recorded" not in page and "dashed lines" not in page
    assert "last whole epoch" not in page
    rundir.update_status(run.path, state="queued", pid=None)        # waiting, with no records at all
    (run.path / rundir.METRICS).write_text("")
    waiting = runs.get(run.id)
    assert waiting.state == "queued", waiting.state
    page = report.html(waiting)
    assert "It is waiting to start" in page and "No progress was recorded" not in page
    assert "in its first epoch" not in page


def test_an_ended_runs_report_is_made_once_and_again_only_when_the_run_changes(tiny_env, monkeypatch):
    """About a second of the server's CPU a report: a script cycling through a class's finished runs kept a
    core busy, and every student's own report waited behind it."""
    import os

    from cifar_core import rundir, runs
    import time
    made = []
    real, real_time = report.html, time.time
    monkeypatch.setattr(report, "html", lambda run: made.append(run.id) or real(run))
    run = finished_run("kept", epochs=2)
    assert report.made(run) is None
    first = report.kept_html(run)
    assert report.kept_html(runs.get(run.id)) == first == report.made(runs.get(run.id)) and len(made) == 1
    rundir.update_status(run.path, error="Cancelled before it started.", state="stopped")
    assert "Why it stopped" in report.kept_html(runs.get(run.id)) and len(made) == 2
    assert len(list(run.path.glob(".report-*.html"))) == 1        # the old one let go
    rundir.update_status(run.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()))
    assert report.made(runs.get(run.id)) is None                   # a run that trains: not made yet
    page = report.kept_html(runs.get(run.id))
    report.kept_html(runs.get(run.id))
    assert len(made) == 3                  # made once for a while, whoever asks, however often
    assert report.made(runs.get(run.id)) == page                   # and sent at once meanwhile
    monkeypatch.setattr(report.time, "time", lambda: real_time() + report.LIVE_EVERY_S)
    report.kept_html(runs.get(run.id))
    assert len(made) == 4                                          # and again once that while has passed


def test_a_report_says_what_it_lacks_and_settings_as_the_form_says_them(tiny_env):
    """A run stopped in its first epoch: a paragraph on the epochs table's columns then "None.", "None." for
    its classes while it trained, its settings as Python wrote them (False, [])."""
    from cifar_core import rundir, runs
    run = finished_run("stopped early", epochs=1)
    metrics = [m for m in rundir.read_metrics(run.path) if m.get("kind") == "batch"]
    (run.path / rundir.METRICS).unlink()
    for record in metrics:
        rundir.append_metric(run.path, record)
    page = report.html(runs.get(run.id))
    assert "It ended within its first epoch." in page and "<p>None.</p>" not in page
    assert "<td>augment</td><td>off</td>" in page and "<td>False</td>" not in page and "<td>[]</td>" not in page
    # No test dot to end beside: its curves are said to have none.
    assert "No epoch of this run has ended, so no test figures are drawn" in page
    assert "a dot after each epoch" not in page and "from the untrained start" not in page
    rundir.update_status(run.path, state="running", pid=os.getpid(), pid_started=rundir.process_start(os.getpid()),
                         per_class_accuracy=None)
    page = report.html(runs.get(run.id))
    assert "No epoch has ended yet." in page and "Measured once it has finished." in page


def test_a_report_names_model_files_without_the_servers_folders(tiny_env, tmp_path):
    """A continued run's report showed its starting model's whole path: the server's folders, and the name
    of the user it runs as, for anyone who downloads it."""
    from cifar_core import rundir, runs
    run = finished_run("continued", epochs=1)
    config = json.loads((run.path / rundir.CONFIG).read_text())
    config.update(initial_model=str(run.path / rundir.STARTING_COPY),
                  distill_from=[str(tmp_path / "teachers" / "big.keras")])
    (run.path / rundir.CONFIG).write_text(json.dumps(config))
    page = report.html(runs.get(run.id))
    assert f"<td>initial_model</td><td>{run.id}/{rundir.STARTING_COPY}</td>" in page
    assert "<td>distill_from</td><td>big.keras</td>" in page
    assert str(tmp_path) not in page and str(runs.runs_dir()) not in page
