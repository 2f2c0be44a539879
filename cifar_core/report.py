"""A run as one self-contained HTML file: settings, results per epoch and per class, and the curves.

Self-contained means offline: the curves are drawn here, on the server, into an SVG
picture inside the page (vl-convert bundles Vega-Lite, so nothing is fetched), and the
page holds no script at all. It opens from a USB stick in a classroom without internet,
prints, and is safe to open whatever a run was named.
"""
from __future__ import annotations

import datetime
import functools
import html as escape
import json
import math
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy

from cifar_core import charts, evaluation, rundir, runs
from cifar_core.runs import Run


def _table(rows: list[dict], empty: str = "None.") -> str:
    if not rows:
        return f"<p>{escape.escape(empty)}</p>"
    head = "".join(f"<th>{escape.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


MODEL_FILES = ("initial_model", "distill_from")     # settings that name saved models, by their paths


def _model_file(path) -> str:
    """A saved model's file as anyone with the report may see it: in the runs folder, its run's folder and
    its name; elsewhere, its name alone. A continued run's report showed the server's folders, and the
    name of the user it runs as."""
    path = Path(str(path))
    try:
        return path.resolve().relative_to(runs.runs_dir().resolve()).as_posix()
    except (ValueError, OSError):
        return path.name


def _setting(value, key: str = ""):
    """A setting as the Train form says it: on or off, a list spelt out, a dash for none (not Python's
    True, [] or an empty string); a model file by its run's folder or its name (`_model_file`)."""
    if key in MODEL_FILES and value:
        value = [_model_file(p) for p in value] if isinstance(value, (list, tuple)) else _model_file(value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "–"
    return "–" if value is None or value == "" else value


def _fmt(value) -> str:
    """Four significant digits, never in scientific notation: 12,345 pictures a second, not 1.234e+04."""
    if not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return numpy.format_float_positional(value, precision=4, unique=False, fractional=False, trim="-")


@functools.lru_cache(maxsize=16)
def _svg(spec: str) -> str:
    """A Vega-Lite chart drawn as an SVG picture. About a second of CPU for the curves, so a page that
    offers the same report on every rerun draws it once; the spec holds the data, so new data is a new key."""
    import vl_convert   # a large native module: loaded only when a report is made
    return vl_convert.vegalite_to_svg(json.loads(spec))


# The epoch records' fields as a person reads them, with their units; a field not named here keeps its key.
EPOCH_COLUMNS = {"epoch": "epoch", "loss": "training loss", "accuracy": "training accuracy", "test_loss": "test loss",
                 "test_accuracy": "test accuracy", "elapsed_s": "training time so far (s)",
                 "test_s": "this test pass (s)", "wall_s": "time since it started, tests included (s)",
                 "images_per_s": "pictures trained per second"}


def _epoch_row(record: dict) -> dict:
    # Shares as every page shows them (evaluation.percent), losses and times as numbers.
    return {EPOCH_COLUMNS.get(k, k): evaluation.percent(v) if k.endswith("accuracy") else v
            for k, v in record.items() if k != "kind"}


def curves_svg(metrics: list[dict], name: str) -> str:
    """The run's loss and accuracy curves as inline SVG; a sentence instead when there is nothing to draw."""
    if not metrics:
        return "<p>No progress was recorded, so there are no curves to draw.</p>"
    return _svg(charts.training_curves(charts.curve_frame(metrics, name)).to_json())


def _drawn(run: Run, metrics: list[dict]) -> tuple[list[dict], str]:
    """The records a report's curves are drawn from, and a sentence about them. While the run trains, up to
    its last whole epoch: drawing the curves costs about a second of the server's CPU, and a report asked
    for again and again would draw them anew for every record written since (one a second)."""
    if run.state not in rundir.ACTIVE:
        return metrics, ""
    ends = [i for i, m in enumerate(metrics) if m.get("kind") == "epoch"]
    if run.state == "queued":
        return [], "<p>It is waiting to start: its curves are drawn here once its first epoch has ended.</p>"
    if not ends:
        return [], "<p>It is still training, in its first epoch: its curves are drawn here once that has ended.</p>"
    return metrics[:ends[-1] + 1], "<p>It is still training: its curves here end at its last whole epoch.</p>"


LIVE_EVERY_S = 10.0     # a training run's report is made at most this often; it says it is still training


LIVE_KEPT = 8       # pages of runs still training kept, the newest: one per run and period
_live: OrderedDict[tuple, str] = OrderedDict()
_live_lock = threading.Lock()


def _live_key(run: Run) -> tuple:
    """A training run's page stands for its state and this period of LIVE_EVERY_S."""
    return run.id, runs._stamp(str(run.path / rundir.STATUS)), int(time.time() // LIVE_EVERY_S)


def _live_html(run: Run) -> str:
    key = _live_key(run)
    with _live_lock:
        page = _live.get(key)
    if page is None:
        page = html(runs.get(run.id))
        with _live_lock:
            _live[key] = page
            while len(_live) > LIVE_KEPT:
                _live.popitem(last=False)
    return page


def _kept_path(run: Run) -> Path:
    """Where an ended run's report is kept: named by its files' stamps, so a changed run has a new one."""
    import hashlib
    stamps = [runs._stamp(str(run.path / name)) for name in (rundir.CONFIG, rundir.STATUS, rundir.METRICS)]
    return run.path / f".report-{hashlib.sha256(repr(stamps).encode()).hexdigest()[:16]}.html"


def made(run: Run) -> str | None:
    """A run's report as already made and kept (`kept_html`: an ended run's in its folder, a training run's
    for this while), or None: reading it costs next to nothing, so it need not wait its turn behind reports
    still to be made (a script asking for a training run's report without pause had most students' own
    refused)."""
    if run.state in rundir.ACTIVE:
        with _live_lock:
            return _live.get(_live_key(run))
    return _read_kept(_kept_path(run))


def kept_file(run: Run) -> Path | None:
    """Where an ended run's report, already made, is kept (to be sent from the file a piece at a time), or
    None: a run still training, or one whose report is not made yet."""
    if run.state in rundir.ACTIVE:
        return None
    kept = _kept_path(run)
    return kept if kept.is_file() else None


def _read_kept(kept: Path) -> str | None:
    try:
        return kept.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def kept_html(run: Run) -> str:
    """`html(run)`, made once for a run that has ended and kept in its folder under its files' stamps (a
    new status or metrics line is a new report). Made anew, it costs about a second of the server's CPU
    for its curves: a script cycling through a class's finished runs' reports kept a core busy and every
    student's own report waiting. A run still training changes every second: made at most once every
    LIVE_EVERY_S for everyone (0.2 s of CPU each on a long run; a script asking without pause kept a core
    busy), and anew when its state changes."""
    if run.state in rundir.ACTIVE:
        return _live_html(run)
    kept = _kept_path(run)
    page = _read_kept(kept)
    if page is not None:
        return page
    page = html(run)
    try:
        rundir.atomic_write_bytes(kept, page.encode("utf-8"))
        for old in run.path.glob(".report-*.html"):
            if old != kept:
                old.unlink(missing_ok=True)
    except OSError:     # a full disk or a deleted run: the report is still this one
        pass
    return page


def _curves_read(dotted: bool) -> str:
    """How to read the curves, for a run with test dots (an epoch ended) or without."""
    averaged = ("The dashed lines are the training figures as a running average over the epoch so far, from its "
                "first step")
    if not dotted:
        return averaged + ". No epoch of this run has ended, so no test figures are drawn: they are a dot after each."
    return (averaged + ": in a run of one epoch they average from the untrained start, and so end worse than the "
            "test figures (solid, a dot after each epoch), which measure the network as it is then: below them on "
            "accuracy, above them on loss.")


def html(run: Run) -> str:
    metrics = run.metrics()
    drawn, note = _drawn(run, metrics)
    epochs = [_epoch_row(m) for m in metrics if m.get("kind") == "epoch"]
    per_class = [{"class": k, "test accuracy": evaluation.percent(v)}
                 for k, v in (run.status.get("per_class_accuracy") or {}).items()]
    summary = run.summary(metrics)
    # A report is read anywhere, later, and made once for everyone: its moment says its time zone.
    began = run.status.get("created") or run.status.get("started")     # a folder made by hand: when it began
    summary[runs.START_PRESSED] = datetime.datetime.fromtimestamp(
        began, datetime.timezone.utc).strftime("%d %b %Y %H:%M UTC") if isinstance(began, (int, float)) else "-"
    # Cancelled, cleared by the teacher, stopped at the end of a turn or by the server: said as stopped, not failed.
    reason = run.status.get("error") or run.status.get("stopped_because")
    why = (f'<p><b>Why it {"failed" if run.state == "failed" else "stopped"}:</b> '
           f'{escape.escape(str(reason))}</p>' if reason else "")
    unmeasured = ("Measured once it has finished." if run.state in rundir.ACTIVE
                  else "Not measured: it ended without a model." if not run.model_path else "Not measured.")
    epochs_table = (f"<p>{'No epoch has ended yet' if run.state in rundir.ACTIVE else 'It ended within its first epoch'}"
                    ".</p>" if not epochs else
                    "<p>Measured during training: accuracy on the pictures trained on so far in the epoch, and test "
                    "accuracy with one look at each test picture (no mirror image, to keep each epoch short), so it "
                    "can differ a little from the final figure.</p>" + _table(epochs))
    # How to read the curves only beside curves; a run in its first epoch has none yet (its note says so).
    curves = (f'<div id="curves">{curves_svg(drawn, run.name)}</div><p>{_curves_read(bool(epochs))}</p>' if drawn
              else "" if metrics or run.state in rundir.ACTIVE else curves_svg([], run.name))
    if isinstance(summary.get("progress"), (int, float)):
        summary["progress"] = f"{summary['progress']:.0%}"     # the share of the epochs asked for, as people read it
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape.escape(run.name)}: CIFAR-10 Studio run</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#1c1f26}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccd;padding:.25rem .6rem;text-align:left}}</style>
</head><body>
<h1>{escape.escape(run.name)}</h1>
{_table([summary])}
<p>Time: {escape.escape(runs.TIME_SAID)} Of which testing: {escape.escape(runs.TESTING_SAID)}</p>
<p>Test accuracy: {escape.escape(evaluation.ACCURACY_DEFINITION)}</p>
{why}
<h2>Curves</h2>{note}{curves}
<h2>Test accuracy per class</h2>{_table(per_class, unmeasured)}
<h2>Every epoch</h2>
{epochs_table}
<h2>Settings</h2>{_table([{"setting": k, "value": _setting(v, k)} for k, v in run.config.items()])}
</body></html>"""
