"""Kill a suite run with SIGKILL in three different stages (training, generation, evaluation), resume it,
and get the same numbers and tables as an uninterrupted run.

The interrupted runs and the uninterrupted one train their models in separate caches (sharing only the
dataset and the content-addressed feature cache), so "the same" means retrained-after-a-kill equals
trained-in-one-go, not a cache hit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, same_numbers as _same_numbers

pytestmark = pytest.mark.slow

SUITE = {
    "version": 1, "name": "resume_stages",
    "dataset": {"name": "synthtalk", "profile": "quick", "seed": 0},
    "requests": {"split": "test", "prompt": "same_style", "identities": ["id03"], "limit": 3, "seed": 0},
    "systems": [
        {"label": "ground_truth", "generator": "ground_truth"},
        {"label": "vast", "generator": "vast",
         "args": {"steps": 60, "renderer_steps": 40, "renderer_clips": 2}},
        {"label": "static", "generator": "static"},
    ],
    "metrics": ["psnr", "ssim", "m_lmd"],
    "statistics": {"ci": 0.95, "bootstrap": 500, "reference": "ground_truth"},
}


def _cache(tmp: Path, name: str) -> Path:
    """A fresh cache that shares the session's dataset and feature cache."""
    shared = Path(os.environ["VASTBENCH_CACHE"])
    cache = tmp / name
    cache.mkdir()
    for sub in ("data", "features"):
        (shared / sub).mkdir(exist_ok=True)
        (cache / sub).symlink_to(shared / sub)
    return cache


def _run(args: list[str], cache: Path, wait: bool = True):
    env = {**os.environ, "VASTBENCH_CACHE": str(cache), "VASTBENCH_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vastbench", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    if wait:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
    return proc


def _kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its training workers
            proc.wait(timeout=60)
            return
        time.sleep(0.01)
    raise AssertionError(f"the run ended (rc={proc.poll()}) before it reached {what}")


def _differences(run: Path, ref: Path) -> str:
    """Which clips and per-clip values differ between two runs (so a failure says where to look)."""
    from vastbench.rundir import sha256_file

    clips = sorted({p.relative_to(run) for p in run.glob("systems/*/clips/*.mp4")}
                   | {p.relative_to(ref) for p in ref.glob("systems/*/clips/*.mp4")})
    out = [f"clip {c}" for c in clips
           if not (run / c).exists() or not (ref / c).exists() or sha256_file(run / c) != sha256_file(ref / c)]
    a, b = ((d / "metrics" / "per_clip.csv").read_text().splitlines() for d in (run, ref))
    out += [f"row {x!r} != {y!r}" for x, y in zip(a, b) if x != y]
    return "; ".join(out) or "no clip or per-clip row differs"


def test_kill_in_three_stages_and_resume_gives_the_same_tables(synthtalk_quick, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    ref = tmp_path / "ref"
    _run(["run", "--suite", str(suite), "--out", str(ref), "--jobs", "2"], _cache(tmp_path, "cache_ref"))

    cache = _cache(tmp_path, "cache_killed")
    stages = {
        "training": lambda run: any(p.is_dir() for p in (cache / "systems").glob("*")) if (cache / "systems").exists() else False,
        "generation": lambda run: any((run / "systems" / "vast" / "clips").glob("r*.mp4")),
        "evaluation": lambda run: any((run / "metrics" / "clips").rglob("*.json")) if (run / "metrics" / "clips").exists() else False,
    }
    for stage, ready in stages.items():
        run = tmp_path / f"killed_in_{stage}"
        proc = _run(["run", "--suite", str(suite), "--out", str(run), "--jobs", "2"], cache, wait=False)
        _kill_when(proc, lambda: ready(run), stage)
        assert not (run / "metrics" / "summary.json").exists(), f"killed in {stage} after the run finished"
        _run(["run", "--resume", str(run)], cache)
        for rel in ("metrics/summary.json", "metrics/per_clip.csv", "tables/metrics.tex"):
            assert _same_numbers((run / rel).read_text(), (ref / rel).read_text()), \
                f"{rel} differs after a kill in {stage}: {_differences(run, ref)}"
    assert not list((cache / "systems").glob("*.tmp*")), "no temporary checkpoint files may survive"
