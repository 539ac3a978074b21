"""Reporting a MOS study: the metadata a MOS result must come with, the console
summary, and the run report (``vastbench report``: LaTeX tables, plots, HTML).

Reporting metadata follows ITU-T P.800.2 ("Mean opinion score interpretation
and reporting") and recent recommendations for MOS reporting in speech and
video synthesis: the scale and its labels, the number of judges and of ratings
per clip, the screening applied and who was excluded and why, the CI method,
the test dates, and whether the judges were simulated.
"""

from __future__ import annotations

import base64
import html
import inspect
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from vastbench.errors import VastbenchError
from vastbench.mos.schema import CRITERIA, CRITERION_NAMES, SCORE_MAX, SCORE_MIN
from vastbench.rundir import atomic_write_text, read_json

SCREENING_PROCEDURE = ("ITU-R BT.500 Annex 2 observer screening (presentation = clip x criterion; "
                       "reject when (P+Q)/n > 5% and |P-Q|/(P+Q) < 0.3) and P.808-style rules "
                       "(gold clips, trapping clips, straight-lining, leaving before the clip ended)")


# --------------------------------------------------------------------------- metadata
def _versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("vastbench", "numpy", "scipy", "pandas", "statsmodels", "krippendorff"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _dates(clean: pd.DataFrame) -> dict:
    ts = pd.to_datetime(clean["created_at"].replace("", None), errors="coerce", utc=True, format="ISO8601").dropna()
    if ts.empty:
        return {"first": None, "last": None, "days": 0, "note": "no created_at timestamps in the ratings"}
    return {"first": ts.min().isoformat(), "last": ts.max().isoformat(),
            "days": int(ts.dt.date.nunique())}


def reporting_metadata(clean: pd.DataFrame, analysis: dict, *, ratings_per_clip: dict) -> dict:
    """What a MOS result must be reported with (module docstring)."""
    from vastbench.mos.screening import screen_judges

    reg = clean[clean["kind"] == "regular"]
    kinds = clean.drop_duplicates(["judge", "clip"])["kind"].value_counts().to_dict()
    per_judge = reg.groupby("judge").size()
    defaults = {k: p.default for k, p in inspect.signature(screen_judges).parameters.items()
                if p.default is not inspect.Parameter.empty and k not in ("rules", "source")}
    excluded = analysis["excluded"]
    opts = analysis["options"]
    ci = opts.get("ci", "mixed")
    expected = analysis["criteria"]
    wanted = [c for c in CRITERION_NAMES]
    meta = {
        "simulated": bool(analysis["simulated"]),
        "study": sorted(set(clean["study"])),
        "scale": {
            "type": f"absolute category rating, {SCORE_MAX - SCORE_MIN + 1}-point (labels from the VAST MOS guideline)",
            "min": SCORE_MIN, "max": SCORE_MAX,
            "criteria": {c: {"label": CRITERIA[c].label, "question": CRITERIA[c].question,
                             "anchors": {str(k): v for k, v in sorted(CRITERIA[c].anchors.items(), reverse=True)}}
                         for c in expected},
        },
        "judges": {"total": int(clean["judge"].nunique()), "excluded": len(excluded),
                   "analysed": int(clean["judge"].nunique()) - len(excluded), "excluded_list": excluded},
        "ratings": {
            "regular": int(len(reg)), "pages_by_kind": {str(k): int(v) for k, v in kinds.items()},
            "systems": int(reg["system"].nunique()), "items": int(reg["item"].nunique()), "clips": int(reg["clip"].nunique()),
            "per_clip": ratings_per_clip,
            "per_judge": ({"mean": float(per_judge.mean()), "min": int(per_judge.min()), "max": int(per_judge.max())}
                          if len(per_judge) else {}),
        },
        "screening": {"procedure": SCREENING_PROCEDURE, "rules_that_exclude": list(opts.get("rules") or []),
                      "thresholds": defaults, "applied": True},
        "ci": {"level": opts.get("level"), "shown_in_tables": ci,
               "headline": "linear mixed model, random intercepts judge + item + clip + judge:system, REML, "
                           "Satterthwaite t (falls back to t over item means when the model cannot be fitted)",
               "also_reported": ["t over item means", "naive (every rating independent; comparison only)",
                                 "CrowdMOS (Ribeiro et al. 2011)"]},
        "tests": ("each system vs the reference per criterion: mixed-model contrast (headline) and Wilcoxon "
                  "signed-rank over item means, Holm-corrected over the systems of each criterion; effect sizes "
                  "Cohen's d_z and matched-pairs rank-biserial r"),
        "reference": analysis.get("reference"),
        "agreement": {"krippendorff_alpha_ordinal": (analysis.get("agreement", {}).get("screened") or {}).get("alpha")},
        "dates": _dates(clean),
        "missing_criteria": [c for c in wanted if c not in expected],
        "software": _versions(),
    }
    if meta["simulated"]:
        meta["warning"] = "SIMULATED: ratings from simulated judges, not from people"
    return meta


# --------------------------------------------------------------------------- console
def _cell(v, h, sig) -> str:
    if v is None or not math.isfinite(v):
        return "--"
    return f"{v:.2f} ± {h:.2f}" + (" †" if sig else "") if math.isfinite(h) else f"{v:.2f}"


def print_summary(analysis: dict, paths: dict | None = None, console=None, out_dir: Path | None = None) -> None:
    """A rich summary of an analysis on the terminal."""
    from rich.console import Console
    from rich.table import Table

    from vastbench.report.mos_tables import mos_cells

    con = console or Console(soft_wrap=True)
    sim = analysis.get("simulated")
    if sim:
        con.print("[bold red]SIMULATED[/]: these ratings come from simulated judges, not from people")
    meta = analysis["meta"]
    j = meta["judges"]
    con.print(f"source: {analysis['source'].get('path', analysis['source'].get('label'))}")
    dates = meta["dates"]
    con.print(f"judges: {j['total']} ({j['excluded']} excluded, {j['analysed']} analysed); regular ratings: "
              f"{meta['ratings']['regular']}; items: {meta['ratings']['items']}; ratings per clip: "
              f"{meta['ratings']['per_clip'].get('min')}-{meta['ratings']['per_clip'].get('max')}; "
              f"dates: {(dates.get('first') or '?')[:10]} .. {(dates.get('last') or '?')[:10]}")
    for p in analysis.get("problems", []):
        con.print(f"[yellow]problem:[/] {p}")
    for n in analysis.get("notes", []):
        con.print(f"[dim]note:[/] {n}")
    for e in analysis.get("excluded", []):
        con.print(f"[magenta]excluded[/] {e['judge']}: {e['reason']}")
    ci = analysis["options"].get("ci", "mixed")
    cells = mos_cells(analysis, ci)
    t = Table(title=("SIMULATED - " if sim else "") + f"MOS ± {int(100 * analysis['options']['level'])}% CI "
              f"({'mixed model' if ci == 'mixed' else 't over items'}); † vs {analysis.get('reference')} (Holm)")
    t.add_column("system")
    for c in analysis["criteria"]:
        t.add_column(CRITERIA[c].short, justify="right")
    for s in analysis["systems"]:
        t.add_row(s + (" (ref.)" if s == analysis.get("reference") else ""),
                  *[_cell(*cells[(s, c)]) if (s, c) in cells else "--" for c in analysis["criteria"]])
    con.print(t)
    alpha = meta["agreement"].get("krippendorff_alpha_ordinal")
    con.print(f"agreement: Krippendorff's alpha (ordinal) = {alpha:.3f}" if alpha is not None else "agreement: alpha undefined")
    for r in analysis.get("correlation", []):
        if r.get("level") == "clip" and r.get("pearson") is not None:
            con.print(f"{r['metric']} vs {r['criterion']} MOS (clips, n={r['n']}): r = {r['pearson']:.2f} "
                      f"[{r['pearson_lo']:.2f}, {r['pearson_hi']:.2f}]")
    for c, p in analysis.get("power", {}).items():
        sm = p.get("smallest")
        con.print(f"power ({c}, Δ={p['delta']}): " + (f"{sm['judges']} judges x {sm['items']} items reach "
                  f"{p['target']:.0%} (power {sm['power']:.2f})" if sm else f"no design in the grid reaches {p['target']:.0%}"))
    if out_dir is not None:
        con.print(f"written: {out_dir}")


# --------------------------------------------------------------------------- the run report
@dataclass
class ReportOptions:
    """``vastbench report RUN_DIR``."""

    reference: str | None = None
    ci: str = "mixed"
    pdf: bool | None = None      # None: compile when pdflatex is present
    db: str | None = None
    title: str | None = None


@dataclass
class ReportResult:
    run_dir: Path
    html: Path
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    pdfs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    analysis: dict | None = None


def _png_b64(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def stills(run_dir: Path, systems: list[str]) -> dict[str, str]:
    """A middle frame of each system's first clip, as PNG data URLs."""
    from vastbench import media

    out = {}
    plt = None
    for s in systems:
        clips = sorted((Path(run_dir) / "systems" / s / "clips").glob("*.mp4"))
        if not clips:
            continue
        try:
            v = media.read_video(clips[0], with_audio=False, expected_fps=None)
        except (VastbenchError, OSError, ValueError):
            continue
        if v.n_frames == 0:
            continue
        if plt is None:
            import matplotlib

            matplotlib.use("Agg", force=True)
            import matplotlib.image as plt  # noqa: N813 - only imsave is used
        buf = io.BytesIO()
        plt.imsave(buf, v.frames[v.n_frames // 2], format="png")
        out[s] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return out


def _fmt(x, digits=3) -> str:
    if x is None:
        return "&ndash;"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return html.escape(str(x))
    if math.isinf(v):
        return "&infin;"
    if math.isnan(v):
        return "&ndash;"
    return f"{v:.{digits}f}"


def _html_table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    h = "".join(f"<th>{c}</th>" for c in header)
    b = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{h}</tr>{b}</table>'


def _objective_html(summary: dict) -> str:
    from vastbench.report.mos_tables import weights_footnotes

    metrics = summary.get("metrics", {})
    head = ["System"] + [f"{html.escape(n)} {'&uarr;' if d.get('higher_is_better', True) else '&darr;'}" for n, d in metrics.items()] + ["clips", "failed"]
    rows = []
    for label, s in summary["systems"].items():
        cells = [f"<b>{html.escape(label)}</b>"]
        for n in metrics:
            st = s["metrics"].get(n, {})
            m, lo, hi = st.get("mean"), st.get("ci_low"), st.get("ci_high")
            ci = "" if lo is None or (isinstance(lo, float) and math.isnan(lo)) else f" <small>[{_fmt(lo)}, {_fmt(hi)}]</small>"
            cells.append(_fmt(m) + ci)
        cells += [f"{s.get('n_generated')}/{s.get('n_requests')}", str(s.get("n_failed", 0))]
        rows.append(cells)
    notes = list(dict.fromkeys(list(summary.get("notes") or []) + weights_footnotes(summary)))
    return (f"<p>Mean and {int(100 * summary.get('ci', 0.95))}% bootstrap CI over clips "
            f"({summary.get('bootstrap')} resamples).</p>" + _html_table(head, rows)
            + "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes))


def _mos_html(analysis: dict) -> str:
    from vastbench.report.mos_tables import mos_cells

    ci = analysis["options"].get("ci", "mixed")
    cells = mos_cells(analysis, ci)
    crits = analysis["criteria"]
    head = ["System"] + [html.escape(CRITERIA[c].label) + " &uarr;" for c in crits]
    rows = []
    for s in analysis["systems"]:
        r = [f"<b>{html.escape(s)}</b>" + (" (ref.)" if s == analysis.get("reference") else "")]
        for c in crits:
            if (s, c) in cells:
                v, h, g = cells[(s, c)]
                r.append(f"{_fmt(v, 2)} &plusmn; {_fmt(h, 2)}" + (" &dagger;" if g else ""))
            else:
                r.append("&ndash;")
        rows.append(r)
    meta = analysis["meta"]
    level = int(100 * analysis["options"]["level"])
    method = ("linear mixed model (judge, item, clip, judge&times;system random intercepts; REML, Satterthwaite df)"
              if ci == "mixed" else "t interval over item means")
    test = "mixed-model contrast" if ci == "mixed" else "Wilcoxon signed-rank over items"
    ex = "; ".join(f"{html.escape(e['judge'])}: {html.escape(e['reason'])}" for e in analysis["excluded"]) or "none"
    out = [_html_table(head, rows),
           f'<p class="note">MOS &plusmn; half-width of the {level}% CI, {method}. &dagger; differs from '
           f'{html.escape(str(analysis.get("reference")))} at p &lt; {analysis["options"]["alpha"]} ({test}, Holm). '
           f'{meta["judges"]["total"]} judges, excluded by screening: {ex}.</p>']
    pw = analysis["pairwise"].get("screened") or []
    if pw:
        prow = [[html.escape(r["criterion"]), html.escape(r["system"]), _fmt(r.get("mixed_diff"), 2),
                 f"[{_fmt(r.get('mixed_lo'), 2)}, {_fmt(r.get('mixed_hi'), 2)}]", _fmt(r.get("p_mixed_holm"), 4),
                 _fmt(r.get("mean_diff"), 2), _fmt(r.get("p_wilcoxon_holm"), 4), _fmt(r.get("d_z"), 2),
                 _fmt(r.get("rank_biserial"), 2)] for r in pw]
        out.append("<h3>Each system vs the reference</h3>" + _html_table(
            ["criterion", "system", "diff (mixed)", "95% CI", "p Holm (mixed)", "diff (items)", "p Holm (Wilcoxon)",
             "d<sub>z</sub>", "rank-biserial r"], prow))
    return "".join(out)


def _screening_html(analysis: dict) -> str:
    rows = []
    for r in analysis["screening"]:
        flags = [k[5:] for k, v in r.items() if k.startswith("flag_") and v]
        rows.append([html.escape(r["judge"]), str(r.get("n_regular")), _fmt(r.get("bt500_ratio"), 3),
                     _fmt(r.get("bt500_asym"), 2), f"{r.get('gold_failed')}/{r.get('gold_n')}",
                     f"{r.get('trap_failed')}/{r.get('trap_n')}", _fmt(r.get("rating_var"), 2),
                     _fmt(r.get("corr_others"), 2), html.escape(", ".join(flags)),
                     "<b>excluded</b>" if r.get("excluded") else "", html.escape(r.get("reason") or r.get("note") or "")])
    return _html_table(["judge", "ratings", "BT.500 (P+Q)/n", "|P-Q|/(P+Q)", "gold failed", "trap failed", "variance",
                        "r with others", "flags", "", "reason / note"], rows, "small")


def _meta_html(meta: dict) -> str:
    items = [
        ("Simulated", "<b class='sim'>yes: SIMULATED judges</b>" if meta["simulated"] else "no"),
        ("Scale", html.escape(meta["scale"]["type"])),
        ("Labels", "; ".join(f"{html.escape(v['label'])}: 5 = {html.escape(v['anchors']['5'])} 1 = "
                            f"{html.escape(v['anchors']['1'])}" for v in meta["scale"]["criteria"].values())),
        ("Judges", f"{meta['judges']['total']} ({meta['judges']['excluded']} excluded, {meta['judges']['analysed']} analysed)"),
        ("Ratings", f"{meta['ratings']['regular']} regular; {meta['ratings']['items']} items x {meta['ratings']['systems']} "
                    f"systems; per clip {meta['ratings']['per_clip'].get('min')}&ndash;{meta['ratings']['per_clip'].get('max')}"),
        ("Screening", html.escape(meta["screening"]["procedure"])),
        ("CI", html.escape(meta["ci"]["headline"]) + f"; level {meta['ci']['level']}"),
        ("Tests", html.escape(meta["tests"])),
        ("Dates", f"{html.escape(str(meta['dates'].get('first')))} &ndash; {html.escape(str(meta['dates'].get('last')))}"),
        ("Agreement", "Krippendorff's &alpha; (ordinal) = " + _fmt(meta["agreement"].get("krippendorff_alpha_ordinal"))),
        ("Software", html.escape(", ".join(f"{k} {v}" for k, v in meta["software"].items()))),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 9px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}table.small{font-size:85%}small,.note{color:#555;font-size:90%}
.banner{background:#b00020;color:#fff;padding:.6em 1em;font-weight:bold;font-size:120%}.sim{color:#b00020}
img.plot{max-width:min(100%,900px);border:1px solid #eee;margin:.4em 0}dl{display:grid;grid-template-columns:11em 1fr}
dt{font-weight:bold}dd{margin:0 0 .3em 0}.stills{display:flex;flex-wrap:wrap;gap:1em}
.stills figure{margin:0;text-align:center}.stills img{width:192px;image-rendering:auto}"""


def write_html(run_dir: Path, summary: dict | None, analysis: dict | None, figures: dict[str, Path],
               files: list[Path], notes: list[str], title: str | None = None) -> Path:
    """One self-contained report.html: every image is embedded, no external resource."""
    run_dir = Path(run_dir)
    man = read_json(run_dir / "manifest.json", {}) or {}
    suite = man.get("suite", {}) or {}
    sim = bool(analysis and analysis.get("simulated"))
    title = title or (suite.get("report") or {}).get("title") or f"vastbench report: {suite.get('name', run_dir.name)}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"{' (SIMULATED MOS)' if sim else ''}</title><style>{CSS}</style></head><body>"]
    if sim:
        parts.append("<div class='banner'>SIMULATED: the MOS numbers, tables and plots in this report come from "
                     "simulated judges, not from people.</div>")
    parts.append(f"<h1>{html.escape(title)}</h1><p>{html.escape(str(suite.get('description', '')).strip())}</p>")
    if summary:
        parts.append("<h2>Objective metrics</h2>" + _objective_html(summary))
        fails = [(lab, rid, why) for lab, s in summary["systems"].items() for rid, why in (s.get("failures") or {}).items()]
        if fails:
            parts.append("<h3>Failures</h3><ul>" + "".join(f"<li><b>{html.escape(a)}</b> {html.escape(b)}: {html.escape(c)}</li>"
                                                       for a, b, c in fails) + "</ul>")
    if analysis:
        parts.append(f"<h2>MOS{' (SIMULATED)' if sim else ''}</h2>" + _mos_html(analysis))
        for key, cap in (("mos_bars_png", "MOS with CIs"), ("distributions_png", "Rating distributions"),
                         ("metric_vs_mos_png", "Objective metrics vs MOS"), ("judge_bias_png", "Judge bias")):
            if key in figures:
                parts.append(f"<figure><img class='plot' alt='{cap}' src='{_png_b64(figures[key])}'>"
                             f"<figcaption class='note'>{cap}{' (SIMULATED)' if sim else ''}</figcaption></figure>")
        if analysis.get("correlation"):
            rows = [[html.escape(r["metric"]), html.escape(r["criterion"]), r["level"], str(r["n"]),
                     f"{_fmt(r.get('pearson'), 2)} [{_fmt(r.get('pearson_lo'), 2)}, {_fmt(r.get('pearson_hi'), 2)}]",
                     f"{_fmt(r.get('spearman'), 2)} [{_fmt(r.get('spearman_lo'), 2)}, {_fmt(r.get('spearman_hi'), 2)}]"]
                    for r in analysis["correlation"]]
            parts.append("<h3>Objective metrics vs MOS</h3>" + _html_table(
                ["metric", "criterion", "level", "n", "Pearson r [95% CI]", "Spearman &rho; [95% CI]"], rows))
        if analysis.get("power"):
            rows = []
            for c, p in analysis["power"].items():
                sm = p.get("smallest")
                rows.append([html.escape(c), str(p["delta"]), f"{sm['judges']} x {sm['items']}" if sm else "none in grid",
                             _fmt(sm["power"], 2) if sm else "&ndash;"])
            parts.append("<h3>Power</h3><p class='note'>Smallest judges x items design reaching "
                         f"{int(100 * next(iter(analysis['power'].values()))['target'])}% power for the difference &Delta;, "
                         "by simulation from this study's variance components.</p>"
                         + _html_table(["criterion", "&Delta; MOS", "judges x items", "power"], rows))
        parts.append("<h3>Judge screening</h3>" + _screening_html(analysis))
        parts.append("<h3>Reporting metadata</h3>" + _meta_html(analysis["meta"]))
        probs = analysis.get("problems", [])
        if probs:
            parts.append("<h3>Data problems</h3><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in probs) + "</ul>")
    if summary:
        st = stills(run_dir, list(summary["systems"]))
        if st:
            parts.append("<h2>Stills</h2><p class='note'>Middle frame of each system's first clip.</p><div class='stills'>"
                         + "".join(f"<figure><img alt='{html.escape(s)}' src='{u}'><figcaption>{html.escape(s)}</figcaption></figure>"
                                   for s, u in st.items()) + "</div>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    if files:
        # Links relative to the run directory (resolved: the PDFs come back as absolute paths), so the
        # report still works when the run directory is moved or copied.
        root = Path(run_dir).resolve()

        def rel(p: Path) -> str:
            q = Path(p).resolve()
            return str(q.relative_to(root)) if q.is_relative_to(root) else str(p)

        parts.append("<h2>Files</h2><ul>" + "".join(
            f"<li><a href='{html.escape(rel(p))}'>{html.escape(rel(p))}</a></li>" for p in files) + "</ul>")
    git = man.get("git") or {}
    parts.append(f"<h2>Provenance</h2><p class='note'>suite {html.escape(str(suite.get('name')))} v{suite.get('version')}, "
                 f"config {man.get('config_hash')}, git {html.escape(str(git.get('sha'))[:12])}"
                 f"{' (dirty)' if git.get('dirty') else ''}, device {html.escape(str(man.get('device')))}.</p>")
    parts.append("</body></html>\n")
    return atomic_write_text(run_dir / "report.html", "".join(parts))


def build_report(run_dir: str | Path, opts: ReportOptions | None = None) -> ReportResult:
    """Tables (objective, MOS, ablation; fragment + standalone), plots, optional PDFs and report.html."""
    from vastbench.mos.analyze import AnalysisOptions, _run_candidates, run_analysis
    from vastbench.report import mos_tables, plots
    from vastbench.report.pdf import compile_tex, have_pdflatex, pdf_to_png

    opts = opts or ReportOptions()
    run = Path(run_dir)
    if not (run / "manifest.json").is_file():
        raise VastbenchError(f"{run}: not a run directory (no manifest.json); give the folder `vastbench run` wrote")
    tables_dir, fig_dir = run / "tables", run / "figures"
    res = ReportResult(run, run / "report.html")
    summary = read_json(run / "metrics" / "summary.json")
    standalones = []
    if summary:
        p = mos_tables.write_table(tables_dir, "metrics", mos_tables.objective_table(run, summary))
        res.tables += list(p.values())
        standalones.append(p["metrics_standalone_tex"])
    else:
        res.notes.append("no metrics/summary.json: the run has not been evaluated; objective table skipped")
    analysis, figures = None, {}
    if _run_candidates(run):
        ar = run_analysis(run, opts=AnalysisOptions(reference=opts.reference, ci=opts.ci), db=opts.db, reuse=True)
        analysis = ar.analysis
        tag = "_SIMULATED" if analysis["simulated"] else ""
        p = mos_tables.write_table(tables_dir, f"mos{tag}", mos_tables.mos_table(analysis, opts.ci))
        res.tables += list(p.values())
        standalones.append(p[f"mos{tag}_standalone_tex"])
        abl = mos_tables.ablation_table(run, analysis, summary) if summary else None
        if abl:
            p = mos_tables.write_table(tables_dir, f"ablation{tag}", abl)
            res.tables += list(p.values())
            standalones.append(p[f"ablation{tag}_standalone_tex"])
        figures = plots.write_mos_plots(analysis, fig_dir)
        res.figures = list(figures.values())
        if analysis["simulated"]:
            res.notes.append("MOS from SIMULATED judges (mos/ratings_SIMULATED.csv): not human ratings")
        res.notes += [f"MOS data: {p}" for p in analysis.get("problems", [])]
    else:
        res.notes.append(f"no MOS ratings in {run / 'mos'}: MOS tables skipped (vastbench mos create / mos simulate)")
    want_pdf = opts.pdf if opts.pdf is not None else have_pdflatex()
    if want_pdf:
        for tex in standalones:
            pdf = compile_tex(tex)
            res.pdfs += [pdf, pdf_to_png(pdf)]
    elif opts.pdf is None:
        res.notes.append("pdflatex not found: tables not compiled to PDF (Debian: apt-get install texlive-latex-base "
                         "texlive-latex-recommended poppler-utils)")
    res.analysis = analysis
    write_html(run, summary, analysis, figures, res.tables + res.pdfs + res.figures, res.notes, opts.title)
    return res


__all__ = ["reporting_metadata", "print_summary", "ReportOptions", "ReportResult", "build_report", "write_html",
           "stills", "SCREENING_PROCEDURE"]
