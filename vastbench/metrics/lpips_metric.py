"""LPIPS against the ground-truth video, through the ``lpips`` package (AlexNet, v0.1).

The linear calibration layers ship inside the ``lpips`` wheel; the AlexNet
trunk's ImageNet weights do not: ``lpips`` asks torchvision, which downloads
``alexnet-owt-7be5be79.pth`` into the torch hub cache
(``$TORCH_HOME/hub/checkpoints``).  vastbench never downloads:

- file present: standard LPIPS, built exactly as ``lpips.LPIPS(net="alex",
  version="0.1")`` (torchvision reads the cached file);
- file missing: a warning, once, and the metric refuses (a one-line error that
  says where to put the file), unless the untrained substitute is allowed
  (``allow_untrained=True`` or ``VASTBENCH_LPIPS_ALLOW_UNTRAINED=1``).  The
  substitute keeps the calibrated linear layers on a randomly initialised
  AlexNet trunk (seeded, so it is repeatable).  It is a different metric and is
  named so everywhere: ``lpips_star`` in CSV and JSON, ``LPIPS*`` in tables,
  with :data:`UNTRAINED_FOOTNOTE`.  A number under the name ``lpips`` is always
  standard LPIPS.

Per clip: the mean over frames of LPIPS(generated frame, ground-truth frame),
frames in [-1, 1] at their native size, batched.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from vastbench.errors import VastbenchError
from vastbench.metrics.base import REFERENCE_VIDEO, EvalSample, Metric

log = logging.getLogger(__name__)

ENV_ALLOW_UNTRAINED = "VASTBENCH_LPIPS_ALLOW_UNTRAINED"
UNTRAINED_FOOTNOTE = "LPIPS* uses an untrained AlexNet backbone; not comparable to published LPIPS"
UNTRAINED_SEED = 0
_warned = False


def alexnet_weights_path() -> Path:
    """Where torchvision keeps AlexNet's ImageNet weights (what ``lpips`` would download)."""
    from torchvision.models import AlexNet_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(AlexNet_Weights.IMAGENET1K_V1.url).name


def build_lpips(trained_backbone: bool) -> torch.nn.Module:
    """``lpips.LPIPS(net="alex", version="0.1")``; with ``trained_backbone=False`` on a seeded random trunk."""
    import lpips

    if trained_backbone and not alexnet_weights_path().is_file():
        raise VastbenchError(f"AlexNet weights not found at {alexnet_weights_path()}; LPIPS would download them")
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore", UserWarning)  # torchvision's `pretrained=` deprecation, inside lpips
        torch.manual_seed(UNTRAINED_SEED)
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=not trained_backbone, verbose=False)
    return model.eval()


@torch.no_grad()
def lpips_frames(generated: np.ndarray, reference: np.ndarray, model: torch.nn.Module,
                 batch_size: int = 16) -> np.ndarray:
    """Per-frame LPIPS of two (T, H, W, 3) uint8 RGB videos of equal shape -> (T,) float64."""
    if generated.shape != reference.shape:
        raise VastbenchError(f"LPIPS needs videos of equal shape, got {generated.shape} and {reference.shape}")
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(generated), batch_size):
        g, r = (torch.from_numpy(np.ascontiguousarray(v[s:s + batch_size])).to(device).permute(0, 3, 1, 2).float()
                / 127.5 - 1.0 for v in (generated, reference))
        out.append(model(g, r).flatten().double().cpu().numpy())
    return np.concatenate(out)


_MODELS: dict[tuple, torch.nn.Module] = {}


def _allowed(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get(ENV_ALLOW_UNTRAINED, "").strip().lower() in ("1", "true", "yes")


class LPIPS(Metric):
    """LPIPS (AlexNet, v0.1) vs the ground truth, mean over frames (lower is better).

    Refuses without the AlexNet trunk weights unless the untrained substitute is
    allowed; the substitute is then this instance's metric, ``lpips_star`` / ``LPIPS*``.
    """

    name = "lpips"
    higher_is_better = False
    needs = frozenset({REFERENCE_VIDEO})
    label = "LPIPS"
    version = "1"
    footnote: str | None = None

    def __init__(self, allow_untrained: bool | None = None, device: str | None = None, batch_size: int = 16):
        global _warned
        self.device, self.batch_size = device, batch_size
        self.trained_backbone = alexnet_weights_path().is_file()
        if not self.trained_backbone:
            if not _warned:
                log.warning("LPIPS: AlexNet ImageNet weights not found at %s (offline: lpips cannot download them)",
                            alexnet_weights_path())
                _warned = True
            if not _allowed(allow_untrained):
                raise VastbenchError(
                    f"LPIPS needs torchvision's AlexNet weights at {alexnet_weights_path()}; copy "
                    f"alexnet-owt-7be5be79.pth there, or set {ENV_ALLOW_UNTRAINED}=1 to report the untrained "
                    f"substitute LPIPS* (not comparable to published LPIPS)")
            self.name, self.label, self.footnote = "lpips_star", "LPIPS*", UNTRAINED_FOOTNOTE

    def describe(self) -> dict:
        return {**super().describe(), "net": "alex", "lpips_version": "0.1",
                "backbone": "ImageNet AlexNet (torchvision)" if self.trained_backbone
                else f"untrained AlexNet (torch.manual_seed({UNTRAINED_SEED}))",
                "backbone_path": str(alexnet_weights_path()) if self.trained_backbone else None,
                "footnote": self.footnote}

    def model(self) -> torch.nn.Module:
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        key = (self.trained_backbone, str(alexnet_weights_path()), str(device))
        if key not in _MODELS:
            _MODELS[key] = build_lpips(self.trained_backbone).to(device)
        return _MODELS[key]

    def per_frame(self, sample: EvalSample) -> np.ndarray:
        gen, ref = sample.paired_frames()
        return lpips_frames(gen, ref, self.model(), self.batch_size)

    def __call__(self, sample: EvalSample) -> float:
        return float(self.per_frame(sample).mean())


class LPIPSAllowUntrained(LPIPS):
    """LPIPS where the trunk weights are present, else the labelled substitute LPIPS* (offline demos)."""

    def __init__(self, device: str | None = None, batch_size: int = 16):
        super().__init__(allow_untrained=True, device=device, batch_size=batch_size)
