"""vastbench: evaluation and MOS benchmarking for expressive talking-head generation."""

__version__ = "0.1.0"

from vastbench.errors import VastbenchError  # noqa: E402

__all__ = ["VastbenchError", "__version__"]
