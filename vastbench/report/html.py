"""A self-contained ``report.html`` for a run: metric table, failures, provenance."""

from __future__ import annotations

import html
import math

from vastbench.rundir import RunDir, atomic_write_text


def _fmt(st: dict) -> str:
    m = st["mean"]
    if math.isinf(m):
        return "&infin;"
    if math.isnan(m):
        return "&ndash;"
    if math.isnan(st["ci_low"]):
        return f"{m:.3f}"
    return f"{m:.3f} <small>[{st['ci_low']:.3f}, {st['ci_high']:.3f}]</small>"


def write_html_report(run: RunDir, summary: dict, cfg) -> None:
    man = run.read_manifest()
    metrics = summary["metrics"]
    head = "".join(f"<th>{html.escape(n)} {'&uarr;' if d['higher_is_better'] else '&darr;'}</th>"
                   for n, d in metrics.items())
    rows = []
    for label, s in summary["systems"].items():
        cells = "".join(f"<td>{_fmt(s['metrics'][n])}</td>" for n in metrics)
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}<td>{s['n_generated']}/{s['n_requests']}</td>"
                    f"<td>{s['n_failed']}</td></tr>")
    fails = "".join(f"<li><b>{html.escape(label)}</b> {html.escape(rid)}: {html.escape(reason)}</li>"
                    for label, s in summary["systems"].items() for rid, reason in s["failures"].items())
    git = man.get("git", {})
    prov = (f"suite <code>{html.escape(cfg.name)}</code> v{cfg.version}, config {man.get('config_hash')}, "
            f"git {html.escape(str(git.get('sha'))[:12])}{' (dirty)' if git.get('dirty') else ''}, "
            f"device {html.escape(str(man.get('device')))}, dataset {html.escape(str(man.get('dataset', {}).get('name')))} "
            f"({html.escape(str(man.get('dataset', {}).get('manifest_hash')))})")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>vastbench: {html.escape(cfg.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}}th:first-child{{text-align:left}}
small{{color:#666}}</style></head><body>
<h1>{html.escape(cfg.report.title or cfg.name)}</h1><p>{html.escape(cfg.description)}</p>
<h2>Objective metrics</h2><p>Mean and {int(summary['ci'] * 100)}% bootstrap CI over clips.</p>
<table><tr><th>System</th>{head}<th>clips</th><th>failed</th></tr>{''.join(rows)}</table>
<h2>Failures</h2>{'<ul>' + fails + '</ul>' if fails else '<p>None.</p>'}
<h2>Provenance</h2><p>{prov}</p></body></html>
"""
    atomic_write_text(run.root / "report.html", page)
