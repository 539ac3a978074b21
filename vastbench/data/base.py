"""The dataset interface: build a dataset (if it is generated) and return its manifest."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from vastbench.config import DatasetConfig, stable_hash
from vastbench.data.manifest import Manifest
from vastbench.errors import VastbenchError
from vastbench.paths import cache_dir


class Dataset(ABC):
    name: ClassVar[str]
    profiles: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[str] = "1"

    def __init__(self, cfg: DatasetConfig):
        if self.profiles and cfg.profile not in self.profiles:
            raise VastbenchError(
                f"dataset '{self.name}' has no profile '{cfg.profile}'; valid: {', '.join(self.profiles)}")
        self.cfg = cfg

    def root(self) -> Path:
        if self.cfg.root:
            return Path(self.cfg.root).expanduser()
        key = stable_hash({"v": self.version, "args": self.cfg.args}, 8)
        return cache_dir() / "data" / f"{self.name}-{self.cfg.profile}-s{self.cfg.seed}-{key}"

    def manifest_path(self) -> Path:
        return self.root() / "manifest.jsonl"

    def exists(self) -> bool:
        return self.manifest_path().exists()

    @abstractmethod
    def build(self, progress: Any = None) -> Manifest:
        """Build (resumably) and return the manifest."""

    def load(self, progress: Any = None) -> Manifest:
        """The manifest, building the dataset first when it is missing."""
        if not self.exists():
            return self.build(progress=progress)
        return Manifest.load(self.manifest_path())


class ManifestDataset(Dataset):
    """An existing dataset on disk: ``dataset.root`` holds ``manifest.jsonl``."""

    name = "manifest"

    def root(self) -> Path:
        if not self.cfg.root:
            raise VastbenchError("dataset 'manifest' needs dataset.root: the directory holding manifest.jsonl")
        return Path(self.cfg.root).expanduser()

    def build(self, progress: Any = None) -> Manifest:
        return Manifest.load(self.manifest_path())
