"""``vastbench validate``: a dry run that resolves a suite and says what a run would do."""

from __future__ import annotations

from vastbench.config import load_suite
from vastbench.data.manifest import Manifest
from vastbench.data.requests import build_requests
from vastbench.generators import GenContext, Generator
from vastbench.paths import cache_dir
from vastbench.metrics.base import build_metric
from vastbench.registry import DATASETS, GENERATORS


_BASE_JOBS = Generator.training_jobs


def validate_suite_plan(suite: str, overrides: list[str] | None = None, profile: str | None = None) -> list[str]:
    """Resolve and check everything that can be checked without running; return report lines."""
    cfg = load_suite(suite, overrides, profile)
    lines = [f"suite {cfg.name} v{cfg.version} (config {cfg.config_hash()}): OK"]
    dataset = DATASETS.get(cfg.dataset.name)(cfg.dataset)
    metrics = [build_metric(name, args) for name, args in cfg.metric_specs()]
    gen_classes = [(s, GENERATORS.get(s.generator)) for s in cfg.systems]
    if dataset.exists():
        manifest = Manifest.load(dataset.manifest_path())
        reqs = build_requests(manifest, cfg.requests)
        lines.append(f"dataset {cfg.dataset.name}/{cfg.dataset.profile}: {len(manifest)} clips at {dataset.root()}")
        lines.append(f"requests: {len(reqs)} from split '{cfg.requests.split}' (prompt: {cfg.requests.prompt})")
    else:
        manifest = None
        lines.append(f"dataset {cfg.dataset.name}/{cfg.dataset.profile}: missing, would be built at {dataset.root()}")
        lines.append(f"requests: built from split '{cfg.requests.split}' once the dataset exists")
    lines.append(f"systems ({len(cfg.systems)}):")
    ctx = GenContext(manifest=manifest, cache_dir=cache_dir(), seed=cfg.seed,
                     requests=reqs if manifest is not None else [], dataset_seed=cfg.dataset.seed)
    for s, cls in gen_classes:
        gen = cls(s.label, ctx, **s.args)  # checks the arguments
        work = cache_dir() / "systems" / f"{gen.name}-{gen.config_hash()}"
        if manifest is None:
            todo = "trains once the dataset exists" if cls.training_jobs is not _BASE_JOBS else "nothing to train"
        else:
            pending = [j.label for j in gen.training_jobs(work) if not j.done.exists()]
            todo = f"would train: {', '.join(pending)}" if pending else "nothing to train (cached)" \
                if cls.training_jobs is not _BASE_JOBS else "nothing to train"
        lines.append(f"  {s.label}: {s.generator} {s.args or ''} -> {todo}".rstrip())
    lines.append("metrics: " + ", ".join(f"{m.name} ({'higher' if m.higher_is_better else 'lower'} is better"
                                        f"{'' if m.per_clip else ', set-level'})" for m in metrics))
    return lines
