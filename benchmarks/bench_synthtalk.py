"""Benchmark: build SynthTalk from scratch and print the time (and per-frame cost).

    .venv/bin/python benchmarks/bench_synthtalk.py --profile quick [--workers 2] [--limit N]

``--limit`` renders only the first N clips of the plan (to extrapolate the ``full``
profile, which takes a while on a laptop).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from vastbench.config import DatasetConfig
    from vastbench.data.synthtalk import dataset as D

    out = args.out or Path(tempfile.mkdtemp(prefix="synthtalk-bench-"))
    ds = D.SynthTalkDataset(DatasetConfig(name="synthtalk", profile=args.profile, root=str(out),
                                          args={"workers": args.workers}))
    specs = D.plan_clips(0, int(ds.settings()["clips_per_pair"]))
    t0 = time.perf_counter()
    if args.limit:
        import multiprocessing as mp

        jobs = [(str(out), s, int(ds.settings()["size"]), 0) for s in specs[: args.limit]]
        with mp.get_context("fork").Pool(args.workers) as pool:
            rows = list(pool.imap_unordered(D._worker, jobs))
    else:
        rows = [c.to_row() for c in ds.build().clips]
    dt = time.perf_counter() - t0
    frames = sum(r["n_frames"] for r in rows)
    size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    res = {"profile": args.profile, "clips": len(rows), "of_planned": len(specs), "frames": frames,
           "seconds": round(dt, 1), "ms_per_frame_wall": round(1000 * dt / frames, 2),
           "estimated_full_build_s": round(dt * len(specs) / len(rows), 1), "disk_mb": round(size_mb, 1),
           "estimated_full_disk_mb": round(size_mb * len(specs) / len(rows), 1),
           "workers": args.workers, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
