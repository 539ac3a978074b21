"""LaTeX tables (booktabs) of a MOS analysis and of a run: MOS, objective metrics, ablation.

Each table is an ``\\input``-able fragment (``NAME.tex``) and a standalone
document (``NAME_standalone.tex``) that compiles with pdflatex.  Shared
conventions with :mod:`vastbench.report.latex`: best value bold, second
underlined, ground truth shown but never ranked, arrows for the better
direction.  Tables made from simulated judges say SIMULATED in the caption, in
a footnote and in the file name.

MOS cells are ``MOS $\\pm$ half-width of the CI`` rounded to two decimals;
``ci="mixed"`` (the headline) shows the raw mean with the mixed-model CI and
marks with a dagger the systems whose mixed-model contrast with the reference
has a Holm-adjusted p < alpha; ``ci="t"`` shows the mean of item means with
the t interval over items and marks by the Holm-adjusted Wilcoxon signed-rank
test over items -- everything in it reproducible with pandas + scipy
(docs/statistics.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

from vastbench.mos.schema import CRITERIA
from vastbench.report.latex import fit_to_width, fmt_value, metric_table, rank_marks, standalone, tex_escape
from vastbench.rundir import atomic_write_text, read_json

DAGGER = r"$^{\dagger}$"
UP, DOWN = r"$\uparrow$", r"$\downarrow$"
RULE_NAMES = {"bt500": "BT.500", "gold": "gold", "trap": "trap", "straightline": "straight-lining",
              "too_fast": "too fast", "low_corr": "low corr."}


def _tag(analysis: dict) -> str:
    return "_SIMULATED" if analysis.get("simulated") else ""


def _mark(cell: str, mark: str | None) -> str:
    if mark == "best":
        return r"\textbf{" + cell + "}"
    if mark == "second":
        return r"\underline{" + cell + "}"
    return cell


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return float("nan")
    return v


def mos_cells(analysis: dict, ci: str | None = None, judges: str = "screened") -> dict:
    """``{(system, criterion): (value, half, significant)}`` as the tables show them."""
    ci = ci or analysis.get("options", {}).get("ci", "mixed")
    alpha = analysis.get("options", {}).get("alpha", 0.05)
    sig = {}
    for r in analysis["pairwise"].get(judges) or []:
        p = _num(r.get("p_mixed_holm" if ci == "mixed" else "p_wilcoxon_holm"))
        sig[(r["system"], r["criterion"])] = bool(math.isfinite(p) and p < alpha)
    out = {}
    for r in analysis["mos"][judges]:
        if ci == "t":
            val = _num(r.get("t_mean"))
            half = (_num(r.get("t_hi")) - _num(r.get("t_lo"))) / 2
        else:
            val, half = _num(r.get("mos")), _num(r.get("ci_half"))
        out[(r["system"], r["criterion"])] = (val, half, sig.get((r["system"], r["criterion"]), False))
    return out


def fmt_mos(val: float, half: float) -> str:
    if not math.isfinite(val):
        return "--"
    if not math.isfinite(half):
        return f"{val:.2f}"
    return f"{val:.2f} $\\pm$ {half:.2f}"


def ci_description(analysis: dict, ci: str) -> str:
    level = int(round(100 * analysis.get("options", {}).get("level", 0.95)))
    if ci == "t":
        return (f"mean of item means $\\pm$ half-width of the {level}\\% $t$ interval over items "
                r"($\bar m \pm t_{I-1}\, s_m/\sqrt{I}$; it treats the judges as fixed, so it is narrower "
                r"than the mixed-model CI)")
    methods = {r.get("ci_method") for r in analysis["mos"]["screened"]}
    desc = (f"mean $\\pm$ half-width of the {level}\\% CI (linear mixed model with random intercepts for "
            r"judge, item, clip and judge$\times$system; REML, Satterthwaite df)")
    fallback = sorted(m for m in methods if m and not str(m).startswith("mixed model (reml"))
    if fallback:
        desc += "; where that model could not be fitted: " + "; ".join(tex_escape(m) for m in fallback)
    return desc


def screening_note(analysis: dict) -> str:
    meta = analysis.get("meta", {})
    n = meta.get("judges", {}).get("total")
    rules = analysis.get("options", {}).get("rules") or []
    rule_txt = "ITU-R BT.500 (Annex 2)" + (" and P.808-style " + ", ".join(RULE_NAMES[r] for r in rules if r != "bt500")
                                          + " rules" if any(r != "bt500" for r in rules) else "")
    scr = {r["judge"]: r for r in analysis.get("screening", [])}
    ex = analysis.get("excluded", [])
    if not ex:
        return f"{n} judges, none excluded by screening ({rule_txt})."
    parts = []
    for e in ex:
        row = scr.get(e["judge"], {})
        why = [RULE_NAMES[r] for r in rules if row.get(f"flag_{r}")]
        parts.append(f"{tex_escape(e['judge'])} ({', '.join(why) or 'screening'})")
    return (f"{n} judges; {len(ex)} excluded after screening ({rule_txt}): " + ", ".join(parts)
            + f"; {n - len(ex)} analysed.")


def design_note(analysis: dict) -> str:
    meta = analysis.get("meta", {})
    rpc = meta.get("ratings", {}).get("per_clip", {}) or {}
    items = meta.get("ratings", {}).get("items")
    if not rpc:
        return ""
    per = (f"{rpc['min']}" if rpc.get("min") == rpc.get("max") else f"{rpc.get('min')}--{rpc.get('max')}")
    return f"{items} items; {per} ratings per clip and criterion."


def simulated_note() -> str:
    return r"\textbf{SIMULATED}: ratings from simulated judges (vastbench mos simulate), not from people."


def _notes_block(notes: list[str]) -> list[str]:
    # a parbox is justified whatever \centering says
    notes = [n for n in notes if n]
    return [r"\par\vspace{3pt}\parbox{\linewidth}{\footnotesize " + " ".join(notes) + "}"]


def standalone_document(fragment: str) -> str:
    """:func:`vastbench.report.latex.standalone` without page numbers (clean PNG renders)."""
    return standalone(fragment).replace("\\begin{document}", "\\pagestyle{empty}\n\\begin{document}", 1)


def mos_table(analysis: dict, ci: str | None = None, *, caption: str | None = None, label: str | None = None,
              judges: str = "screened") -> str:
    """The MOS table fragment: one row per system, one column per criterion."""
    ci = ci or analysis.get("options", {}).get("ci", "mixed")
    cells = mos_cells(analysis, ci, judges)
    crits = analysis["criteria"]
    systems = [s for s in analysis["systems"] if any((s, c) in cells for c in crits)]
    unranked = set(analysis.get("unranked", []))
    ranks = {}
    for c in crits:
        vals = {s: round(cells[(s, c)][0], 2) for s in systems if (s, c) in cells and s not in unranked}
        ranks[c] = rank_marks(vals, True)
    head = " & ".join(["System"] + [f"{CRITERIA[c].short} $\\uparrow$" for c in crits]) + r" \\"
    rows = []
    ref = analysis.get("reference")
    for s in systems:
        name = tex_escape(s) + (r" (ref.)" if s == ref else "")
        out = [name]
        for c in crits:
            if (s, c) not in cells:
                out.append("--")
                continue
            val, half, sig = cells[(s, c)]
            cell = _mark(fmt_mos(val, half), ranks[c].get(s))
            out.append(cell + (DAGGER if sig else ""))
        rows.append(" & ".join(out) + r" \\")
    sim = analysis.get("simulated")
    suite = analysis.get("context", {}).get("suite")
    cap = caption or ("Mean opinion scores" + (f", suite {suite}" if suite else "") + ".")
    if sim:
        cap = "SIMULATED judges (not human ratings). " + cap
    lab = label or ("tab:" + (tex_escape(suite).replace("\\", "") + "-" if suite else "") + "mos" + ("-simulated" if sim else ""))
    alpha = analysis.get("options", {}).get("alpha", 0.05)
    notes = []
    if sim:
        notes.append(simulated_note())
    notes.append("MOS on the 5-point scale (1 = very poor, 5 = very good): " + ci_description(analysis, ci) + ".")
    n_cmp = len(systems) - 1
    if ref and analysis["pairwise"].get(judges):
        test = ("mixed-model contrast, Satterthwaite $t$" if ci == "mixed" else "Wilcoxon signed-rank test over items")
        notes.append(f"{DAGGER} differs from {tex_escape(ref)} at $p<{alpha:g}$ ({test}, Holm-corrected over the "
                     f"{n_cmp} comparison{'s' if n_cmp != 1 else ''} of each criterion).")
    if unranked:
        notes.append("Best in bold, second underlined; " + ", ".join(tex_escape(u) for u in sorted(unranked)) + " not ranked.")
    else:
        notes.append("Best in bold, second underlined.")
    notes.append(screening_note(analysis))
    notes.append(design_note(analysis))
    missing = analysis.get("meta", {}).get("missing_criteria") or []
    if missing:
        notes.append("No usable ratings for " + ", ".join(CRITERIA[m].label for m in missing) + ".")
    notes.append("; ".join(f"{CRITERIA[c].short}: {CRITERIA[c].label.lower()}" for c in crits).replace("&", r"\&") + ".")
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small",
        f"\\caption{{{tex_escape(cap)}}}", f"\\label{{{lab}}}",
        *fit_to_width([f"\\begin{{tabular}}{{l{'c' * len(crits)}}}", r"\toprule", head, r"\midrule", *rows,
                       r"\bottomrule", r"\end{tabular}"]), *_notes_block(notes), r"\end{table}", ""])


def write_table(out_dir: Path, name: str, fragment: str) -> dict[str, Path]:
    a = atomic_write_text(Path(out_dir) / f"{name}.tex", fragment)
    b = atomic_write_text(Path(out_dir) / f"{name}_standalone.tex", standalone_document(fragment))
    return {f"{name}_tex": a, f"{name}_standalone_tex": b}


def write_mos_tables(analysis: dict, out_dir: Path, ci: str | None = None) -> dict[str, Path]:
    """``mos[_SIMULATED].tex`` and its standalone document."""
    name = "mos" + _tag(analysis)
    paths = write_table(out_dir, name, mos_table(analysis, ci))
    return {"mos_tex": paths[f"{name}_tex"], "mos_standalone_tex": paths[f"{name}_standalone_tex"]}


# --------------------------------------------------------------------------- objective metrics
def _registry_label(name: str) -> str | None:
    try:
        from vastbench.registry import METRICS

        return getattr(METRICS.get(name), "label", None)
    except Exception:  # noqa: BLE001 - a label is cosmetic; fall back to the name
        return None


def _metric_label(name: str, desc: dict) -> str:
    """Column header: the metric's ``label`` (LaTeX allowed), else its escaped name."""
    return str(desc.get("label") or _registry_label(name) or tex_escape(name))


def weights_footnotes(summary: dict) -> list[str]:
    """One line per evaluation network's weights, from the metric descriptions in summary.json."""
    out: list[str] = []
    for name, d in (summary.get("metrics") or {}).items():
        label = d.get("label") or _registry_label(name) or name
        if d.get("footnote"):
            line = str(d["footnote"])
        elif d.get("weights"):
            line = f"{label}: {d['weights']}."
        elif d.get("network"):
            sha = str(d.get("weights_sha256") or "")[:12]
            line = f"{label}: {d['network']}, weights from {d.get('weights_source', 'unknown')}" + (f" (sha256 {sha})" if sha else "") + "."
        elif d.get("backbone"):
            line = f"{label}: backbone {d['backbone']}."
        else:
            continue
        if line not in out:
            out.append(line)
    return out


def _suite_cfg(run_dir: Path):
    man = read_json(Path(run_dir) / "manifest.json", {}) or {}
    suite = man.get("suite") or {}
    try:
        from vastbench.config import SuiteConfig

        return SuiteConfig.model_validate(suite)
    except Exception:  # noqa: BLE001 - an older manifest: enough for the table
        systems = [SimpleNamespace(label=s.get("label"), generator=s.get("generator"), args=s.get("args", {}))
                   for s in suite.get("systems", [])]
        return SimpleNamespace(name=suite.get("name", "run"), version=suite.get("version", 0), systems=systems,
                               report=SimpleNamespace(title=(suite.get("report") or {}).get("title")))


def metric_shims(summary: dict) -> list:
    return [SimpleNamespace(name=n, label=_metric_label(n, d), higher_is_better=bool(d.get("higher_is_better", True)))
            for n, d in (summary.get("metrics") or {}).items()]


def objective_table(run_dir: Path, summary: dict | None = None) -> str:
    """The objective-metrics table of :func:`vastbench.report.latex.metric_table`, with footnotes
    naming the SyncNet / LPIPS / FID weights when summary.json describes them."""
    summary = dict(summary or read_json(Path(run_dir) / "metrics" / "summary.json"))
    notes = list(summary.get("notes") or [])
    notes += [n for n in weights_footnotes(summary) if n not in notes]
    summary["notes"] = notes
    frag = metric_table(summary, metric_shims(summary), _suite_cfg(run_dir))
    # long notes read better justified under the table than centred
    lead = r"\par\vspace{2pt}\footnotesize "
    return "\n".join(r"\par\vspace{3pt}\parbox{\linewidth}{\footnotesize " + ln[len(lead):] + "}" if ln.startswith(lead) else ln
                     for ln in frag.split("\n"))


# --------------------------------------------------------------------------- ablation
def ablation_systems(run_dir: Path, candidates: list[str]) -> tuple[list[str], bool]:
    """Systems of an ablation (VAST variants) when the suite has two or more, else all candidates."""
    cfg = _suite_cfg(run_dir)
    variants = [s.label for s in cfg.systems if s.label in candidates
                and (str(s.generator).startswith("vast") or "ablation" in (getattr(s, "args", None) or {}))]
    if len(variants) >= 2:
        return variants, True
    return candidates, False


def ablation_table(run_dir: Path, analysis: dict, summary: dict | None = None) -> str | None:
    """Objective metrics and MOS side by side (means; the CIs are in the separate tables)."""
    summary = summary or read_json(Path(run_dir) / "metrics" / "summary.json")
    if not summary or not analysis:
        return None
    ci = analysis.get("options", {}).get("ci", "mixed")
    cells = mos_cells(analysis, ci)
    crits = analysis["criteria"]
    candidates = [s for s in summary["systems"] if any((s, c) in cells for c in crits)]
    if not candidates:
        return None
    systems, is_ablation = ablation_systems(run_dir, candidates)
    metrics = [m for m in metric_shims(summary)]
    unranked = set(analysis.get("unranked", []))
    ranks = {}
    for m in metrics:
        vals = {s: summary["systems"][s]["metrics"].get(m.name, {}).get("mean", float("nan")) for s in systems if s not in unranked}
        vals = {s: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else float("nan")) for s, v in vals.items()}
        ranks[m.name] = rank_marks(vals, m.higher_is_better)
    for c in crits:
        vals = {s: round(cells[(s, c)][0], 2) for s in systems if (s, c) in cells and s not in unranked}
        ranks[c] = rank_marks(vals, True)
    nm, nc = len(metrics), len(crits)
    sim = analysis.get("simulated")
    group = (f" & \\multicolumn{{{nm}}}{{c}}{{Objective metrics}} & \\multicolumn{{{nc}}}{{c}}"
             f"{{MOS{' (SIMULATED)' if sim else ''}}} \\\\")
    cmid = f"\\cmidrule(lr){{2-{1 + nm}}} \\cmidrule(lr){{{2 + nm}-{1 + nm + nc}}}"
    head = " & ".join(["System"] + [f"{m.label} {UP if m.higher_is_better else DOWN}" for m in metrics]
                      + [f"{CRITERIA[c].short} {UP}" for c in crits]) + r" \\"
    rows = []
    for s in systems:
        out = [tex_escape(s)]
        for m in metrics:
            st = summary["systems"][s]["metrics"].get(m.name, {})
            out.append(_mark(fmt_value(float(st.get("mean", float("nan"))), float("nan"), float("nan")), ranks[m.name].get(s)))
        for c in crits:
            if (s, c) not in cells:
                out.append("--")
                continue
            val, _, sig = cells[(s, c)]
            out.append(_mark(f"{val:.2f}" if math.isfinite(val) else "--", ranks[c].get(s)) + (DAGGER if sig else ""))
        rows.append(" & ".join(out) + r" \\")
    suite = analysis.get("context", {}).get("suite") or summary.get("suite")
    cap = ("Ablation: objective metrics and MOS" if is_ablation else "Objective metrics and MOS side by side") + (
        f", suite {suite}." if suite else ".")
    if sim:
        cap = "SIMULATED judges (MOS columns are not human ratings). " + cap
    lab = "tab:" + (tex_escape(suite).replace("\\", "") + "-" if suite else "") + "ablation" + ("-simulated" if sim else "")
    notes = []
    if sim:
        notes.append(simulated_note())
    notes.append("Means only: objective metrics over clips, MOS over ratings; CIs in the separate metric and MOS tables.")
    if analysis.get("reference") and analysis["pairwise"].get("screened"):
        notes.append(f"{DAGGER} MOS differs from {tex_escape(analysis['reference'])} at "
                     f"$p<{analysis.get('options', {}).get('alpha', 0.05):g}$ (Holm).")
    notes.append("Best in bold, second underlined" + (
        "; " + ", ".join(tex_escape(u) for u in sorted(unranked)) + " not ranked." if unranked else "."))
    notes.append(screening_note(analysis))
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", f"\\caption{{{tex_escape(cap)}}}", f"\\label{{{lab}}}",
        *fit_to_width([f"\\begin{{tabular}}{{l{'c' * (nm + nc)}}}", r"\toprule", group, cmid, head, r"\midrule",
                       *rows, r"\bottomrule", r"\end{tabular}"]), *_notes_block(notes), r"\end{table}", ""])


__all__ = ["mos_table", "mos_cells", "fmt_mos", "write_mos_tables", "write_table", "objective_table",
           "ablation_table", "weights_footnotes", "screening_note", "DAGGER"]
