"""The ``Metric`` interface (DESIGN.md section 3).

A per-clip metric maps one :class:`EvalSample` to a float; every per-clip value is
kept so that confidence intervals and paired tests are possible.  A set-level
metric (FID) keeps float64 sufficient statistics that merge across shards and
processes.  Metrics never call generators.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vastbench import media
from vastbench.data.requests import Request
from vastbench.errors import VastbenchError

# What a metric may need besides the generated clip.
REFERENCE_VIDEO = "reference_video"
AUDIO = "audio"
STYLE_PROMPT = "style_prompt"


@dataclass
class EvalSample:
    """One generated clip with what metrics compare it to; media decoded lazily, once."""

    request: Request
    generated: Path
    reference: Path | None = None   # the ground-truth video
    audio: Path | None = None       # the driving wav
    prompt: Path | None = None      # the style prompt video
    cache: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def generated_video(self) -> media.Video:
        return media.read_video(self.generated, with_audio=True)

    @cached_property
    def reference_video(self) -> media.Video:
        if self.reference is None:
            raise VastbenchError(f"request {self.request.request_id}: this metric needs a ground-truth video and the request has none")
        return media.read_video(self.reference, with_audio=False)

    def paired_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """Generated and reference frames, checked to have equal length and size."""
        gen, ref = self.generated_video.frames, self.reference_video.frames
        if gen.shape[1:] != ref.shape[1:]:
            raise VastbenchError(
                f"{self.generated}: resolution {gen.shape[2]}x{gen.shape[1]} differs from the reference's "
                f"{ref.shape[2]}x{ref.shape[1]}; generate at the dataset's size")
        if abs(len(gen) - len(ref)) > 1:
            raise VastbenchError(
                f"{self.generated}: {len(gen)} frames vs {len(ref)} in the reference; outputs must match the driving audio's length")
        n = min(len(gen), len(ref))
        return gen[:n], ref[:n]


class Metric(ABC):
    name: ClassVar[str]
    higher_is_better: ClassVar[bool]
    needs: ClassVar[frozenset[str]] = frozenset()
    per_clip: ClassVar[bool] = True
    version: ClassVar[str] = "1"
    #: a short label for tables (LaTeX allowed), and a footnote when non-standard.
    label: ClassVar[str | None] = None
    footnote: str | None = None
    #: constructor arguments a suite gave (see :func:`build_metric`); empty for the defaults.
    args: dict[str, Any] = {}

    def describe(self) -> dict:
        d = {"name": self.name, "version": self.version, "higher_is_better": self.higher_is_better,
             "per_clip": self.per_clip, "needs": sorted(self.needs)}
        if self.args:   # only then, so cache keys of metrics built without arguments stay as they were
            d["args"] = dict(self.args)
        return d

    def base_version(self) -> str:
        """The class's version, plus a hash of the constructor arguments a suite gave (if any)."""
        if not self.args:
            return type(self).version
        from vastbench.config import stable_hash

        return f"{type(self).version}+{stable_hash(self.args)[:8]}"

    def bind_dataset(self, manifest: Any) -> None:
        """Adapt to the dataset under evaluation (the runner calls it once the manifest is loaded).

        Most metrics do not depend on the dataset; :class:`CaptureMetric` picks its face capture here."""

    @abstractmethod
    def __call__(self, sample: EvalSample) -> float:
        """The per-clip value (for set-level metrics: an optional per-clip diagnostic)."""


class CaptureMetric(Metric):
    """A per-clip metric measured through face capture (landmarks, expressions).

    Unbound, or bound to SynthTalk, it uses the shipped SynthTalk-trained capture
    network; bound to an ingested dataset (:meth:`bind_dataset`), MediaPipe with the
    dataset's face model (:func:`vastbench.evalnets.face_capture.capture_for`).  Then
    ``describe()`` and ``footnote`` say so, and ``version`` gets ``+mediapipe``, so a
    value cached under one capture is never reused under the other.
    """

    capture: Any = None   # None: the shipped network

    def bind_dataset(self, manifest: Any) -> None:
        from vastbench.evalnets.face_capture import capture_for

        self.capture = capture_for(manifest)
        base = self.base_version()
        self.version = base if self.capture.kind == "synthtalk" else f"{base}+{self.capture.kind}"

    @property
    def capture_kind(self) -> str:
        return "synthtalk" if self.capture is None else self.capture.kind

    @property
    def footnote(self) -> str | None:  # type: ignore[override]
        return getattr(self.capture, "footnote", None)

    def describe(self) -> dict:
        from vastbench.evalnets.face_capture import SHIPPED

        return {**super().describe(), **(self.capture or SHIPPED).describe()}

    def captured(self, sample: EvalSample, role: str) -> dict[str, np.ndarray]:
        """``role``'s (generated, reference, prompt) captured expression, pose and landmarks, once per sample."""
        from vastbench.evalnets.face_capture import capture_sample

        return capture_sample(sample, role, self.capture)


class SetMetric(Metric):
    """A set-level metric built from mergeable float64 sufficient statistics."""

    per_clip = False

    @abstractmethod
    def new_state(self) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def update(self, state: dict[str, np.ndarray], sample: EvalSample) -> None: ...

    def merge(self, states: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        out = self.new_state()
        for s in states:
            for k in out:
                out[k] = out[k] + s[k]
        return out

    @abstractmethod
    def compute(self, state: dict[str, np.ndarray]) -> float: ...

    def __call__(self, sample: EvalSample) -> float:
        return float("nan")


def metric_spec(item: str | tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """A metric given as a registry name or as ``(name, constructor arguments)`` -> ``(name, args)``."""
    return (item, {}) if isinstance(item, str) else (item[0], dict(item[1]))


def build_metric(name: str, args: dict[str, Any] | None = None) -> Metric:
    """The registered metric ``name`` built with ``args`` (a suite's ``{name: ..., args: {...}}``).

    Unknown or missing arguments are a one-line error naming the metric and its valid
    arguments.  With arguments, the instance's ``version`` gets a hash of them, so
    per-clip values cached under other arguments (or none) are never reused.
    """
    import inspect

    from vastbench.registry import METRICS

    cls = METRICS.get(name)
    args = dict(args or {})
    if not args:
        return cls()
    sig = inspect.signature(cls.__init__)
    valid = [p.name for p in list(sig.parameters.values())[1:]
             if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    try:
        sig.bind(None, **args)
    except TypeError as exc:
        raise VastbenchError(f"metric {name}: {exc}; its arguments are {', '.join(valid) or 'none'}") from None
    metric = cls(**args)
    metric.args = args
    metric.version = metric.base_version()   # bind_dataset keeps it (and adds the capture's kind)
    return metric
