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
from vastbench import distributed as dist
from vastbench.config import SuiteConfig, stable_hash
from vastbench.data.manifest import Manifest
from vastbench.data.requests import Request, build_requests, load_requests, save_requests
from vastbench.errors import VastbenchError
from vastbench.generators import GenContext, Generator, TrainJob, one_line
from vastbench.metrics.base import EvalSample, Metric, SetMetric, build_metric
from vastbench.metrics.ci import bootstrap_ci
from vastbench.paths import cache_dir
from vastbench.registry import DATASETS, GENERATORS
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


def default_jobs(device: str) -> int:
    """Training jobs run at once: on CPU one per core up to 4 (the cores are shared out among them),
    one on a GPU (the jobs would compete for its memory)."""
    import os

    if device != "cpu":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


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
    mos_study: Path | None = None


class Runner:
    def __init__(self, cfg: SuiteConfig, run: RunDir, device: str = "auto", reporter: Reporter | None = None,
                 stop_after: str | None = None, jobs: int | None = None):
        self.cfg = cfg
        self.run = run
        self.device = resolve_device(device)
        self.rep = reporter or Reporter()
        self.stop_after = stop_after
        self.manifest: Manifest | None = None
        self.requests: list[Request] = []
        self.generators: dict[str, Generator] = {}
        self.failed_systems: dict[str, str] = {}
        self.jobs = default_jobs(self.device) if jobs is None else max(1, int(jobs))
        self.metrics: list[Metric] = [build_metric(name, args) for name, args in cfg.metric_specs()]

    # ------------------------------------------------------------------ main
    def execute(self) -> RunResult:
        from vastbench.torchutil import configure_threads

        configure_threads()  # 1 thread on a 2-core machine: 2 threads on busy cores were 6x slower (LPIPS)
        started_dist = dist.init(self.device)
        self.device = dist.local_device(self.device)
        if self.main:
            self.run.root.mkdir(parents=True, exist_ok=True)
        dist.barrier()
        handler = self.run.attach_log() if self.main else logging.NullHandler()
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
            self._update(status="complete" if self.stop_after is None else f"stopped after {self.stop_after}",
                         finished_at=now_iso())
            dist.barrier()
            return result or RunResult(self.run, read_json(self.run.metrics_dir / "summary.json", {}))
        finally:
            logging.getLogger("vastbench").removeHandler(handler)
            handler.close()
            if started_dist:
                dist.shutdown()

    @property
    def main(self) -> bool:
        """Rank 0 (or the only process): the one that writes shared files."""
        return dist.is_main()

    def _update(self, **fields) -> None:
        if self.main:
            self.run.update_manifest(**fields)

    @contextlib.contextmanager
    def _timed(self, stage: str):
        log.info("stage %s: start", stage)
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        log.info("stage %s: done in %.2fs", stage, dt)
        if self.main:
            data = self.run.read_manifest()
            timings = data.get("timings", {})
            timings[stage] = round(timings.get(stage, 0.0) + dt, 3)
            self._update(timings=timings)

    def _write_manifest_header(self) -> None:
        if not self.main:
            return
        existing = read_json(self.run.manifest_path, None)
        if existing is not None and existing.get("config_hash") not in (None, self.cfg.config_hash()):
            raise VastbenchError(f"{self.run.root}: holds a run of a different configuration; start a new run instead of resuming")
        runs = (existing or {}).get("invocations", 0) + 1
        self._update(
            vastbench=__version__, suite=self.cfg.model_dump(mode="json"), config_hash=self.cfg.config_hash(),
            git=git_state(), versions=package_versions(), device=self.device, world_size=dist.world_size(),
            seeds={"suite": self.cfg.seed, "dataset": self.cfg.dataset.seed, "requests": self.cfg.requests.seed,
                   "statistics": self.cfg.statistics.seed},
            started_at=(existing or {}).get("started_at", now_iso()), invocations=runs, status="running")

    # ------------------------------------------------------------------ stages
    def stage_data(self) -> None:
        ds_cls = DATASETS.get(self.cfg.dataset.name)
        dataset = ds_cls(self.cfg.dataset)
        self.rep.stage("data", f"{self.cfg.dataset.name} ({self.cfg.dataset.profile}) at {dataset.root()}")
        if self.main:  # rank 0 builds a missing dataset; the others read it afterwards
            self.manifest = dataset.load(progress=self.rep)
        dist.barrier()
        if not self.main:
            self.manifest = dataset.load()
        for metric in self.metrics:  # face-capture metrics: MediaPipe on an ingested dataset, else the shipped net
            metric.bind_dataset(self.manifest)
        self._update(dataset={"name": self.cfg.dataset.name, "profile": self.cfg.dataset.profile,
                                          "root": str(dataset.root()), "manifest_hash": self.manifest.content_hash(),
                                          "n_clips": len(self.manifest)})

    def stage_requests(self) -> None:
        path = self.run.requests_path
        reqs = build_requests(self.manifest, self.cfg.requests)
        if path.exists():
            old = load_requests(path)
            if old != reqs:
                raise VastbenchError(f"{path}: the dataset or request settings changed since this run started; start a new run")
        elif self.main:
            save_requests(reqs, path)
        dist.barrier()
        self.requests = reqs
        self._update(n_requests=len(reqs))

    def stage_prepare(self) -> None:
        """Build every system, run the training jobs they need (shared, in parallel), then load them.

        A system whose training or loading fails is recorded (every request of it fails with the
        reason in its errors.jsonl); the other systems go on.
        """
        ctx = GenContext(manifest=self.manifest, device=self.device, cache_dir=cache_dir(), seed=self.cfg.seed,
                         requests=self.requests, dataset_seed=self.cfg.dataset.seed)
        train = Manifest(self.manifest.split("train"), self.manifest.path)
        works = {}
        for sys_cfg in self.cfg.systems:
            gen_cls = GENERATORS.get(sys_cfg.generator)
            gen = gen_cls(sys_cfg.label, ctx, **sys_cfg.args)
            works[sys_cfg.label] = cache_dir() / "systems" / f"{gen.name}-{gen.config_hash()}"
            self.generators[sys_cfg.label] = gen
        jobs: dict[str, TrainJob] = {}
        owners: dict[str, list[str]] = {}
        for label, gen in self.generators.items():
            try:
                for job in gen.training_jobs(works[label]):
                    if not job.done.exists():
                        jobs.setdefault(job.key, job)
                        owners.setdefault(job.key, []).append(label)
            except Exception as exc:
                self._system_failed(label, exc)
        for key, err in self._run_jobs(list(jobs.values())).items():
            for label in owners[key]:
                self.failed_systems.setdefault(label, f"training {jobs[key].label} failed: {err}")
        weights = {}
        for label, gen in self.generators.items():
            if label in self.failed_systems:
                continue
            self.rep.stage("prepare", label)
            try:
                gen.prepare(train, works[label])
            except Exception as exc:
                self._system_failed(label, exc)
                continue
            weights[label] = gen.describe().get("weights", {})
        self._update(weights=weights, failed_systems=self.failed_systems)

    def _system_failed(self, label: str, exc: BaseException) -> None:
        log.debug("system %s failed to prepare:\n%s", label, traceback.format_exc())
        log.error("system %s failed to prepare: %s", label, one_line(exc))
        self.failed_systems[label] = one_line(exc)

    def _run_jobs(self, jobs: list[TrainJob]) -> dict[str, str]:
        """Run training jobs, longest first, ``self.jobs`` at a time; returns {key: error} of failures."""
        import concurrent.futures as cf
        import multiprocessing as mp
        import os

        from vastbench.generators import bare_main, run_train_job, worker_init

        failures: dict[str, str] = {}
        if not jobs:
            return failures
        jobs = sorted(jobs, key=lambda j: (-j.cost, j.key))
        if dist.world_size() > 1:
            return self._run_jobs_distributed(jobs)
        n = max(1, min(self.jobs, len(jobs)))
        self.rep.stage("prepare", f"training {len(jobs)} model(s), {n} at a time: "
                       + ", ".join(j.label for j in jobs))
        if n == 1:
            for job in self.rep.track(jobs, "train", total=len(jobs)):
                log.info("training %s", job.label)
                try:
                    run_train_job(job.target, job.kwargs, job.done)
                except Exception as exc:
                    log.debug("training %s failed:\n%s", job.label, traceback.format_exc())
                    failures[job.key] = one_line(exc)
            return failures
        threads = max(1, (os.cpu_count() or 1) // n)
        with cf.ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"), initializer=worker_init) as pool:
            with bare_main():  # every worker starts during these submits
                futures = {pool.submit(run_train_job, j.target, j.kwargs, str(j.done), threads): j for j in jobs}
            for fut in self.rep.track(cf.as_completed(futures), "train", total=len(jobs)):
                job = futures[fut]
                try:
                    fut.result()
                    log.info("trained %s", job.label)
                except Exception as exc:
                    log.error("training %s failed: %s", job.label, one_line(exc))
                    failures[job.key] = one_line(exc)
        return failures

    def _run_jobs_distributed(self, jobs: list[TrainJob]) -> dict[str, str]:
        """Under torchrun: one job at a time; DDP jobs on every rank together, the rest on rank 0."""
        from vastbench.generators import run_train_job

        failures: dict[str, str] = {}
        for job in self.rep.track(jobs, "train", total=len(jobs)):
            err = None
            if job.ddp or self.main:
                try:
                    # Only rank 0 takes the job's file lock (it alone writes the job's files).
                    run_train_job(job.target, job.kwargs, job.done if self.main else None)
                except Exception as exc:
                    log.debug("training %s failed:\n%s", job.label, traceback.format_exc())
                    err = one_line(exc)
            errs = [e for e in dist.all_gather_object(err) if e]
            if errs:
                failures[job.key] = errs[0]
        return failures

    def stage_generate(self) -> None:
        """Every missing clip of every system; under torchrun each rank takes its share of the requests."""
        for label, gen in self.generators.items():
            sdir = self.run.system_dir(label)
            if label in self.failed_systems:
                reason = f"system failed to prepare: {self.failed_systems[label]}"
                if self.main:
                    self.run.write_errors(label, {r.request_id: {"request_id": r.request_id, "stage": "prepare",
                                                                 "reason": reason}
                                                  for r in self.requests
                                                  if not self.run.clip_path(label, r.request_id).exists()})
                continue
            info_path = sdir / "generator.json"
            info = {"label": label, "config_hash": gen.config_hash(), **gen.describe()}
            if self.main:
                old = read_json(info_path)
                if old is not None and old.get("config_hash") != info["config_hash"]:
                    log.info("system %s changed (%s -> %s): regenerating", label, old.get("config_hash"),
                             info["config_hash"])
                    shutil.rmtree(sdir / "clips", ignore_errors=True)
                    self.run.errors_path(label).unlink(missing_ok=True)
                atomic_write_json(info_path, info)
                (sdir / "clips").mkdir(parents=True, exist_ok=True)
            dist.barrier()
            base = {k: v for k, v in self.run.read_errors(label).items() if v.get("stage") not in ("generate", "prepare")}
            todo = dist.shard([r for r in self.requests if not self.run.clip_path(label, r.request_id).exists()])
            batch = max(1, int(getattr(gen, "batch_size", 1)))
            chunks = [todo[i:i + batch] for i in range(0, len(todo), batch)]
            updates: dict[str, dict | None] = {}   # request -> its error, or None when it succeeded
            for chunk in self.rep.track(chunks, f"generate {label}"):
                for out in gen.generate(chunk, sdir / "clips"):
                    updates[out.request_id] = None if out.ok else {
                        "request_id": out.request_id, "stage": "generate", "reason": out.error}
                    if not out.ok:
                        log.warning("%s %s: %s", label, out.request_id, out.error)
                if dist.world_size() == 1:  # errors on disk after every chunk: a crash loses none
                    self.run.write_errors(label, _apply_updates(base, updates))
            if dist.world_size() > 1:
                merged: dict[str, dict | None] = {}
                for part in dist.all_gather_object(updates):
                    merged.update(part)
                if self.main:
                    self.run.write_errors(label, _apply_updates(base, merged))
                dist.barrier()

    def stage_evaluate(self) -> None:
        """Per-clip metrics (sharded by rank under torchrun, each rank writing its clips' metric files),
        then set-level metrics from merged sufficient statistics; rank 0 writes the tables' inputs."""
        per_clip_metrics = self.metrics
        world = dist.world_size()
        rows: list[tuple[str, str, str, float]] = []
        for label in self.generators:
            samples = []
            for req in self.requests:
                clip = self.run.clip_path(label, req.request_id)
                if clip.exists():
                    samples.append(self._sample(req, clip))
            if world > 1:
                for sample in self.rep.track(dist.shard(samples), f"evaluate {label}"):
                    self._eval_clip(label, sample, per_clip_metrics)
                dist.barrier()
            if self.main:  # single-process: computes; under torchrun: reads what the ranks computed
                errors = self.run.read_errors(label)
                for sample in (samples if world > 1 else self.rep.track(samples, f"evaluate {label}")):
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
        if self.main:
            self._write_per_clip(rows)
            self._write_summary(rows)
        dist.barrier()

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
        for s in dist.shard(samples):
            metric.update(state, s)
        if dist.world_size() > 1:  # float64 sufficient statistics of every rank, merged
            state = metric.merge(dist.all_gather_object(state))
        value = float(metric.compute(state))
        if self.main:
            atomic_write_json(path, {"input_hash": key, "value": value})
        dist.barrier()
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
                   # the table label too (LPIPS* when the substitute backbone is used), for `vastbench report`
                   "metrics": {m.name: {**m.describe(), **({"label": m.label} if m.label else {})}
                               for m in self.metrics},
                   "systems": systems, "n_failed": total_failed}
        # Systems keep the suite's order (tables follow it), so no key sorting here.
        atomic_write_json(self.run.metrics_dir / "summary.json", summary, sort_keys=False)

    def stage_report(self) -> RunResult:
        from vastbench.report.html import write_html_report
        from vastbench.report.latex import write_metric_tables

        summary = read_json(self.run.metrics_dir / "summary.json")
        tables, study = [], None
        if self.main:
            tables = write_metric_tables(summary, self.metrics, self.run.tables_dir, self.cfg) if self.cfg.report.tables else []
            if self.cfg.report.html:
                write_html_report(self.run, summary, self.cfg)
            if self.cfg.mos.enabled:
                study = self._mos_study()
        dist.barrier()
        return RunResult(self.run, summary, tables, summary.get("n_failed", 0), study)

    def _mos_study(self) -> Path | None:
        """A ready-to-serve MOS study of the run's clips (once; an existing study is kept with its ratings)."""
        import os
        import secrets

        from vastbench.mos.design import StudyOptions, create_study

        study_dir = self.run.root / "mos"
        if (study_dir / "study.json").exists():
            return study_dir
        password = os.environ.get("VASTBENCH_MOS_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        try:
            res = create_study(self.run.root, study_dir, StudyOptions(admin_password=password))
        except VastbenchError as exc:  # e.g. too few complete clips: the tables still stand
            log.error("MOS study not created: %s", exc)
            return None
        secret = study_dir / "private" / "admin_password.txt"
        atomic_write_text(secret, password + "\n")
        secret.chmod(0o600)
        for note in res.notes:
            log.info("MOS study: %s", note)
        self._update(mos_study=str(study_dir))
        return study_dir

    # ------------------------------------------------------------------ evaluate only (`vastbench eval --run`)
    def evaluate_only(self, expected_manifest_hash: str | None = None) -> RunResult:
        """Re-run the evaluate and report stages on the clips a run already has; nothing is generated.

        The systems are the suite's labels that have a directory under ``systems/``;
        evaluate and report only use their labels, so no generator is built.
        """
        from vastbench.torchutil import configure_threads

        configure_threads()
        handler = self.run.attach_log() if self.main else logging.NullHandler()
        try:
            self.stage_data()
            if expected_manifest_hash and self.manifest.content_hash() != expected_manifest_hash:
                raise VastbenchError(f"{self.run.root}: its dataset changed since the run (manifest hash "
                                     f"{expected_manifest_hash} -> {self.manifest.content_hash()}); start a new run")
            self.stage_requests()
            self.generators = dict.fromkeys(s.label for s in self.cfg.systems if self.run.system_dir(s.label).is_dir())
            if not self.generators:
                raise VastbenchError(f"{self.run.root}: has no system directories with clips; nothing to evaluate")
            for stage in ("evaluate", "report"):
                with self._timed(stage):
                    result = getattr(self, f"stage_{stage}")()
            return result
        finally:
            logging.getLogger("vastbench").removeHandler(handler)
            handler.close()


def _apply_updates(base: dict[str, dict], updates: dict[str, dict | None]) -> dict[str, dict]:
    """Errors after generation: ``base`` with each request's new error set, or removed when it succeeded."""
    out = dict(base)
    for rid, err in updates.items():
        if err is None:
            out.pop(rid, None)
        else:
            out[rid] = err
    return out


def run_suite(cfg: SuiteConfig, run: RunDir, device: str = "auto", reporter: Reporter | None = None,
              stop_after: str | None = None, jobs: int | None = None) -> RunResult:
    return Runner(cfg, run, device, reporter, stop_after, jobs).execute()


def resume_run(run_dir: str | Path, device: str | None = None, reporter: Reporter | None = None,
               jobs: int | None = None) -> RunResult:
    """Continue an interrupted run from its manifest's resolved suite."""
    from vastbench.config import SuiteConfig as _S

    run = RunDir(run_dir)
    data = run.read_manifest()
    if "suite" not in data:
        raise VastbenchError(f"{run.manifest_path}: has no resolved suite; the run never started, start a new one")
    cfg = _S.model_validate(data["suite"])
    return run_suite(cfg, run, device or "auto", reporter, jobs=jobs)
