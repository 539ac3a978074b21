"""The ``Generator`` interface (DESIGN.md section 3).

Every system (VAST and its ablations, baselines, controls, external methods)
implements it.  Generators own batching and device; they never see a metric.
"""

from __future__ import annotations

import contextlib

import logging
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vastbench.config import stable_hash
from vastbench.data.manifest import Manifest
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)


@dataclass
class GenContext:
    """What a generator may use: the dataset, the device, a cache for weights, the run's requests.

    ``requests`` lets a generator train only what the run needs (e.g. one personalized
    renderer per target identity that appears in the requests).
    """

    manifest: Manifest
    device: str = "cpu"
    cache_dir: Path | None = None
    seed: int = 0
    requests: list[Request] = field(default_factory=list)
    dataset_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainJob:
    """One unit of training a generator needs, run by the runner (in a worker process when ``--jobs`` > 1).

    Jobs with the same ``key`` are run once and shared (one renderer for all expression ablations).
    ``target`` is ``"module:function"``, called as ``function(**kwargs)`` in the worker; kwargs must be
    picklable.  ``done`` is the file that exists once the job has finished (the cache hit test).
    ``cost`` is a rough estimate in seconds, used to start long jobs first.
    """

    key: str
    label: str
    target: str
    kwargs: dict[str, Any]
    done: Path
    cost: float = 60.0
    ddp: bool = False       # under torchrun, every rank runs it together (DDP); else rank 0 alone


@dataclass
class Output:
    request_id: str
    path: Path | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def one_line(exc: BaseException) -> str:
    """A one-line reason for a per-clip failure."""
    if isinstance(exc, VastbenchError):
        return str(exc)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


class Generator(ABC):
    """Base class: ``prepare`` (train or load), ``generate`` (batched), ``describe``."""

    name: ClassVar[str] = "generator"
    version: ClassVar[str] = "1"
    #: allowed keys of ``args`` with their defaults; unknown keys are errors.
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, label: str, ctx: GenContext, **args: Any):
        unknown = sorted(set(args) - set(self.defaults))
        if unknown:
            from vastbench.registry import did_you_mean

            raise VastbenchError(
                f"system '{label}': generator '{self.name}' has no argument '{unknown[0]}'"
                f"{did_you_mean(unknown[0], self.defaults) if self.defaults else '; it takes no arguments'}")
        self.label = label
        self.ctx = ctx
        self.args = {**self.defaults, **args}

    def prepare(self, train_manifest: Manifest, work_dir: Path) -> None:
        """Train or load weights (cached under ``work_dir``); controls need nothing."""

    def needs_training(self, work_dir: Path) -> bool:
        """Whether ``prepare`` would train (False when weights are cached or nothing is learned)."""
        return any(not job.done.exists() for job in self.training_jobs(work_dir))

    def training_jobs(self, work_dir: Path) -> list[TrainJob]:
        """The training this system needs, as independent jobs the runner may run in parallel.

        ``prepare`` must still work alone (it runs missing jobs inline); the runner calls
        ``training_jobs`` first so that jobs of all systems share one process pool.
        """
        return []

    def generate(self, requests: list[Request], out_dir: Path) -> list[Output]:
        """Generate every request into ``out_dir/<request_id>.mp4``; failures are isolated."""
        outputs = []
        for req in requests:
            path = Path(out_dir) / f"{req.request_id}.mp4"
            try:
                self.generate_one(req, path)
                outputs.append(Output(req.request_id, path))
            except Exception as exc:  # one broken clip must not stop the run
                log.debug("generation failed for %s:\n%s", req.request_id, traceback.format_exc())
                outputs.append(Output(req.request_id, error=one_line(exc)))
        return outputs

    @abstractmethod
    def generate_one(self, request: Request, out_path: Path) -> None:
        """Write one clip atomically to ``out_path``."""

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "args": self.args, "weights": {}}

    def config_hash(self) -> str:
        d = self.describe()
        return stable_hash({"name": d["name"], "version": d["version"], "args": d["args"],
                            "weights": d.get("weights", {})})


def run_train_job(target: str, kwargs: dict[str, Any], done: Path | str | None = None,
                  threads: int | None = None) -> str:
    """Run one :class:`TrainJob` target (in this process or a pool worker).

    ``done``: the job's done-file.  A lock next to its directory is held while training, so two runs
    (or a resumed run and a stray worker of a killed one) never train into the same directory at once;
    whoever gets the lock second finds the job done and returns.
    """
    import fcntl
    import importlib
    import os

    if threads is not None:
        os.environ["VASTBENCH_THREADS"] = str(threads)
        from vastbench.torchutil import configure_threads

        configure_threads()
    module, attr = target.split(":", 1)
    fn = getattr(importlib.import_module(module), attr)
    if done is None:
        return str(fn(**kwargs))
    done = Path(done)
    done.parent.parent.mkdir(parents=True, exist_ok=True)
    with open(done.parent.with_name(done.parent.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if done.exists():
                return "cached"
            return str(fn(**kwargs))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def bare_main():
    """Spawn processes while ``__main__`` is a bare module.

    A spawned child first re-runs the parent's ``__main__`` script (multiprocessing's "main
    fixup").  Under Streamlit, a notebook, a test runner that swapped ``__main__``, or a script
    without an ``if __name__ == "__main__"`` guard, re-running it crashes or restarts the job,
    and the pool dies with BrokenProcessPool.  Our workers' targets are importable by name, so
    they need nothing from ``__main__``: while workers start, it is an empty module.
    """
    import sys
    import types

    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def worker_init() -> None:
    """Pool-worker set-up: die with the parent (Linux), so a killed run leaves no training behind."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:
            pass
