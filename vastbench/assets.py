"""Frozen, versioned assets: weights that must not change between runs.

Evaluation networks and the speech front end are trained once by a recipe in the
repository, frozen, and shipped with their sha256; retraining them between runs
would make scores incomparable.  Official third-party weights (SyncNet, LPIPS
backbone, wav2vec2, pytorch-fid Inception) cannot be downloaded here: they are
imported by the user into the asset directory and checked against pinned hashes.

Where assets live:

- shipped assets: ``vastbench/weights/`` inside the package (small files, in git);
- imported assets: ``$VASTBENCH_CACHE/assets/`` (see ``vastbench assets list``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vastbench.errors import VastbenchError
from vastbench.paths import cache_dir
from vastbench.rundir import sha256_file

log = logging.getLogger(__name__)
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class AssetSpec:
    name: str
    filename: str
    sha256: str | None          # None: not pinned yet (to be frozen)
    shipped: bool               # inside the package (True) or imported by the user (False)
    description: str
    recipe: str                 # how to reproduce or obtain it

    @property
    def path(self) -> Path:
        return (SHIPPED_DIR if self.shipped else cache_dir() / "assets") / self.filename


ASSETS: dict[str, AssetSpec] = {}


def register_asset(spec: AssetSpec) -> AssetSpec:
    if spec.name in ASSETS:
        raise VastbenchError(f"duplicate asset name '{spec.name}'")
    ASSETS[spec.name] = spec
    return spec


def asset_path(name: str, verify: bool = True) -> Path:
    """The verified path of an asset, or a one-line error saying how to get it."""
    if name not in ASSETS:
        from vastbench.registry import did_you_mean

        raise VastbenchError(f"unknown asset '{name}'{did_you_mean(name, ASSETS)}")
    spec = ASSETS[name]
    if not spec.path.exists():
        raise VastbenchError(f"asset '{name}' not found at {spec.path}; {spec.recipe}")
    if verify and spec.sha256 is not None:
        digest = sha256_file(spec.path)
        if digest != spec.sha256:
            raise VastbenchError(
                f"asset '{name}' at {spec.path} has sha256 {digest[:16]}..., expected {spec.sha256[:16]}...; "
                f"the file was changed or is the wrong one: {spec.recipe}")
    return spec.path


def asset_status() -> list[dict]:
    out = []
    for spec in ASSETS.values():
        present = spec.path.exists()
        digest = sha256_file(spec.path) if present and spec.path.is_file() else None
        out.append({"name": spec.name, "path": str(spec.path), "present": present,
                    "verified": present and (spec.sha256 is None or digest == spec.sha256),
                    "sha256": digest, "pinned": spec.sha256, "description": spec.description})
    return out
