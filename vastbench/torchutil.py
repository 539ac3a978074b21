"""Small torch helpers shared by training and inference code."""

from __future__ import annotations

import contextlib
import os


def configure_threads() -> int:
    """Set torch's intra-op threads from ``$VASTBENCH_THREADS``.

    Default: one thread on machines with two cores or fewer (measured here: two
    threads on two busy cores were 4-6x slower per training step than one,
    from oversubscription), otherwise all cores.
    """
    import torch

    env = os.environ.get("VASTBENCH_THREADS")
    cores = os.cpu_count() or 1
    n = int(env) if env else (1 if cores <= 2 else cores)
    torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` intra-op threads, then restore the previous count.

    For features that are cached and trained on: a matmul's rounding depends on how many threads
    split its sums, so the same audio gave PPG posteriors differing by up to 1.2e-7 with one thread
    and with two, and training amplified that into different weights.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
