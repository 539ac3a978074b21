"""LaTeX tables (booktabs) for papers: an ``\\input``-able fragment and a standalone document.

Fragments need ``\\usepackage{booktabs}`` and ``\\usepackage{graphicx}`` in the paper's preamble
(graphicx shrinks a table wider than the line, see :func:`fit_to_width`).

Objective metrics are shown as mean $\\pm$ the half-width of the bootstrap CI,
with arrows from ``higher_is_better``; the best system is bold and the second
underlined.  Ground truth is shown but never ranked.
"""

from __future__ import annotations

import math
from pathlib import Path

from vastbench.rundir import atomic_write_text

_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
            "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}
NOT_RANKED = {"ground_truth"}


def tex_escape(text: str) -> str:
    return "".join(_SPECIAL.get(c, c) for c in str(text))


def fit_to_width(tabular: list[str]) -> list[str]:
    """``\\begin{tabular} .. \\end{tabular}`` lines -> the same, shrunk to ``\\linewidth`` only if wider.

    A suite with ten metrics makes a table about 1.6 line widths wide, which runs off the
    page.  The tabular is typeset into scratch box 0 inside a group (so the fragment can be
    ``\\input`` any number of times), and ``\\resizebox`` (graphicx) scales it down when it is
    wider than the line; narrow tables are left as they are.
    """
    return [r"\begingroup\setbox0=\hbox{%", *tabular[:-1], tabular[-1] + "%", "}%",
            r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\box0}\else\box0\fi\endgroup"]


def fmt_value(mean: float, lo: float, hi: float) -> str:
    if math.isinf(mean):
        return r"$\infty$"
    if math.isnan(mean):
        return "--"
    digits = 2 if abs(mean) >= 10 else 3
    if math.isnan(lo) or math.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} $\\pm$ {(hi - lo) / 2:.{digits}f}"


def rank_marks(values: dict[str, float], higher_is_better: bool) -> dict[str, str]:
    """'best' / 'second' for the two best finite values (ties share the mark)."""
    finite = sorted({v for v in values.values() if math.isfinite(v)}, reverse=higher_is_better)
    marks = {}
    for label, v in values.items():
        if finite and v == finite[0]:
            marks[label] = "best"
        elif len(finite) > 1 and v == finite[1]:
            marks[label] = "second"
    return marks


def metric_table(summary: dict, metrics, cfg) -> str:
    generators = {s.label: s.generator for s in cfg.systems}
    cols = [m for m in metrics]
    up, down = r"$\uparrow$", r"$\downarrow$"
    head = " & ".join([r"System"] + [f"{m.label or tex_escape(m.name)} {up if m.higher_is_better else down}"
                                     for m in cols])
    ranks = {}
    for m in cols:
        vals = {label: s["metrics"][m.name]["mean"] for label, s in summary["systems"].items()
                if generators.get(label) not in NOT_RANKED}
        ranks[m.name] = rank_marks(vals, m.higher_is_better)
    lines = []
    for label, s in summary["systems"].items():
        cells = [tex_escape(label)]
        for m in cols:
            st = s["metrics"][m.name]
            cell = fmt_value(st["mean"], st["ci_low"], st["ci_high"])
            mark = ranks[m.name].get(label)
            if mark == "best":
                cell = r"\textbf{" + cell + "}"
            elif mark == "second":
                cell = r"\underline{" + cell + "}"
            cells.append(cell)
        lines.append(" & ".join(cells) + r" \\")
    failed = summary.get("n_failed", 0)
    ci = int(round(summary.get("ci", 0.95) * 100))
    notes = [f"Mean $\\pm$ half-width of the {ci}\\% bootstrap CI over clips "
             f"({summary.get('bootstrap', 0)} resamples)."]
    if failed:
        per_system = [f"{tex_escape(label)} {s['n_failed']}" for label, s in summary["systems"].items()
                      if s.get("n_failed")]
        notes.append(f"{failed} clip(s) failed and are excluded"
                     + (f" ({', '.join(per_system)})" if per_system else "") + " (see errors.jsonl).")
    notes.extend(tex_escape(n) for n in summary.get("notes", []))
    spec = "l" + "c" * len(cols)
    caption = tex_escape(cfg.report.title or f"Objective metrics, suite {cfg.name} (v{cfg.version}).")
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small",
        f"\\caption{{{caption}}}", f"\\label{{tab:{tex_escape(cfg.name).replace(chr(92), '')}-metrics}}",
        *fit_to_width([f"\\begin{{tabular}}{{{spec}}}", r"\toprule", head + r" \\", r"\midrule", *lines,
                       r"\bottomrule", r"\end{tabular}"]),
        r"\par\vspace{2pt}\footnotesize " + " ".join(notes),
        r"\end{table}", ""])


def standalone(fragment: str) -> str:
    return "\n".join([r"\documentclass{article}", r"\usepackage{booktabs}", r"\usepackage{graphicx}",
                      r"\usepackage[margin=1in]{geometry}",
                      r"\begin{document}", fragment, r"\end{document}", ""])


def write_metric_tables(summary: dict, metrics, out_dir: Path, cfg) -> list[Path]:
    frag = metric_table(summary, metrics, cfg)
    a = atomic_write_text(Path(out_dir) / "metrics.tex", frag)
    b = atomic_write_text(Path(out_dir) / "metrics_standalone.tex", standalone(frag))
    return [a, b]
