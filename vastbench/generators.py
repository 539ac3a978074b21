"""The ``Generator`` interface (DESIGN.md section 3).

Every system (VAST and its ablations, baselines, controls, external methods)
implements it.  Generators own batching and device; they never see a metric.
"""

from __future__ import annotations

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
    """What a generator may use: the dataset, the device, a cache for weights."""

    manifest: Manifest
    device: str = "cpu"
    cache_dir: Path | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


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
        return False

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
