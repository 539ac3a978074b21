"""Where vastbench keeps things that outlive one run: datasets, trained systems, assets."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$VASTBENCH_CACHE``, else ``~/.cache/vastbench``: datasets and trained weights, shared by runs."""
    env = os.environ.get("VASTBENCH_CACHE")
    root = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vastbench"
    root.mkdir(parents=True, exist_ok=True)
    return root
