"""A run as one self-contained HTML file: settings, results per epoch and per class, and the curves."""
from __future__ import annotations

import html as escape

from cifar_core import charts
from cifar_core.runs import Run

VEGA = ("https://cdn.jsdelivr.net/npm/vega@5", "https://cdn.jsdelivr.net/npm/vega-lite@5",
        "https://cdn.jsdelivr.net/npm/vega-embed@6")


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{escape.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{escape.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def html(run: Run) -> str:
    metrics = run.metrics()
    epochs = [{k: v for k, v in m.items() if k != "kind"} for m in metrics if m.get("kind") == "epoch"]
    per_class = [{"class": k, "test accuracy": v} for k, v in (run.status.get("per_class_accuracy") or {}).items()]
    chart = charts.training_curves(charts.curve_frame(metrics, run.name)).to_json() if metrics else "null"
    scripts = "".join(f'<script src="{src}"></script>' for src in VEGA)
    summary = {k: v for k, v in run.summary(metrics).items()}
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape.escape(run.name)}: CIFAR-10 Studio run</title>{scripts}
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#1c1f26}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccd;padding:.25rem .6rem;text-align:left}}</style>
</head><body>
<h1>{escape.escape(run.name)}</h1>
{_table([summary])}
{f'<p><b>Why it failed:</b> {escape.escape(run.status["error"])}</p>' if run.status.get("error") else ""}
<h2>Curves</h2><div id="curves">(The charts need an internet connection; the tables below do not.)</div>
<h2>Test accuracy per class (last epoch)</h2>{_table(per_class)}
<h2>Every epoch</h2>{_table(epochs)}
<h2>Settings</h2>{_table([{"setting": k, "value": v} for k, v in run.config.items()])}
<script>if (window.vegaEmbed && {chart} !== null) vegaEmbed("#curves", {chart}, {{actions: false}});</script>
</body></html>"""
