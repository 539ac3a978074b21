"""Benchmark: wall time to train one VAST variant with the ``quick`` preset on SynthTalk quick.

    .venv/bin/python benchmarks/bench_vast_train.py [--variant vast] [--threads N]

Trains into a temporary directory (never the cache, so it always trains), from the SynthTalk
quick dataset (built first if absent, not timed), and prints seconds, steps per second, the
final losses, the thread count and the load average: a number to report, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="vast", help="vast, no_enhancer, no_flow, nar_only, ar_only, no_style")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: $VASTBENCH_THREADS or all)")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    args = ap.parse_args(argv)

    if args.threads:
        os.environ["VASTBENCH_THREADS"] = str(args.threads)
    from vastbench.config import DatasetConfig
    from vastbench.data.synthtalk.dataset import SynthTalkDataset
    from vastbench.torchutil import configure_threads
    from vastbench.vast.config import make_config
    from vastbench.vast.expression_eval import load_vast_clips
    from vastbench.vast.train import train

    threads = configure_threads()
    manifest = SynthTalkDataset(DatasetConfig(name="synthtalk", profile="quick", seed=0)).load()
    t0 = time.perf_counter()
    train_clips = load_vast_clips(manifest.split("train"))
    val_clips = load_vast_clips(manifest.split("val"))
    load_s = time.perf_counter() - t0
    cfg = make_config("quick", args.variant)
    steps = args.steps or cfg.steps
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        train(cfg, train_clips, val_clips, Path(tmp), steps=steps, device="cpu", seed=0, progress=False)
        train_s = time.perf_counter() - t1
    res = {"variant": args.variant, "preset": "quick", "steps": steps, "train_s": round(train_s, 1),
           "steps_per_s": round(steps / train_s, 2), "load_clips_s": round(load_s, 1), "threads": threads,
           "cores": os.cpu_count(), "load_avg_before": round(load_before, 2), "load_avg_after": round(os.getloadavg()[0], 2)}
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
