"""Self-contained VAST checkpoints: the file alone rebuilds the model.

Contents: format name + version, the config as a dict, the model state (which
includes the data normalizer), and for resuming: optimizer state, step, and the
RNG states (torch, CUDA, the window sampler's numpy generator).  Only plain
types and tensors, so ``torch.load(weights_only=True)`` reads it.  Files are
written atomically, so a run killed while saving keeps its previous checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vastbench.errors import VastbenchError
from vastbench.rundir import sha256_file
from vastbench.trainstate import cpu_state, load_state, save_state
from vastbench.vast.config import VastConfig
from vastbench.vast.model import VastModel

FORMAT = "vastbench.vast"
VERSION = 1


def save_checkpoint(path: str | Path, model: VastModel, optimizer: torch.optim.Optimizer | None = None,
                    step: int = 0, rng: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
    state = {
        "format": FORMAT,
        "version": VERSION,
        "torch_version": str(torch.__version__),
        "config": model.cfg.to_dict(),
        "model": cpu_state(model.state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": int(step),
        "rng": rng or {},
        "extra": extra or {},
    }
    if type(model) is not VastModel:  # a model built on VAST's parts (e.g. the StyleTalk-style baseline)
        state["model_class"] = f"{type(model).__module__}:{type(model).__qualname__}"
    return save_state(path, state)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return load_state(path, what="VAST", fmt=FORMAT, version=VERSION, writer="vastbench.vast.train",
                      corrupt_fix="retrain or re-download it", version_fix="retrain it with this version",
                      map_location=map_location)


def model_class(state: dict[str, Any]) -> type[VastModel]:
    """The checkpoint's model class: VastModel, or a subclass named by ``model_class`` ("module:Class")."""
    name = state.get("model_class")
    if not name:
        return VastModel
    import importlib

    module, _, attr = str(name).partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        raise VastbenchError(f"checkpoint model class {name} cannot be imported; install the package that "
                             f"defines it") from None
    if not (isinstance(cls, type) and issubclass(cls, VastModel)):
        raise VastbenchError(f"checkpoint model class {name} is not a VastModel subclass; refusing to build it")
    return cls


def model_from_state(state: dict[str, Any], device: str | torch.device = "cpu") -> VastModel:
    model = model_class(state)(VastConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> VastModel:
    """Rebuild a VAST model from the checkpoint file alone, in eval mode."""
    return model_from_state(load_checkpoint(path), device).eval()


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of the checkpoint file, for run manifests and ``Generator.describe()``."""
    return sha256_file(path)
