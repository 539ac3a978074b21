"""Suite orchestration: data -> requests -> prepare -> generate -> evaluate -> report.

Each stage skips work whose outputs exist and whose inputs hash the same, so
``vastbench run --resume RUN_DIR`` after a crash (or a SIGKILL) finishes with the
same numbers as an uninterrupted run.  A clip that fails is recorded in its
system's ``errors.jsonl`` with a one-line reason and the run goes on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from vastbench import __version__
from vastbench.config import SuiteConfig, stable_hash
from vastbench.data.manifest import Manifest
from vastbench.data.requests import Request, build_requests, load_requests, save_requests
from vastbench.errors import VastbenchError
from vastbench.generators import GenContext, Generator, one_line
from vastbench.metrics.base import EvalSample, Metric, SetMetric
from vastbench.metrics.ci import bootstrap_ci
from vastbench.paths import cache_dir
from vastbench.registry import DATASETS, GENERATORS, METRICS
from vastbench.rundir import (RunDir, atomic_write_json, atomic_write_text, git_state, now_iso,
                              package_versions, read_json, sha256_file)

log = logging.getLogger("vastbench.runner")
STAGES = ("data", "requests", "prepare", "generate", "evaluate", "report")


def resolve_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise VastbenchError(f"--device '{device}': use auto, cpu, cuda or cuda:N")
    if device == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise VastbenchError(f"--device {device}: no CUDA device is visible; use --device cpu or auto")
    return device


@dataclass
class Reporter:
    """Progress callbacks; the CLI plugs rich progress bars in, tests use the silent default."""

    stage: Callable[[str, str], None] = lambda name, msg: None
    track: Callable[..., Iterator] = lambda items, desc, total=None: iter(items)


@dataclass
class RunResult:
    run: RunDir
    summary: dict
    tables: list[Path] = field(default_factory=list)
    failures: int = 0


class Runner:
    def __init__(self, cfg: SuiteConfig, run: RunDir, device: str = "auto", reporter: Reporter | None = None,
                 stop_after: str | None = None):
        self.cfg = cfg
        self.run = run
        self.device = resolve_device(device)
        self.rep = reporter or Reporter()
        self.stop_after = stop_after
        self.manifest: Manifest | None = None
        self.requests: list[Request] = []
        self.generators: dict[str, Generator] = {}
        self.metrics: list[Metric] = [METRICS.get(m)() for m in cfg.metrics]

    # ------------------------------------------------------------------ main
    def execute(self) -> RunResult:
        self.run.root.mkdir(parents=True, exist_ok=True)
        handler = self.run.attach_log()
        try:
            self._write_manifest_header()
            result = None
            for stage in STAGES:
                with self._timed(stage):
                    out = getattr(self, f"stage_{stage}")()
                    if stage == "report":
                        result = out
                if self.stop_after == stage:
                    break
            self.run.update_manifest(status="complete" if self.stop_after is None else f"stopped after {self.stop_after}",
                                     finished_at=now_iso())
            return result or RunResult(self.run, read_json(self.run.metrics_dir / "summary.json", {}))
        finally:
            logging.getLogger("vastbench").removeHandler(handler)
            handler.close()

    @contextlib.contextmanager
    def _timed(self, stage: str):
        log.info("stage %s: start", stage)
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        log.info("stage %s: done in %.2fs", stage, dt)
        data = self.run.read_manifest()
        timings = data.get("timings", {})
        timings[stage] = round(timings.get(stage, 0.0) + dt, 3)
        self.run.update_manifest(timings=timings)

    def _write_manifest_header(self) -> None:
        existing = read_json(self.run.manifest_path, None)
        if existing is not None and existing.get("config_hash") not in (None, self.cfg.config_hash()):
            raise VastbenchError(f"{self.run.root}: holds a run of a different configuration; start a new run instead of resuming")
        runs = (existing or {}).get("invocations", 0) + 1
        self.run.update_manifest(
            vastbench=__version__, suite=self.cfg.model_dump(mode="json"), config_hash=self.cfg.config_hash(),
            git=git_state(), versions=package_versions(), device=self.device,
            seeds={"suite": self.cfg.seed, "dataset": self.cfg.dataset.seed, "requests": self.cfg.requests.seed,
                   "statistics": self.cfg.statistics.seed},
            started_at=(existing or {}).get("started_at", now_iso()), invocations=runs, status="running")

    # ------------------------------------------------------------------ stages
    def stage_data(self) -> None:
        ds_cls = DATASETS.get(self.cfg.dataset.name)
        dataset = ds_cls(self.cfg.dataset)
        self.rep.stage("data", f"{self.cfg.dataset.name} ({self.cfg.dataset.profile}) at {dataset.root()}")
        self.manifest = dataset.load(progress=self.rep)
        self.run.update_manifest(dataset={"name": self.cfg.dataset.name, "profile": self.cfg.dataset.profile,
                                          "root": str(dataset.root()), "manifest_hash": self.manifest.content_hash(),
                                          "n_clips": len(self.manifest)})

    def stage_requests(self) -> None:
        path = self.run.requests_path
        reqs = build_requests(self.manifest, self.cfg.requests)
        if path.exists():
            old = load_requests(path)
            if old != reqs:
                raise VastbenchError(f"{path}: the dataset or request settings changed since this run started; start a new run")
        else:
            save_requests(reqs, path)
        self.requests = reqs
        self.run.update_manifest(n_requests=len(reqs))

    def stage_prepare(self) -> None:
        ctx = GenContext(manifest=self.manifest, device=self.device, cache_dir=cache_dir(), seed=self.cfg.seed)
        train = Manifest(self.manifest.split("train"), self.manifest.path)
        weights = {}
        for sys_cfg in self.cfg.systems:
            gen_cls = GENERATORS.get(sys_cfg.generator)
            gen = gen_cls(sys_cfg.label, ctx, **sys_cfg.args)
            work = cache_dir() / "systems" / f"{gen.name}-{gen.config_hash()}"
            self.rep.stage("prepare", sys_cfg.label)
            gen.prepare(train, work)
            self.generators[sys_cfg.label] = gen
            weights[sys_cfg.label] = gen.describe().get("weights", {})
        self.run.update_manifest(weights=weights)

    def stage_generate(self) -> None:
        for label, gen in self.generators.items():
            sdir = self.run.system_dir(label)
            info_path = sdir / "generator.json"
            info = {"label": label, "config_hash": gen.config_hash(), **gen.describe()}
            old = read_json(info_path)
            if old is not None and old.get("config_hash") != info["config_hash"]:
                log.info("system %s changed (%s -> %s): regenerating", label, old.get("config_hash"), info["config_hash"])
                shutil.rmtree(sdir / "clips", ignore_errors=True)
                self.run.errors_path(label).unlink(missing_ok=True)
            atomic_write_json(info_path, info)
            errors = {k: v for k, v in self.run.read_errors(label).items() if v.get("stage") != "generate"}
            todo = [r for r in self.requests if not self.run.clip_path(label, r.request_id).exists()]
            (sdir / "clips").mkdir(parents=True, exist_ok=True)
            batch = max(1, int(getattr(gen, "batch_size", 1)))
            chunks = [todo[i:i + batch] for i in range(0, len(todo), batch)]
            for chunk in self.rep.track(chunks, f"generate {label}"):
                for out in gen.generate(chunk, sdir / "clips"):
                    if not out.ok:
                        errors[out.request_id] = {"request_id": out.request_id, "stage": "generate",
                                                  "reason": out.error}
                        log.warning("%s %s: %s", label, out.request_id, out.error)
                    else:
                        errors.pop(out.request_id, None)
                self.run.write_errors(label, errors)

    def stage_evaluate(self) -> None:
        per_clip_metrics = self.metrics
        rows: list[tuple[str, str, str, float]] = []
        for label in self.generators:
            errors = self.run.read_errors(label)
            samples = []
            for req in self.requests:
                clip = self.run.clip_path(label, req.request_id)
                if clip.exists():
                    samples.append(self._sample(req, clip))
            for sample in self.rep.track(samples, f"evaluate {label}"):
                values, errs = self._eval_clip(label, sample, per_clip_metrics)
                rid = sample.request.request_id
                for m, v in values.items():
                    rows.append((label, rid, m, v))
                if errs:
                    errors[rid] = {"request_id": rid, "stage": "evaluate",
                                   "reason": "; ".join(f"{m}: {e}" for m, e in sorted(errs.items()))}
                elif errors.get(rid, {}).get("stage") == "evaluate":
                    errors.pop(rid)
            self.run.write_errors(label, errors)
            for metric in per_clip_metrics:
                if isinstance(metric, SetMetric):
                    value = self._set_metric(label, metric, samples)
                    rows.append((label, "__set__", metric.name, value))
        self._write_per_clip(rows)
        self._write_summary(rows)

    def _sample(self, req: Request, clip: Path) -> EvalSample:
        m = self.manifest
        return EvalSample(request=req, generated=clip,
                          reference=m[req.ground_truth].path("video") if req.ground_truth else None,
                          audio=m[req.driving].path("audio"), prompt=m[req.prompt].path("video"))

    def _eval_clip(self, label: str, sample: EvalSample, metrics: list[Metric]) -> tuple[dict, dict]:
        rid = sample.request.request_id
        path = self.run.metric_clip_path(label, rid)
        clip_sha = sha256_file(sample.generated)
        cached = read_json(path, {}) or {}
        if cached.get("clip_sha256") != clip_sha:
            cached = {"clip_sha256": clip_sha, "metrics": {}, "errors": {}}
        values, errs = {}, {}
        changed = False
        for metric in metrics:
            if not metric.per_clip:
                continue
            hit = cached["metrics"].get(metric.name)
            if hit is not None and hit.get("version") == metric.version:
                values[metric.name] = hit["value"]
                continue
            err_hit = cached["errors"].get(metric.name)
            if err_hit is not None and err_hit.get("version") == metric.version:
                errs[metric.name] = err_hit["reason"]
                continue
            try:
                v = float(metric(sample))
                cached["metrics"][metric.name] = {"version": metric.version, "value": v}
                values[metric.name] = v
            except Exception as exc:  # one bad clip must not stop the run
                log.debug("metric %s failed on %s/%s:\n%s", metric.name, label, rid, traceback.format_exc())
                cached["errors"][metric.name] = {"version": metric.version, "reason": one_line(exc)}
                errs[metric.name] = one_line(exc)
            changed = True
        if changed:
            atomic_write_json(path, cached)
        return values, errs

    def _set_metric(self, label: str, metric: SetMetric, samples: list[EvalSample]) -> float:
        # The value depends on the generated clips, the reference clips and the metric's weights.
        key = stable_hash([metric.describe()] + [[sha256_file(s.generated), sha256_file(s.reference)
                                                  if s.reference is not None and s.reference.exists() else None]
                                                 for s in samples])
        path = self.run.metrics_dir / "set" / label / f"{metric.name}.json"
        cached = read_json(path, {}) or {}
        if cached.get("input_hash") == key:
            return cached["value"]
        state = metric.new_state()
        for s in samples:
            metric.update(state, s)
        value = float(metric.compute(state))
        atomic_write_json(path, {"input_hash": key, "value": value})
        return value

    def _write_per_clip(self, rows) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["system", "request", "metric", "value"])
        for r in rows:
            w.writerow([r[0], r[1], r[2], repr(float(r[3]))])
        atomic_write_text(self.run.metrics_dir / "per_clip.csv", buf.getvalue())

    def _write_summary(self, rows) -> None:
        st = self.cfg.statistics
        systems = {}
        total_failed = 0
        for label in self.generators:
            errors = self.run.read_errors(label)
            n_gen = sum(self.run.clip_path(label, r.request_id).exists() for r in self.requests)
            failed = len(errors)
            total_failed += failed
            mets = {}
            for metric in self.metrics:
                vals = [v for (s, rid, m, v) in rows if s == label and m == metric.name]
                if metric.per_clip:
                    mean, lo, hi = bootstrap_ci(vals, st.ci, st.bootstrap, st.seed)
                    mets[metric.name] = {"mean": mean, "ci_low": lo, "ci_high": hi, "n": len(vals)}
                else:
                    mets[metric.name] = {"mean": vals[0] if vals else float("nan"), "ci_low": float("nan"),
                                         "ci_high": float("nan"), "n": n_gen}
            systems[label] = {"n_requests": len(self.requests), "n_generated": n_gen, "n_failed": failed,
                              "failures": {k: v["reason"] for k, v in sorted(errors.items())}, "metrics": mets}
        notes = [n for n in (getattr(m, "footnote", None) for m in self.metrics) if n]
        summary = {"suite": self.cfg.name, "suite_version": self.cfg.version, "config_hash": self.cfg.config_hash(),
                   "ci": st.ci, "bootstrap": st.bootstrap, "notes": list(dict.fromkeys(notes)),
                   "metrics": {m.name: m.describe() for m in self.metrics},
                   "systems": systems, "n_failed": total_failed}
        # Systems keep the suite's order (tables follow it), so no key sorting here.
        atomic_write_json(self.run.metrics_dir / "summary.json", summary, sort_keys=False)

    def stage_report(self) -> RunResult:
        from vastbench.report.html import write_html_report
        from vastbench.report.latex import write_metric_tables

        summary = read_json(self.run.metrics_dir / "summary.json")
        tables = write_metric_tables(summary, self.metrics, self.run.tables_dir, self.cfg) if self.cfg.report.tables else []
        if self.cfg.report.html:
            write_html_report(self.run, summary, self.cfg)
        return RunResult(self.run, summary, tables, summary.get("n_failed", 0))


def run_suite(cfg: SuiteConfig, run: RunDir, device: str = "auto", reporter: Reporter | None = None,
              stop_after: str | None = None) -> RunResult:
    return Runner(cfg, run, device, reporter, stop_after).execute()


def resume_run(run_dir: str | Path, device: str | None = None, reporter: Reporter | None = None) -> RunResult:
    """Continue an interrupted run from its manifest's resolved suite."""
    from vastbench.config import SuiteConfig as _S

    run = RunDir(run_dir)
    data = run.read_manifest()
    if "suite" not in data:
        raise VastbenchError(f"{run.manifest_path}: has no resolved suite; the run never started, start a new one")
    cfg = _S.model_validate(data["suite"])
    return run_suite(cfg, run, device or "auto", reporter)
