"""Plots of a MOS analysis (matplotlib, Agg): each as PDF (for papers) and PNG (for HTML).

* ``mos_bars``       MOS per criterion and system with CI error bars and significance daggers
* ``distributions``  share of each score 1..5 per system and criterion
* ``judge_bias``     each judge's mean deviation from the other judges on the same clips
* ``metric_vs_mos``  objective metric vs MOS, clip level (small) and system means (large)

All take the ``analysis`` dict of :func:`vastbench.mos.analyze.analyze_ratings`.
Plots of simulated ratings say SIMULATED in the title, carry a watermark and
``_SIMULATED`` in the file name; the title is also stored in the files'
metadata.
"""

from __future__ import annotations

import math
from pathlib import Path

from vastbench.mos.schema import CRITERIA
from vastbench.report.mos_tables import mos_cells

SIM_TITLE = "SIMULATED judges, not human ratings"


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _tag(analysis: dict) -> str:
    return "_SIMULATED" if analysis.get("simulated") else ""


def _title(analysis: dict, text: str) -> str:
    return f"{text}\n{SIM_TITLE}" if analysis.get("simulated") else text


def _colors(systems: list[str]) -> dict[str, tuple]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return {s: cmap(i % 10) for i, s in enumerate(systems)}


def _save(fig, out_dir: Path, name: str, title: str, analysis: dict) -> dict[str, Path]:
    plt = _plt()
    if analysis.get("simulated"):
        fig.text(0.5, 0.5, "SIMULATED", fontsize=64, color="red", alpha=0.10, ha="center", va="center",
                 rotation=25, zorder=0)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"{name}{_tag(analysis)}"
    # ASCII, so the words are findable in the files as they are (PDF Info, PNG tEXt)
    meta_title = title.replace("\n", " -- ").replace("\u2020", "(dagger)").encode("ascii", "replace").decode()
    pdf, png = base.with_suffix(".pdf"), base.with_suffix(".png")
    fig.savefig(pdf, bbox_inches="tight", metadata={"Title": meta_title, "Creator": "vastbench"})
    fig.savefig(png, dpi=150, bbox_inches="tight", metadata={"Title": meta_title, "Software": "vastbench"})
    plt.close(fig)
    return {f"{name}_pdf": pdf, f"{name}_png": png}


def mos_bars(analysis: dict, out_dir: Path) -> dict[str, Path]:
    plt = _plt()
    ci = analysis.get("options", {}).get("ci", "mixed")
    cells = mos_cells(analysis, ci)
    crits, systems = analysis["criteria"], analysis["systems"]
    colors = _colors(systems)
    n = max(len(systems), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5.5, 1.1 + len(crits) * (0.45 * n + 0.6)), 3.6))
    for k, s in enumerate(systems):
        xs, ys, es, sig = [], [], [], []
        for i, c in enumerate(crits):
            if (s, c) not in cells:
                continue
            v, h, g = cells[(s, c)]
            xs.append(i - 0.4 + width * (k + 0.5))
            ys.append(v)
            es.append(h if math.isfinite(h) else 0.0)
            sig.append(g)
        label = s + (" (ref.)" if s == analysis.get("reference") else "")
        ax.bar(xs, [y - 1 for y in ys], width * 0.92, bottom=1, color=colors[s], label=label,
               yerr=es, capsize=3, error_kw={"elinewidth": 1})
        for x, y, e, g in zip(xs, ys, es, sig):
            if g:
                ax.text(x, y + e + 0.05, "\u2020", ha="center", va="bottom", fontsize=10)
    ax.set_xticks(range(len(crits)))
    ax.set_xticklabels([CRITERIA[c].label for c in crits])
    ax.set_ylim(1, 5.45)
    ax.set_ylabel("MOS (1-5)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, ncol=min(n, 4), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    level = int(round(100 * analysis.get("options", {}).get("level", 0.95)))
    method = "mixed-model CI" if ci == "mixed" else "t CI over items"
    ex = len(analysis.get("excluded", []))
    title = _title(analysis, f"MOS with {level}% {method} ({analysis['meta']['judges']['analysed']} judges"
                   + (f", {ex} excluded" if ex else "") + "); \u2020 differs from the reference (Holm)")
    ax.set_title(title, fontsize=9)
    return _save(fig, out_dir, "mos_bars", title, analysis)


def distributions(analysis: dict, out_dir: Path) -> dict[str, Path]:
    plt = _plt()
    crits, systems = analysis["criteria"], analysis["systems"]
    share = {(r["system"], r["criterion"], int(r["score"])): (r["share"] or 0.0) for r in analysis["distribution"]}
    cmap = plt.get_cmap("RdYlGn")
    colors = [cmap(x) for x in (0.05, 0.27, 0.5, 0.73, 0.95)]
    fig, axes = plt.subplots(1, len(crits), figsize=(3.3 * len(crits) + 1.2, 0.45 * len(systems) + 1.5), sharey=True,
                             squeeze=False)
    for ax, c in zip(axes[0], crits):
        left = [0.0] * len(systems)
        for score in range(1, 6):
            vals = [share.get((s, c, score), 0.0) for s in systems]
            ax.barh(range(len(systems)), vals, left=left, color=colors[score - 1], label=str(score), height=0.7)
            left = [a + b for a, b in zip(left, vals)]
        ax.set_title(CRITERIA[c].label, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of ratings")
    axes[0][0].set_yticks(range(len(systems)))
    axes[0][0].set_yticklabels(systems)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(title="score", fontsize=7, title_fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    title = _title(analysis, "Rating distributions (screened judges)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, "distributions", title, analysis)


def judge_bias(analysis: dict, out_dir: Path) -> dict[str, Path]:
    plt = _plt()
    rows = analysis["judge_bias"]
    reasons = {e["judge"]: e["reason"] for e in analysis.get("excluded", [])}
    fig, ax = plt.subplots(figsize=(6.2, 0.26 * len(rows) + 1.3))
    for i, r in enumerate(rows):
        ex = bool(r.get("excluded"))
        se = r.get("se") or 0.0
        ax.errorbar(r["bias"], i, xerr=1.96 * se, fmt="o", color="tab:red" if ex else "tab:blue", ms=4, capsize=2)
        if ex:
            short = reasons.get(r["judge"], "").split(":")[0]
            ax.text(r["bias"] + 1.96 * se + 0.05, i, f"excluded ({short})", va="center", fontsize=7, color="tab:red")
    ax.axvline(0, color="0.4", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["judge"] for r in rows], fontsize=7)
    ax.set_xlabel("mean score minus the other judges' mean on the same clip (\u00b195% CI)")
    title = _title(analysis, "Judge bias (all judges; red: excluded by screening)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out_dir, "judge_bias", title, analysis)


def metric_vs_mos(analysis: dict, out_dir: Path) -> dict[str, Path]:
    pts = analysis.get("correlation_points") or []
    if not pts:
        return {}
    plt = _plt()
    pairs = list(dict.fromkeys((p["metric"], p["criterion"]) for p in pts))[:6]
    corr = {(r["metric"], r["criterion"], r["level"]): r for r in analysis.get("correlation", [])}
    colors = _colors(analysis["systems"])
    ncol = min(3, len(pairs))
    nrow = math.ceil(len(pairs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.2 * nrow + 0.4), squeeze=False)
    for ax in axes.flat[len(pairs):]:
        ax.axis("off")
    for ax, (metric, crit) in zip(axes.flat, pairs):
        sub = [p for p in pts if p["metric"] == metric and p["criterion"] == crit]
        for s in analysis["systems"]:
            ss = [p for p in sub if p["system"] == s]
            if not ss:
                continue
            ax.scatter([p["value"] for p in ss], [p["mos"] for p in ss], s=12, alpha=0.45, color=colors[s])
            ax.scatter([sum(p["value"] for p in ss) / len(ss)], [sum(p["mos"] for p in ss) / len(ss)], s=80,
                       color=colors[s], edgecolor="black", label=s, zorder=3)
        c = corr.get((metric, crit, "clip"), {})
        r, lo, hi = c.get("pearson"), c.get("pearson_lo"), c.get("pearson_hi")
        txt = f"clips: r={r:.2f} [{lo:.2f}, {hi:.2f}]" if None not in (r, lo, hi) else "clips: r undefined"
        cs = corr.get((metric, crit, "system"), {})
        if cs.get("spearman") is not None:
            txt += f"\nsystems: \u03c1={cs['spearman']:.2f}"
        ax.set_title(f"{metric} vs {CRITERIA[crit].label} MOS", fontsize=9)
        ax.text(0.02, 0.98, txt, transform=ax.transAxes, va="top", fontsize=7)
        ax.set_xlabel(metric)
        ax.set_ylabel("MOS of the clip")
        ax.set_ylim(0.8, 5.4)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="lower right")
    title = _title(analysis, "Objective metrics vs MOS (small: clips, large: system means)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, "metric_vs_mos", title, analysis)


def write_mos_plots(analysis: dict, out_dir: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for fn in (mos_bars, distributions, judge_bias, metric_vs_mos):
        paths.update(fn(analysis, out_dir))
    return paths


__all__ = ["mos_bars", "distributions", "judge_bias", "metric_vs_mos", "write_mos_plots", "SIM_TITLE"]
