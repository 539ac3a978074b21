"""Evaluation outside a suite run: re-score a run directory, or score any folder of mp4s.

- :func:`evaluate_run` (``vastbench eval --run RUN_DIR``) recomputes the metrics
  and tables of an existing run from the clips it already has, through the
  runner's own evaluate and report stages (nothing is prepared or generated).
- :func:`evaluate_folder` (``vastbench eval --videos DIR --reference DIR --out
  DIR``) scores every ``*.mp4`` of a folder against the reference video of the
  same file stem: per-clip CSV, summary JSON with bootstrap CIs, a LaTeX table.
  A clip that cannot be scored (no reference, unreadable, wrong resolution,
  wrong length) is a one-line reason in ``errors.jsonl``; the others are scored.

Both are resumable: per-clip scores are cached as JSON keyed by the sha256 of
every input file and by each metric's version and description (weights hashes
included), so an interrupted evaluation continues where it stopped and a
changed file or metric is recomputed.  :func:`score_cached` and
:func:`set_metric_cached` are the shared pieces (the metric validation harness
uses them too).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from vastbench.config import stable_hash
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError
from vastbench.generators import one_line
from vastbench.metrics.base import (REFERENCE_VIDEO, STYLE_PROMPT, EvalSample, Metric, SetMetric, build_metric,
                                    metric_spec)
from vastbench.metrics.ci import bootstrap_ci
from vastbench.registry import METRICS
from vastbench.rundir import atomic_write_json, atomic_write_text, now_iso, read_json, sha256_file

log = logging.getLogger("vastbench.eval")

DEFAULT_FOLDER_METRICS = ("psnr", "ssim", "m_lmd", "f_lmd")


# --------------------------------------------------------------------------- shared pieces
def parse_metric_list(text: str | None) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]`` (order kept, duplicates dropped); names are checked by the registry."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    for n in names:
        if n not in METRICS:   # checked without importing the metric (torch is slow to import)
            METRICS.get(n)     # raises the one-line "did you mean"
    return list(dict.fromkeys(names))


def parse_metric_specs(text: str | None) -> list[tuple[str, dict]]:
    """``"psnr, lse_d:crops=centre"`` -> ``[("psnr", {}), ("lse_d", {"crops": "centre"})]``.

    Each entry is a registered name, optionally followed by ``:key=value`` arguments
    (values read as YAML scalars: ``crop_scale=0.4`` is a number).  A name given twice is
    an error; names are checked by the registry.
    """
    import yaml

    specs: dict[str, dict] = {}
    for entry in (e.strip() for e in (text or "").split(",")):
        if not entry:
            continue
        name, *pairs = (p.strip() for p in entry.split(":"))
        args = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or not key.strip():
                raise VastbenchError(f"--metrics entry '{entry}': arguments look like name:key=value, got '{pair}'")
            args[key.strip()] = yaml.safe_load(value.strip()) if value.strip() else ""
        if name in specs:
            raise VastbenchError(f"--metrics: metric {name} is listed twice; list each metric once")
        if name not in METRICS:   # checked without importing the metric (torch is slow to import)
            METRICS.get(name)     # raises the one-line "did you mean"
        specs[name] = args
    return list(specs.items())


def load_metrics(names: Iterable[str | tuple[str, dict]]) -> tuple[dict[str, Metric], dict[str, str]]:
    """Instantiate registered metrics; those that cannot be built here (missing weights) are skipped.

    ``names`` are registry names or ``(name, constructor arguments)``.  Returns
    ``({registry name: metric}, {registry name: one-line reason})``.  Any exception
    while building one metric skips that metric with its reason (and the traceback in
    the debug log): one broken metric must not stop the others.
    """
    metrics, skipped = {}, {}
    for item in names:
        name, args = metric_spec(item)
        METRICS.get(name)   # an unknown name is the caller's error, not a skipped metric
        try:
            metrics[name] = build_metric(name, args)
        except Exception as exc:
            log.debug("metric %s cannot be built:\n%s", name, traceback.format_exc())
            skipped[name] = one_line(exc)
    return metrics, skipped


def metric_key(metric: Metric) -> str:
    """What a cached value depends on besides the inputs: version and description (weights hashes)."""
    return f"{metric.version}:{stable_hash(metric.describe())}"


def score_cached(sample: EvalSample, metrics: dict[str, Metric], cache_path: Path, inputs: dict,
                 keys: dict[str, str] | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Per-clip values of ``metrics`` on ``sample``, through a JSON cache at ``cache_path``.

    ``inputs`` identifies everything the values depend on (file hashes); a cache
    whose inputs differ is discarded.  A metric that raises is a per-clip error
    (cached too, so a resumed run does not retry a deterministic failure).
    Returns ``({metric name: value}, {metric name: reason})``, keyed by the
    metric's own ``name`` (``lpips_offline`` reports as ``lpips_star`` offline).
    """
    keys = keys or {m.name: metric_key(m) for m in metrics.values()}
    cached = read_json(cache_path, {}) or {}
    if cached.get("inputs") != inputs:
        cached = {"inputs": inputs, "metrics": {}, "errors": {}}
    values, errors = {}, {}
    changed = False
    for metric in metrics.values():
        if not metric.per_clip:
            continue
        name, key = metric.name, keys[metric.name]
        hit = cached["metrics"].get(name)
        if hit is not None and hit.get("key") == key:
            values[name] = hit["value"]
            continue
        err = cached["errors"].get(name)
        if err is not None and err.get("key") == key:
            errors[name] = err["reason"]
            continue
        try:
            v = float(metric(sample))
            cached["metrics"][name] = {"key": key, "value": v}
            cached["errors"].pop(name, None)
            values[name] = v
        except Exception as exc:  # one bad clip must not stop the evaluation
            log.debug("metric %s failed on %s:\n%s", name, sample.generated, traceback.format_exc())
            cached["errors"][name] = {"key": key, "reason": one_line(exc)}
            cached["metrics"].pop(name, None)
            errors[name] = one_line(exc)
        changed = True
    if changed:
        atomic_write_json(cache_path, cached)
    return values, errors


def set_metric_cached(metric: SetMetric, samples: Iterable[EvalSample], cache_dir: Path,
                      input_ids: list) -> tuple[float, dict[str, str]]:
    """A set-level metric over ``samples`` (one state per sample, merged), cached by inputs.

    ``samples`` may be a generator (decoded one at a time); ``input_ids``
    identifies each sample's inputs (e.g. file or frame hashes).  A sample whose
    update raises is left out and reported: ``(value, {generated path: reason})``.
    """
    key = stable_hash([metric_key(metric), input_ids])
    path = Path(cache_dir) / f"{metric.name}-{key}.json"
    cached = read_json(path)
    if cached is not None:
        return cached["value"], cached.get("errors", {})
    state, errors, n = metric.new_state(), {}, 0
    for s in samples:
        n += 1
        one = metric.new_state()   # a failed update must not leave half a clip in the merged state
        try:
            metric.update(one, s)
        except Exception as exc:
            errors[str(s.generated)] = one_line(exc)
            continue
        state = metric.merge([state, one])
    try:
        value = float(metric.compute(state))
    except VastbenchError as exc:
        value = float("nan")
        errors["__set__"] = str(exc)
    atomic_write_json(path, {"value": value, "errors": errors, "n": n - len(errors)})
    return value, errors


def summarize_values(values: list[float], ci: float, n_boot: int, seed: int) -> dict:
    mean, lo, hi = bootstrap_ci(values, ci, n_boot, seed)
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n": len(values)}


def merge_reasons(errors: dict[str, str]) -> str:
    """One line for a clip's metric errors; one shared cause (an unreadable file) is said once."""
    reasons = list(dict.fromkeys(errors.values()))
    if len(reasons) == 1:
        return f"{reasons[0]} ({', '.join(sorted(errors))})"
    return "; ".join(f"{m}: {e}" for m, e in sorted(errors.items()))


# --------------------------------------------------------------------------- a run directory
def evaluate_run(run_dir: str | Path, metrics: list[str] | None = None, device: str = "auto", reporter=None):
    """Recompute a run's metrics, summary and tables from its clips (``vastbench eval --run``).

    The run's own suite comes from its manifest.  ``metrics`` are recomputed from
    scratch (their cached per-clip values are dropped) and added to the suite's
    list if it lacks them; the suite's other metrics come from the per-clip
    cache (computed where missing), so the summary and tables stay complete.
    """
    from vastbench.config import SuiteConfig
    from vastbench.rundir import RunDir
    from vastbench.runner import Runner

    run = RunDir(run_dir)
    data = run.read_manifest()
    if "suite" not in data:
        raise VastbenchError(f"{run.manifest_path}: has no resolved suite; the run never started, start a new one")
    if not run.requests_path.exists():
        raise VastbenchError(f"{run.root}: has no requests.jsonl (stopped before its requests); resume it with "
                             f"`vastbench run --resume {run.root}` first")
    cfg = SuiteConfig.model_validate(data["suite"])
    given = dict(metric_spec(m) for m in (metrics or []))
    forced = list(given)
    suite_args = dict(cfg.metric_specs())
    names = list(dict.fromkeys(list(suite_args) + forced))
    runner = Runner(cfg, run, device, reporter)
    # Missing weights: the run's own one-line error.  Arguments given here win; otherwise the suite's stay.
    runner.metrics = [build_metric(n, given.get(n) or suite_args.get(n)) for n in names]
    for name in forced:
        _drop_cached_metric(run, METRICS.get(name), runner)
    old_hash = (data.get("dataset") or {}).get("manifest_hash")
    result = runner.evaluate_only(expected_manifest_hash=old_hash)
    evals = data.get("evaluations", [])
    run.update_manifest(evaluations=evals + [{"at": now_iso(), "metrics": names, "recomputed": forced}])
    return result


def _drop_cached_metric(run, metric_cls, runner) -> None:
    """Forget cached per-clip and set-level values of one metric, so the runner recomputes them."""
    names = {m.name for m in runner.metrics if isinstance(m, metric_cls)} | {getattr(metric_cls, "name", "")}
    for path in sorted((run.metrics_dir / "clips").glob("*/*.json")):
        data = read_json(path, {}) or {}
        hit = False
        for section in ("metrics", "errors"):
            for n in names:
                hit = data.get(section, {}).pop(n, None) is not None or hit
        if hit:
            atomic_write_json(path, data)
    for n in names:
        for path in (run.metrics_dir / "set").glob(f"*/{n}.json"):
            path.unlink()


# --------------------------------------------------------------------------- a folder of videos
@dataclass
class FolderEvalConfig:
    videos: Path
    reference: Path
    out: Path
    audio: Path | None = None
    metrics: list[str | tuple[str, dict]] = field(default_factory=lambda: list(DEFAULT_FOLDER_METRICS))
    ci: float = 0.95
    n_boot: int = 2000
    seed: int = 0


@dataclass
class FolderEvalResult:
    out: Path
    summary: dict
    per_clip_csv: Path
    summary_json: Path
    tables: list[Path]
    errors_jsonl: Path
    n_failed: int


def _folder_videos(cfg: FolderEvalConfig) -> list[Path]:
    for what, d in (("--videos", cfg.videos), ("--reference", cfg.reference), ("--audio", cfg.audio)):
        if d is not None and not Path(d).is_dir():
            raise VastbenchError(f"{what} {d}: no such directory")
    videos = sorted(p for p in Path(cfg.videos).glob("*.mp4") if not p.name.startswith("."))
    if not videos:
        raise VastbenchError(f"--videos {cfg.videos}: no .mp4 files in it; point it at the folder of generated clips")
    if Path(cfg.out).resolve() == Path(cfg.videos).resolve():
        raise VastbenchError(f"--out {cfg.out}: is the videos folder; write results to another directory")
    return videos


def _folder_metrics(cfg: FolderEvalConfig) -> dict[str, Metric]:
    for item in cfg.metrics:
        name, _ = metric_spec(item)
        if STYLE_PROMPT in METRICS.get(name).needs:
            raise VastbenchError(f"metric {name} needs a style prompt per clip and folder evaluation has none; "
                                 f"drop it from --metrics (or run it in a suite)")
    metrics, skipped = load_metrics(cfg.metrics)
    if skipped:
        # A folder evaluation was asked for these by name: say why, do not silently drop them.
        name, reason = next(iter(skipped.items()))
        raise VastbenchError(f"metric {name} cannot run here: {reason}")
    return metrics


def evaluate_folder(cfg: FolderEvalConfig, reporter=None) -> FolderEvalResult:
    """Score every ``<stem>.mp4`` in ``cfg.videos`` against ``cfg.reference/<stem>.mp4``."""
    track = reporter.track if reporter is not None else (lambda items, desc, total=None: iter(items))
    videos = _folder_videos(cfg)
    metrics = _folder_metrics(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    keys = {m.name: metric_key(m) for m in metrics.values()}
    needs_ref = any(REFERENCE_VIDEO in m.needs for m in metrics.values())
    rows: list[tuple[str, str, float]] = []
    errors: dict[str, str] = {}
    good: list[tuple] = []
    good_ids: list = []
    for video in track(videos, "evaluate"):
        stem = video.stem
        ref = Path(cfg.reference) / f"{stem}.mp4"
        wav = Path(cfg.audio) / f"{stem}.wav" if cfg.audio is not None else None
        if not ref.exists():
            if needs_ref:
                errors[stem] = (f"{video}: no reference {ref.name} in {cfg.reference}; name each reference "
                                f"like its video (same file stem)")
                continue
            ref = None
        request = Request(request_id=stem, identity="", reference=stem, driving=stem, prompt=stem, seed=0,
                          ground_truth=stem if ref is not None else None)
        sample = EvalSample(request=request, generated=video, reference=ref,
                            audio=wav if wav is not None and wav.exists() else None)
        try:  # decode once up front: an unreadable file is one reason, not one per metric
            sample.generated_video
            if ref is not None:
                sample.reference_video
        except VastbenchError as exc:
            errors[stem] = str(exc)
            continue
        inputs = {"video": sha256_file(video), "reference": sha256_file(ref) if ref is not None else None,
                  "audio": sha256_file(sample.audio) if sample.audio is not None else None}
        values, errs = score_cached(sample, metrics, out / "clips" / f"{stem}.json", inputs, keys)
        rows.extend((stem, m, v) for m, v in values.items())
        if errs:
            errors[stem] = merge_reasons(errs)
        else:   # kept as paths: set-level metrics decode again, one clip at a time
            good.append((request, video, ref, sample.audio))
            good_ids.append([inputs["video"], inputs["reference"]])
    set_values = {}
    for m in metrics.values():
        if isinstance(m, SetMetric):
            if good:
                samples = (EvalSample(request=r, generated=v, reference=f, audio=a) for r, v, f, a in good)
                value, errs = set_metric_cached(m, samples, out / "set", good_ids)
            else:
                value, errs = float("nan"), {}
            set_values[m.name] = (value, len(good) - len([k for k in errs if k != "__set__"]))
            for k, reason in errs.items():
                errors[Path(k).stem if k != "__set__" else f"__{m.name}__"] = f"{m.name}: {reason}"
    summary = _folder_summary(cfg, metrics, rows, set_values, errors, len(videos))
    csv_path = _write_per_clip(out / "per_clip.csv", rows)
    summary_path = atomic_write_json(out / "summary.json", summary, sort_keys=False)
    err_path = out / "errors.jsonl"
    atomic_write_text(err_path, "".join(json.dumps({"clip": k, "reason": v}, sort_keys=True) + "\n"
                                        for k, v in sorted(errors.items())))
    tables = write_folder_tables(summary, list(metrics.values()), out)
    return FolderEvalResult(out, summary, csv_path, summary_path, tables, err_path, len(errors))


def _folder_summary(cfg, metrics, rows, set_values, errors, n_videos) -> dict:
    out = {}
    for m in metrics.values():
        info = {"label": m.label or m.name, "higher_is_better": m.higher_is_better, "version": m.version}
        if m.per_clip:
            stats = summarize_values([v for (_, name, v) in rows if name == m.name], cfg.ci, cfg.n_boot, cfg.seed)
        else:
            value, n = set_values[m.name]
            stats = {"mean": value, "ci_low": float("nan"), "ci_high": float("nan"), "n": n}
        out[m.name] = {**stats, **info}
    notes = list(dict.fromkeys(n for n in (getattr(m, "footnote", None) for m in metrics.values()) if n))
    return {"videos": str(cfg.videos), "reference": str(cfg.reference),
            "audio": str(cfg.audio) if cfg.audio is not None else None, "n_videos": n_videos,
            "n_failed": len([k for k in errors if not k.startswith("__")]), "ci": cfg.ci, "bootstrap": cfg.n_boot,
            "seed": cfg.seed, "metrics": out, "describe": {m.name: m.describe() for m in metrics.values()},
            "notes": notes, "failures": dict(sorted(errors.items()))}


def _write_per_clip(path: Path, rows) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["clip", "metric", "value"])
    for clip, metric, value in sorted(rows):
        w.writerow([clip, metric, repr(float(value))])
    return atomic_write_text(path, buf.getvalue())


def folder_table(summary: dict, metrics: list[Metric]) -> str:
    """A booktabs table of one folder's scores: mean +- CI half-width, arrows from ``higher_is_better``."""
    from vastbench.report.latex import fit_to_width, fmt_value, tex_escape

    up, down = r"$\uparrow$", r"$\downarrow$"
    head = " & ".join(["Videos"] + [f"{m.label or tex_escape(m.name)} {up if m.higher_is_better else down}"
                                    for m in metrics])
    cells = [tex_escape(Path(summary["videos"]).name or summary["videos"])]
    for m in metrics:
        st = summary["metrics"][m.name]
        cells.append(fmt_value(st["mean"], st["ci_low"], st["ci_high"]))
    ci = int(round(summary["ci"] * 100))
    notes = [f"Mean $\\pm$ half-width of the {ci}\\% bootstrap CI over clips "
             f"({summary['bootstrap']} resamples)."]
    if summary["n_failed"]:
        notes.append(f"{summary['n_failed']} clip(s) failed one or more metrics (reasons in errors.jsonl); "
                     f"each mean is over the clips its metric scored.")
    notes.extend(tex_escape(n) for n in summary.get("notes", []))
    caption = tex_escape(f"Objective metrics of {summary['videos']} against {summary['reference']}.")
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\small", f"\\caption{{{caption}}}", r"\label{tab:folder-metrics}",
        *fit_to_width([f"\\begin{{tabular}}{{l{'c' * len(metrics)}}}", r"\toprule", head + r" \\", r"\midrule",
                       " & ".join(cells) + r" \\", r"\bottomrule", r"\end{tabular}"]),
        r"\par\vspace{2pt}\footnotesize " + " ".join(notes), r"\end{table}", ""])


def write_folder_tables(summary: dict, metrics: list[Metric], out_dir: Path) -> list[Path]:
    from vastbench.report.latex import standalone

    frag = folder_table(summary, metrics)
    return [atomic_write_text(Path(out_dir) / "metrics.tex", frag),
            atomic_write_text(Path(out_dir) / "metrics_standalone.tex", standalone(frag))]

