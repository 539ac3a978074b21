"""Name -> implementation registries with lazy ``"module:attr"`` entries.

Heavy backends (torch models, mediapipe, transformers) are imported only when a
suite names them.  A duplicate name is an error, an unknown name gets a
"did you mean" suggestion.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Generic, Iterator, TypeVar

from vastbench.errors import VastbenchError

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """A short suggestion suffix ("; did you mean 'x'?") or a list of valid names."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    if close:
        return f"; did you mean '{close[0]}'?"
    shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
    return f"; valid: {shown}" if choices else ""


class Registry(Generic[T]):
    """A registry of one kind of thing (generators, metrics, datasets)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str, target: Any = None):
        """Register ``target`` (an object or a ``"module:attr"`` string) under ``name``.

        Used as a plain call or as a class decorator (``@REG.register("x")``).
        """
        if target is None:
            def deco(obj):
                self.register(name, obj)
                return obj
            return deco
        if name in self._entries:
            raise VastbenchError(f"duplicate {self.kind} name '{name}': it is already registered; pick another name")
        if isinstance(target, str) and ":" not in target:
            raise VastbenchError(f"{self.kind} '{name}': lazy entries look like 'package.module:attr', got '{target}'")
        self._entries[name] = target
        return target

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise VastbenchError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}")
        target = self._entries[name]
        if isinstance(target, str):
            module, attr = target.split(":", 1)
            target = getattr(importlib.import_module(module), attr)
            self._entries[name] = target
        return target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


GENERATORS: Registry = Registry("generator")
METRICS: Registry = Registry("metric")
DATASETS: Registry = Registry("dataset")

# Built-in entries.  Lazy, so `vastbench suites` does not import torch.
GENERATORS.register("ground_truth", "vastbench.controls.controls:GroundTruth")
GENERATORS.register("static", "vastbench.controls.controls:StaticFrame")
GENERATORS.register("shifted_audio", "vastbench.controls.controls:ShiftedAudio")
GENERATORS.register("wav2lip_style", "baselines.wav2lip_style.generator:Wav2LipStyle")
GENERATORS.register("external", "baselines.external.generator:External")
GENERATORS.register("vast", "vastbench.vast.generator:VastGenerator")
GENERATORS.register("styletalk_style", "baselines.styletalk_style.generator:StyleTalkStyle")
GENERATORS.register("neutral", "baselines.neutral.generator:Neutral")

METRICS.register("psnr", "vastbench.metrics.image:PSNR")
METRICS.register("ssim", "vastbench.metrics.image:SSIM")
METRICS.register("lse_d", "vastbench.metrics.lse:LSED")
METRICS.register("lse_c", "vastbench.metrics.lse:LSEC")
METRICS.register("fid", "vastbench.metrics.fid:FID")
METRICS.register("lpips", "vastbench.metrics.lpips_metric:LPIPS")
METRICS.register("style_sim", "vastbench.metrics.style:StyleSim")
METRICS.register("style_param_err", "vastbench.metrics.style:StyleParamErr")
METRICS.register("m_lmd", "vastbench.metrics.landmarks:MLMD")
METRICS.register("f_lmd", "vastbench.metrics.landmarks:FLMD")
METRICS.register("expr_std_mouth", "vastbench.metrics.expressiveness:ExprStdMouth")
METRICS.register("expr_std_upper", "vastbench.metrics.expressiveness:ExprStdUpper")
METRICS.register("upper_dyn_dev", "vastbench.metrics.expressiveness:UpperDynDev")
# LPIPS with an untrained AlexNet backbone when the ImageNet weights are absent; reported as LPIPS*.
METRICS.register("lpips_offline", "vastbench.metrics.lpips_metric:LPIPSAllowUntrained")

DATASETS.register("fixture", "vastbench.data.fixture:FixtureDataset")
DATASETS.register("synthtalk", "vastbench.data.synthtalk.dataset:SynthTalkDataset")
DATASETS.register("manifest", "vastbench.data.base:ManifestDataset")
