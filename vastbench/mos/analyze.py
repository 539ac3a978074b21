"""``vastbench mos analyze``: load ratings, screen judges, compute every statistic, write the results.

A ratings source is one of

* a **study directory** (``study.json``): ratings come from its database through
  the export code (:func:`vastbench.mos.export.export_study`);
* a **run directory** (``manifest.json``): its ``mos/`` folder holds one study
  directory or one ratings export (``ratings*.csv`` / ``.parquet``, e.g. the
  ``ratings_SIMULATED.csv`` of ``vastbench mos simulate``);
* a **ratings export** (CSV or Parquet with the columns of
  :data:`vastbench.mos.schema.RATING_COLUMNS`).

:func:`analyze_ratings` is pure computation on a ratings table; it returns a
JSON-able dict (the content of ``analysis.json``) that the tables, plots and
the HTML report are made from.  Every statistic is computed twice, with all
judges and without the judges that screening excluded ("screened", the
headline).  :func:`write_analysis` writes ``analysis.json``, CSV tables, the
LaTeX MOS table (fragment + standalone) and plots; :func:`run_analysis` does
all three steps.  Results from simulated judges get ``_SIMULATED`` in every
file name and say SIMULATED in every caption and title.
"""

from __future__ import annotations

import hashlib
import io
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vastbench.errors import VastbenchError
from vastbench.mos.schema import CRITERION_NAMES, RATING_COLUMNS, is_simulated, validate_ratings
from vastbench.rundir import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json

ANALYSIS_FORMAT = 1
SIM_TAG = "SIMULATED"
#: metrics that may be compared with a criterion beyond stats.DEFAULT_METRIC_PAIRS
EXTRA_METRIC_PAIRS: tuple[tuple[str, str], ...] = (("lpips_star", "naturalness"), ("style_sim", "naturalness"))
#: systems never ranked (bold/underline) in tables, by generator name
NOT_RANKED_GENERATORS = frozenset({"ground_truth"})


def file_tag(simulated: bool) -> str:
    """The suffix every artifact made from simulated ratings carries in its file name."""
    return f"_{SIM_TAG}" if simulated else ""


# --------------------------------------------------------------------------- options
@dataclass
class AnalysisOptions:
    """What ``vastbench mos analyze`` computes.

    ``ci`` chooses the interval and test the LaTeX/HTML tables show: ``"mixed"``
    (headline: mixed-model CI, mixed-model contrasts with Holm) or ``"t"``
    (t interval over item means, Wilcoxon signed-rank over items with Holm --
    reproducible with pandas + scipy alone; see docs/statistics.md).  Both are
    always in ``analysis.json`` and the CSVs.
    """

    reference: str | None = None
    level: float = 0.95
    alpha: float = 0.05
    ci: str = "mixed"
    power_delta: float = 0.3
    power_sims: int = 500
    power_target: float = 0.8
    rules: tuple[str, ...] | None = None  # None: screening.RULES
    engine: str = "reml"
    plots: bool = True
    seed: int = 0

    def check(self) -> "AnalysisOptions":
        if self.ci not in ("mixed", "t"):
            raise VastbenchError(f"--ci {self.ci!r}: use 'mixed' (mixed-model CI, the headline) or 't' (t over item means)")
        if not 0.5 < self.level < 1:
            raise VastbenchError(f"CI level {self.level} must be between 0.5 and 1, e.g. 0.95")
        if self.power_delta <= 0:
            raise VastbenchError(f"--delta {self.power_delta} must be a positive MOS difference, e.g. 0.3")
        return self


# --------------------------------------------------------------------------- loading
@dataclass
class RatingsSource:
    """Ratings loaded from a study, a run or a file, with what is known about their context."""

    df: pd.DataFrame
    label: str                       # names the source in messages
    kind: str                        # "study" | "run" | "file"
    path: Path                       # the study dir, the run dir or the file
    ratings_csv: bytes               # the exact table analysed, as CSV (written next to the analysis)
    run_dir: Path | None = None
    study_dir: Path | None = None
    expected_systems: list[str] | None = None
    expected_criteria: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def default_out(self) -> Path:
        if self.kind == "study":
            return self.path / "analysis"
        if self.run_dir is not None:
            return self.run_dir / "mos" / "analysis"
        return self.path.parent / "analysis"


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"judge": str, "clip": str, "system": str, "item": str, "study": str},
                               keep_default_na=True)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as exc:
        raise VastbenchError(f"{path}: cannot read ratings ({type(exc).__name__}: {exc}); "
                             "give the ratings.csv or ratings.parquet of `vastbench mos export`") from None
    raise VastbenchError(f"{path}: not a ratings export (.csv or .parquet); give the ratings.csv of `vastbench mos export`")


def _find_run(start: Path, levels: int = 4) -> Path | None:
    p = start.resolve()
    for _ in range(levels):
        if (p / "manifest.json").is_file() and (p / "requests.jsonl").exists():
            return p
        if p.parent == p:
            break
        p = p.parent
    return None


def _study_systems(study_dir: Path) -> list[str] | None:
    from vastbench.mos.design import StudyDir

    try:
        key = StudyDir(study_dir).load_key()
    except VastbenchError:
        return None
    return list(dict.fromkeys(r["system"] for r in key.values() if r.get("kind") == "regular"))


def _load_study(study_dir: Path, db: str | None) -> RatingsSource:
    from vastbench.mos.export import export_study
    from vastbench.mos.manage import open_study

    sd, store, sid = open_study(study_dir, db, create=False)
    study = sd.load()
    with store, tempfile.TemporaryDirectory(prefix="vastbench-export-") as tmp:
        paths = export_study(store, sid, Path(tmp) / "export")
        raw = Path(paths["ratings_csv"]).read_bytes()
    df = pd.read_csv(io.BytesIO(raw), dtype={"judge": str, "clip": str, "system": str, "item": str, "study": str})
    if df.empty:
        raise VastbenchError(f"{study_dir}: study {sid} has no ratings yet; send judges their links "
                             "(private/links.csv) and check progress with `vastbench mos status`")
    run = None
    src = study.get("source_run")
    if src and _find_run(Path(src), 1):
        run = Path(src)
    elif _find_run(study_dir, 4):
        run = _find_run(study_dir, 4)
    return RatingsSource(df=df, label=f"study {sid}", kind="study", path=Path(study_dir), ratings_csv=raw,
                         run_dir=run, study_dir=Path(study_dir), expected_systems=_study_systems(Path(study_dir)),
                         expected_criteria=list(study.get("criteria") or CRITERION_NAMES))


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def _run_candidates(run: Path) -> list[Path]:
    mos = run / "mos"
    if not mos.is_dir():
        return []
    out = [p for p in sorted(mos.iterdir()) if p.is_dir() and (p / "study.json").is_file()]
    out += [p for p in sorted(mos.iterdir()) if p.is_file() and p.name.startswith("ratings")
            and p.suffix.lower() in (".csv", ".parquet")]
    return out


def load_ratings(source: str | Path, db: str | None = None) -> RatingsSource:
    """Load the ratings of a study directory, a run directory or an export file."""
    path = Path(source)
    if not path.exists():
        raise VastbenchError(f"{path}: no such file or directory; give a study directory, a run directory or a ratings CSV")
    if path.is_dir() and (path / "study.json").is_file():
        return _load_study(path, db)
    if path.is_dir() and (path / "manifest.json").is_file():
        cands = _run_candidates(path)
        if not cands:
            raise VastbenchError(
                f"{path}: run has no MOS ratings in mos/; create a study (`vastbench mos create --run {path}`) "
                f"or simulate judges (`vastbench mos simulate --run {path}`)")
        if len(cands) > 1:
            # real ratings win over simulated ones; otherwise the user must choose
            real = [c for c in cands if SIM_TAG not in c.name]
            if len(real) != 1:
                shown = ", ".join(str(c) for c in cands)
                raise VastbenchError(f"{path}: several ratings sources in mos/ ({shown}); pass the one to analyse")
            chosen = real[0]
            note = f"{path}/mos has {len(cands)} ratings sources; analysed the real ratings {chosen.name}"
        else:
            chosen, note = cands[0], None
        src = load_ratings(chosen, db)
        src.run_dir = path
        if note:
            src.notes.append(note)
        return src
    if path.is_dir():
        raise VastbenchError(f"{path}: not a study directory (study.json), a run directory (manifest.json) "
                             "or a ratings file; give one of those")
    df = _read_table(path)
    raw = path.read_bytes() if path.suffix.lower() == ".csv" else _csv_bytes(df)
    run = _find_run(path.parent, 3)
    expected = None
    if run is not None and path.parent == run / "mos":
        suite = (read_json(run / "manifest.json", {}) or {}).get("suite", {})
        expected = [s["label"] for s in suite.get("systems", [])] or None
    return RatingsSource(df=df, label=path.name, kind="file", path=path, ratings_csv=raw, run_dir=run,
                         expected_systems=expected)


def load_per_clip_metrics(run_dir: Path | None) -> pd.DataFrame | None:
    """``metrics/per_clip.csv`` of a run as ``system, item, metric, value`` (item = request id)."""
    if run_dir is None:
        return None
    p = Path(run_dir) / "metrics" / "per_clip.csv"
    if not p.is_file():
        return None
    m = pd.read_csv(p, dtype={"system": str, "request": str, "metric": str})
    if not {"system", "request", "metric", "value"} <= set(m.columns):
        return None
    return m.rename(columns={"request": "item"})[["system", "item", "metric", "value"]]


def run_context(run_dir: Path | None) -> dict:
    """What the run says about the study: suite name, systems (order, generators), reference, summary."""
    if run_dir is None:
        return {}
    man = read_json(Path(run_dir) / "manifest.json", {}) or {}
    suite = man.get("suite", {}) or {}
    systems = [s.get("label") for s in suite.get("systems", [])]
    return {
        "run_dir": str(Path(run_dir).resolve()), "suite": suite.get("name"), "suite_version": suite.get("version"),
        "systems": systems,
        "generators": {s.get("label"): s.get("generator") for s in suite.get("systems", [])},
        "reference": (suite.get("statistics") or {}).get("reference"),
        "git": man.get("git"),
    }


# --------------------------------------------------------------------------- JSON helpers
def jsonable(obj):
    """NaN/inf -> None, numpy scalars -> Python, recursively (analysis.json is strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def records(df: pd.DataFrame) -> list[dict]:
    return jsonable(df.to_dict("records"))


def frame(recs) -> pd.DataFrame:
    """Records of analysis.json back to a DataFrame (None -> NaN in numeric columns)."""
    df = pd.DataFrame(recs or [])
    for c in df.columns:
        vals = [v for v in df[c] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if df[c].dtype == object and vals and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


# --------------------------------------------------------------------------- pieces
def choose_reference(systems: list[str], wanted: str | None, ctx: dict, mos: pd.DataFrame) -> tuple[str | None, str]:
    """The reference system and why it was chosen."""
    if not systems:
        return None, "no systems"
    if wanted is not None:
        if wanted not in systems:
            raise VastbenchError(f"--reference {wanted!r} has no regular ratings; use one of {', '.join(systems)}")
        return wanted, "given with --reference"
    suite_ref = ctx.get("reference")
    if suite_ref in systems:
        return suite_ref, "the suite's statistics.reference"
    if "vast" in systems:
        return "vast", "the system labelled 'vast'"
    overall = mos.groupby("system")["mos"].mean().sort_values(ascending=False)
    return str(overall.index[0]), "the system with the highest MOS averaged over criteria (no --reference given)"


def judge_bias(reg: pd.DataFrame, excluded: set[str]) -> pd.DataFrame:
    """Per judge: mean of (score - mean of the other judges on the same clip and criterion), with SE."""
    r = reg[["judge", "clip", "criterion", "score"]].copy()
    r["score"] = r["score"].astype(float)
    g = r.groupby(["clip", "criterion"])["score"]
    cnt = g.transform("count")
    r["dev"] = r["score"] - (g.transform("sum") - r["score"]) / (cnt - 1).where(cnt > 1)
    r = r.dropna(subset=["dev"])
    out = r.groupby("judge")["dev"].agg(["mean", "std", "count"]).reset_index()
    out.columns = ["judge", "bias", "sd", "n"]
    out["se"] = out["sd"] / np.sqrt(out["n"])
    out["excluded"] = out["judge"].isin(excluded)
    return out.sort_values("bias").reset_index(drop=True)


def score_distribution(reg: pd.DataFrame) -> pd.DataFrame:
    """Counts and shares of each score 1..5 per system and criterion."""
    c = reg.groupby(["system", "criterion", "score"]).size().rename("count").reset_index()
    full = pd.MultiIndex.from_product([sorted(set(reg["system"])), [k for k in CRITERION_NAMES if k in set(reg["criterion"])],
                                       range(1, 6)], names=["system", "criterion", "score"])
    c = c.set_index(["system", "criterion", "score"]).reindex(full, fill_value=0).reset_index()
    tot = c.groupby(["system", "criterion"])["count"].transform("sum")
    c["share"] = c["count"] / tot.where(tot > 0)
    return c


def _finite_metrics(m: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    m = m.copy()
    m["value"] = pd.to_numeric(m["value"], errors="coerce")
    bad = ~np.isfinite(m["value"])
    if bad.any():
        counts = m.loc[bad].groupby("metric").size()
        for metric, n in counts.items():
            problems.append(f"metrics/per_clip.csv: {n} non-finite '{metric}' value(s) (e.g. PSNR of a clip identical "
                            "to its reference) left out of the metric-MOS correlation")
    return m[~bad]


def correlation_points(m: pd.DataFrame, reg: pd.DataFrame, pairs) -> pd.DataFrame:
    mos = reg.groupby(["system", "item", "criterion"], as_index=False)["score"].mean().rename(columns={"score": "mos"})
    rows = []
    for metric, crit in pairs:
        j = (m[m["metric"] == metric].groupby(["system", "item"], as_index=False)["value"].mean()
             .merge(mos[mos["criterion"] == crit], on=["system", "item"]))
        j["metric"] = metric
        rows.append(j)
    if not rows:
        return pd.DataFrame(columns=["system", "item", "metric", "criterion", "value", "mos"])
    return pd.concat(rows, ignore_index=True)[["system", "item", "metric", "criterion", "value", "mos"]]


def _ratings_per_clip(reg: pd.DataFrame) -> dict:
    per = reg.groupby(["clip", "criterion"])["judge"].nunique()
    return {"mean": float(per.mean()), "min": int(per.min()), "max": int(per.max())} if len(per) else {}


# --------------------------------------------------------------------------- the analysis
def _one_blas_thread():
    """The mixed-model algebra is many small (a few hundred square) factorizations: one BLAS
    thread is 2x faster than two on a busy two-core machine (measured), and never slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def analyze_ratings(df: pd.DataFrame, opts: AnalysisOptions | None = None, *, source: str = "ratings",
                    expected_systems=None, expected_criteria=None, per_clip_metrics: pd.DataFrame | None = None,
                    context: dict | None = None) -> dict:
    """Validate, screen and analyse a ratings table; returns the content of ``analysis.json``.

    Bad rows are dropped and reported (``problems``), the rest is analysed; a
    statistic that cannot be computed is reported and left out rather than
    stopping the analysis.  Raises VastbenchError only when nothing usable is left.
    """
    with _one_blas_thread():
        return _analyze(df, opts, source=source, expected_systems=expected_systems,
                        expected_criteria=expected_criteria, per_clip_metrics=per_clip_metrics, context=context)


def _analyze(df, opts, *, source, expected_systems, expected_criteria, per_clip_metrics, context) -> dict:
    from vastbench.mos import stats as S
    from vastbench.mos.report import reporting_metadata
    from vastbench.mos.screening import RULES, excluded_judges, screen_judges

    opts = (opts or AnalysisOptions()).check()
    ctx = dict(context or {})
    t0 = time.perf_counter()
    clean, problems = validate_ratings(df, source, systems=expected_systems,
                                       criteria=expected_criteria or list(CRITERION_NAMES))
    sim = is_simulated(clean)
    reg_all = clean[clean["kind"] == "regular"].reset_index(drop=True)
    notes: list[str] = []

    rules = tuple(opts.rules) if opts.rules is not None else RULES
    screening = screen_judges(clean, rules=rules, source=source)
    excluded = excluded_judges(screening)
    if set(excluded) >= set(reg_all["judge"]):
        problems.append(f"{source}: screening would exclude every judge ({', '.join(excluded)}); "
                        "the analysis keeps them all -- check the study before reporting it")
        excluded = []
    sets = {"all": None, "screened": excluded or None}

    mos, pairwise, agreement, vcs, fit_notes = {}, {}, {}, {}, {}
    for name, ex in sets.items():
        if name == "screened" and not excluded:
            mos[name], vcs[name], fit_notes[name] = mos["all"], vcs["all"], fit_notes["all"]
            continue
        mt = S.mos_table(clean, level=opts.level, engine=opts.engine, exclude_judges=ex, source=source)
        mos[name] = mt
        vcs[name] = mt.attrs.get("variance_components", {})
        fit_notes[name] = mt.attrs.get("notes", {})
    systems_present = sorted(set(mos["screened"]["system"]))
    order = [s for s in (expected_systems or ctx.get("systems") or []) if s in systems_present]
    order += [s for s in systems_present if s not in order]
    reference, ref_reason = choose_reference(order, opts.reference, ctx, mos["screened"])
    for name, ex in sets.items():
        if name == "screened" and not excluded:
            continue
        try:
            pairwise[name] = S.pairwise_vs_reference(clean, reference, level=opts.level, alpha=opts.alpha,
                                                     engine=opts.engine, exclude_judges=ex, source=source)
            problems += [p for p in pairwise[name].attrs.get("problems", []) if p not in problems]
        except VastbenchError as exc:
            pairwise[name] = pd.DataFrame()
            problems.append(f"pairwise tests ({name} judges) skipped: {exc}")
        ag = S.agreement(clean, exclude_judges=ex, source=source)
        agreement[name] = {"alpha": ag["alpha"], "alpha_per_criterion": ag["alpha_per_criterion"],
                           "n_units": ag.get("n_units"), "judges": records(ag["judges"])}
    if not excluded:
        pairwise["screened"], agreement["screened"] = pairwise["all"], agreement["all"]

    reg = reg_all[~reg_all["judge"].isin(excluded)]
    crits = [c for c in CRITERION_NAMES if c in set(reg["criterion"])]

    # objective metrics vs MOS
    corr, points, pairs_used = pd.DataFrame(), pd.DataFrame(), []
    if per_clip_metrics is not None and len(per_clip_metrics):
        m = _finite_metrics(per_clip_metrics, problems)
        have = set(m["metric"])
        pairs_used = [p for p in tuple(S.DEFAULT_METRIC_PAIRS) + EXTRA_METRIC_PAIRS if p[0] in have and p[1] in crits]
        if pairs_used:
            try:
                corr = S.metric_mos_correlation(m, clean, pairs_used, level=opts.level, seed=opts.seed,
                                                exclude_judges=excluded or None, source=source)
                points = correlation_points(m, reg, pairs_used)
            except VastbenchError as exc:
                problems.append(f"metric-MOS correlation skipped: {exc}")
        else:
            notes.append(f"no objective metric of the run pairs with a rated criterion (metrics: {', '.join(sorted(have))})")
    elif per_clip_metrics is None:
        notes.append("no metrics/per_clip.csv found: metric-MOS correlation not computed (analyse a run directory)")

    # power: variance components of the screened fit, one design grid per criterion
    power = {}
    if len(order) < 2:
        notes.append("power analysis skipped: it needs two systems to compare")
    for c in (crits if len(order) >= 2 else []):
        comps = (vcs["screened"] or {}).get(c)
        if not comps:
            continue
        try:
            p = S.power_analysis({k: v for k, v in comps.items() if k != "method"}, opts.power_delta,
                                 n_sim=opts.power_sims, alpha=opts.alpha, target=opts.power_target, seed=opts.seed)
            power[c] = {"delta": opts.power_delta, "target": opts.power_target, "table": records(p),
                        "smallest": jsonable(p.attrs.get("smallest_design")),
                        "components": jsonable({k: v for k, v in comps.items() if k != "method"})}
        except VastbenchError as exc:
            problems.append(f"power analysis for '{c}' skipped: {exc}")

    generators = ctx.get("generators") or {}
    unranked = [s for s in order if generators.get(s, s) in NOT_RANKED_GENERATORS]
    analysis = {
        "format": ANALYSIS_FORMAT,
        "simulated": sim,
        "tag": SIM_TAG if sim else "",
        "source": {"label": source},
        "context": jsonable(ctx),
        "options": jsonable({**asdict(opts), "rules": list(rules)}),
        "systems": order,
        "criteria": crits,
        "reference": reference,
        "reference_reason": ref_reason,
        "unranked": unranked,
        "problems": problems,
        "notes": notes,
        "screening": records(screening),
        "excluded": [{"judge": j, "reason": str(screening.set_index("judge").loc[j, "reason"])} for j in excluded],
        "mos": {k: records(v) for k, v in mos.items()},
        "pairwise": {k: records(v) for k, v in pairwise.items()},
        "agreement": jsonable(agreement),
        "variance_components": jsonable(vcs),
        "model_notes": jsonable(fit_notes),
        "correlation": records(corr) if len(corr) else [],
        "correlation_points": records(points) if len(points) else [],
        "power": power,
        "distribution": records(score_distribution(reg)),
        "judge_bias": records(judge_bias(reg_all, set(excluded))),
    }
    analysis["meta"] = reporting_metadata(clean, analysis, ratings_per_clip=_ratings_per_clip(reg))
    analysis["seconds"] = round(time.perf_counter() - t0, 3)
    return jsonable(analysis)


# --------------------------------------------------------------------------- writing
def _write_csv(path: Path, df: pd.DataFrame, simulated: bool) -> Path:
    # every table says where its numbers come from
    df = df.copy()
    df["simulated"] = bool(simulated)
    return atomic_write_text(path, df.to_csv(index=False))


def write_analysis(analysis: dict, out_dir: str | Path, ratings_csv: bytes | None = None) -> dict[str, Path]:
    """Write analysis.json, CSV tables, the LaTeX MOS table and plots; returns ``{name: path}``."""
    from vastbench.report import mos_tables

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = bool(analysis["simulated"])
    tag = file_tag(sim)
    paths: dict[str, Path] = {}
    if ratings_csv is not None:
        paths["ratings"] = atomic_write_bytes(out / f"ratings{tag}.csv", ratings_csv)
    mos = pd.concat([frame(analysis["mos"][k]).assign(judges=k) for k in ("screened", "all")], ignore_index=True)
    paths["mos_csv"] = _write_csv(out / f"mos{tag}.csv", mos, sim)
    pw = [frame(analysis["pairwise"][k]).assign(judges=k) for k in ("screened", "all") if analysis["pairwise"][k]]
    if pw:
        paths["pairwise_csv"] = _write_csv(out / f"pairwise{tag}.csv", pd.concat(pw, ignore_index=True), sim)
    paths["screening_csv"] = _write_csv(out / f"screening{tag}.csv", frame(analysis["screening"]), sim)
    paths["judge_bias_csv"] = _write_csv(out / f"judge_bias{tag}.csv", frame(analysis["judge_bias"]), sim)
    paths["distribution_csv"] = _write_csv(out / f"distribution{tag}.csv", frame(analysis["distribution"]), sim)
    ag = [frame(analysis["agreement"][k]["judges"]).assign(judges=k) for k in ("screened", "all")]
    paths["agreement_csv"] = _write_csv(out / f"agreement{tag}.csv", pd.concat(ag, ignore_index=True), sim)
    if analysis["correlation"]:
        paths["correlation_csv"] = _write_csv(out / f"metric_mos{tag}.csv", frame(analysis["correlation"]), sim)
    if analysis["power"]:
        pw_rows = pd.concat([frame(v["table"]).assign(criterion=c, delta=v["delta"]) for c, v in analysis["power"].items()],
                            ignore_index=True)
        paths["power_csv"] = _write_csv(out / f"power{tag}.csv", pw_rows, sim)
    paths.update(mos_tables.write_mos_tables(analysis, out))
    if analysis.get("options", {}).get("plots", True):
        from vastbench.report import plots

        paths.update(plots.write_mos_plots(analysis, out))
    analysis["files"] = {k: p.name for k, p in sorted(paths.items())}
    paths["analysis_json"] = atomic_write_json(out / f"analysis{tag}.json", analysis, sort_keys=False)
    return paths


@dataclass
class AnalysisResult:
    analysis: dict
    paths: dict[str, Path]
    out_dir: Path
    source: RatingsSource


def analysis_path(out_dir: Path, simulated: bool) -> Path:
    return Path(out_dir) / f"analysis{file_tag(simulated)}.json"


def run_analysis(source: str | Path, out: str | Path | None = None, opts: AnalysisOptions | None = None,
                 db: str | None = None, *, reuse: bool = False) -> AnalysisResult:
    """Load, analyse and write.  ``reuse``: return the analysis already in the output folder
    when it was made from the same ratings with the same options (``vastbench report``)."""
    opts = (opts or AnalysisOptions()).check()
    src = load_ratings(source, db)
    out_dir = Path(out) if out is not None else src.default_out
    digest = hashlib.sha256(src.ratings_csv).hexdigest()
    opt_key = jsonable(asdict(opts))
    if reuse:
        for sim in (True, False):
            old = read_json(analysis_path(out_dir, sim), None) if analysis_path(out_dir, sim).exists() else None
            if (old and old.get("format") == ANALYSIS_FORMAT and old.get("source", {}).get("sha256") == digest
                    and old.get("source", {}).get("options_key") == opt_key):
                paths = {k: out_dir / v for k, v in old.get("files", {}).items()}
                paths["analysis_json"] = analysis_path(out_dir, sim)
                return AnalysisResult(old, paths, out_dir, src)
    ctx = run_context(src.run_dir)
    metrics = load_per_clip_metrics(src.run_dir)
    analysis = analyze_ratings(src.df, opts, source=src.label, expected_systems=src.expected_systems,
                               expected_criteria=src.expected_criteria, per_clip_metrics=metrics, context=ctx)
    analysis["problems"] = list(src.notes) + analysis["problems"]
    analysis["source"].update({"kind": src.kind, "path": str(src.path.resolve()), "sha256": digest,
                               "options_key": opt_key})
    paths = write_analysis(analysis, out_dir, src.ratings_csv)
    analysis["source"]["ratings_csv"] = paths["ratings"].name
    atomic_write_json(paths["analysis_json"], analysis, sort_keys=False)
    return AnalysisResult(analysis, paths, out_dir, src)


# --------------------------------------------------------------------------- simulation
@dataclass
class SimulateOptions:
    judges: int = 15
    ratings_per_clip: int | None = None
    seed: int = 0
    outliers: int = 0
    gold: int = 2
    traps: int = 1
    judge_bias_sd: float = 0.3
    judge_scale_sd: float = 0.1
    noise_sd: float = 0.6


#: criterion -> metrics to simulate it from, in order of preference (name, higher_is_better)
SIM_METRIC_PREFERENCE: dict[str, tuple[tuple[str, bool], ...]] = {
    "sync": (("lse_c", True), ("lse_d", False)),
    "expressiveness": (("style_sim", True),),
    "naturalness": (("ssim", True), ("lpips", False), ("lpips_star", False), ("psnr", True)),
}
_FALLBACK_ORDER = ("ssim", "psnr", "lpips", "lpips_star", "lse_c", "lse_d", "style_sim")
_LOWER_IS_BETTER = {"lse_d", "lpips", "lpips_star", "fid"}


def simulate_mapping(per_clip: pd.DataFrame, summary: dict | None = None) -> tuple[dict, list[str]]:
    """Which metric drives each criterion's simulated quality, and notes on substitutes."""
    have = set(per_clip["metric"])
    hib = {k: v.get("higher_is_better", k not in _LOWER_IS_BETTER) for k, v in ((summary or {}).get("metrics") or {}).items()}
    mapping, notes = {}, []
    for crit, prefs in SIM_METRIC_PREFERENCE.items():
        pick = next(((m, h) for m, h in prefs if m in have), None)
        if pick is None:
            sub = next((m for m in _FALLBACK_ORDER if m in have), None) or (sorted(have)[0] if have else None)
            if sub is None:
                continue
            pick = (sub, hib.get(sub, sub not in _LOWER_IS_BETTER))
            notes.append(f"no {'/'.join(m for m, _ in prefs)} in this run: simulated '{crit}' ratings follow '{sub}'")
        mapping[crit] = pick
    return mapping, notes


def _clip_inf(m: pd.DataFrame) -> pd.DataFrame:
    """+-inf per metric -> the metric's finite max/min (PSNR of a clip identical to its reference)."""
    m = m.copy()
    m["value"] = pd.to_numeric(m["value"], errors="coerce")
    for metric, idx in m.groupby("metric").groups.items():
        v = m.loc[idx, "value"]
        fin = v[np.isfinite(v)]
        if len(fin) == 0:
            m.loc[idx, "value"] = np.nan
            continue
        m.loc[idx, "value"] = v.replace([np.inf, -np.inf], [fin.max(), fin.min()])
    return m


def simulate_run(run_dir: str | Path, opts: SimulateOptions | None = None) -> tuple[Path, dict]:
    """Simulated judges rate a run's clips from its objective metrics; writes ``mos/ratings_SIMULATED.csv``.

    Returns the path and a description (mapping used, notes), also written as
    ``mos/ratings_SIMULATED.json``.
    """
    from vastbench.mos.simulate import ratings_from_metrics

    opts = opts or SimulateOptions()
    run = Path(run_dir)
    if not (run / "manifest.json").is_file():
        raise VastbenchError(f"{run}: not a run directory (no manifest.json); run a suite first: vastbench run --suite smoke")
    metrics = load_per_clip_metrics(run)
    if metrics is None or metrics.empty:
        raise VastbenchError(f"{run}: no metrics/per_clip.csv; finish the run's evaluate stage (vastbench run --resume {run})")
    if opts.judges < 2:
        raise VastbenchError(f"--judges {opts.judges}: simulate at least 2 judges")
    summary = read_json(run / "metrics" / "summary.json", {}) or {}
    mapping, notes = simulate_mapping(metrics, summary)
    if not mapping:
        raise VastbenchError(f"{run}: metrics/per_clip.csv has no metric to simulate ratings from")
    m = _clip_inf(metrics).dropna(subset=["value"])
    ctx = run_context(run)
    df = ratings_from_metrics(m, mapping, n_judges=opts.judges, ratings_per_clip=opts.ratings_per_clip,
                              judge_bias_sd=opts.judge_bias_sd, judge_scale_sd=opts.judge_scale_sd,
                              noise_sd=opts.noise_sd, outlier_judges=opts.outliers,
                              outlier_kind="mixed" if opts.outliers > 1 else "random",
                              n_gold=opts.gold, n_trap=opts.traps, seed=opts.seed,
                              study=f"{ctx.get('suite') or 'run'}-{SIM_TAG}")
    df["simulated"] = True
    out = run / "mos" / f"ratings_{SIM_TAG}.csv"
    atomic_write_text(out, df[list(RATING_COLUMNS)].to_csv(index=False))
    desc = jsonable({
        "simulated": True, "warning": f"{SIM_TAG}: ratings from simulated judges, not from people",
        "ratings": out.name, "n_ratings": len(df), "judges": opts.judges, "ratings_per_clip": opts.ratings_per_clip,
        "mapping": {c: {"metric": mm, "higher_is_better": h} for c, (mm, h) in mapping.items()},
        "judge_roles": df.attrs.get("judge_roles", {}), "options": asdict(opts), "notes": notes,
    })
    atomic_write_json(run / "mos" / f"ratings_{SIM_TAG}.json", desc, sort_keys=False)
    return out, desc


__all__ = [
    "AnalysisOptions", "RatingsSource", "AnalysisResult", "SimulateOptions", "SIM_TAG", "file_tag",
    "load_ratings", "load_per_clip_metrics", "run_context", "analyze_ratings", "write_analysis", "run_analysis",
    "analysis_path", "simulate_run", "simulate_mapping", "jsonable", "records", "frame",
]
