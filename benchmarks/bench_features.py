"""Benchmark: real-time factor of PPG and SyncNet-MFCC extraction on this CPU.

    .venv/bin/python benchmarks/bench_features.py [--seconds 60]

A thin wrapper over :func:`vastbench.bench.bench_features` (``vastbench bench --only features``).
RTF = seconds of audio processed per second of compute (higher is faster).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=1, help="timed runs after a warm-up (median)")
    args = ap.parse_args(argv)

    from vastbench import bench as B

    threads = B.set_threads(None)
    env = B.environment(["cpu"])
    res = {"audio_s": args.seconds, "threads": threads, "torch": env["torch"], "cores": env["cores"],
           "load_avg": env["load_avg_start"]}
    for r in B.bench_features(args.seconds, args.repeats):
        res[f"{r['name']}_rtf"] = round(r["rtf"], 1)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
