"""Benchmark: renderer inference throughput (frames per second) at the quick and full sizes.

    .venv/bin/python benchmarks/bench_renderer.py [--frames 64] [--chunk 32] [--threads N] [--json OUT]

Untrained weights (speed does not depend on them), the presets' architectures,
one clip of ``--frames`` frames rendered through ``render_sequence`` in chunks
of ``--chunk`` frames (the batch the encoder/decoder sees; the ConvLSTM steps
through them in order).  Reports wall-clock and process-CPU frames per second
per size and device (CPU always, CUDA when available), the chunk, threads,
core count, torch version; prints JSON and optionally writes it.  Real time
is 25 fps.  Condition building (uint8 -> [-1, 1]) is included, mesh
rasterization is not (it belongs to the conditioning stage, ~5 ms/frame at
80 px on one core with the SynthTalk rasterizer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def bench_one(preset: str, device: str, frames: int, chunk: int, repeats: int) -> dict:
    import torch

    from vastbench.vast.renderer import Renderer, count_parameters, make_config
    from vastbench.vast.renderer_train import render_sequence

    cfg = make_config(preset)
    torch.manual_seed(0)
    model = Renderer(cfg).to(device).eval()
    rng = np.random.default_rng(0)
    s = cfg.size
    bg = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
    mesh = rng.integers(0, 256, (frames, s, s, 3), dtype=np.uint8)
    ppg = rng.dirichlet(np.ones(cfg.ppg_dim), size=4 * frames).astype(np.float32)

    def run():
        render_sequence(model, bg, mesh, ppg, chunk=chunk)
        if device == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up (allocator, cuDNN autotune)
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    wall = float(np.median(walls))
    return {"preset": preset, "size": s, "device": device, "frames": frames, "chunk": chunk,
            "params": count_parameters(model), "wall_s": round(wall, 4), "cpu_s": round(float(np.median(cpus)), 4),
            "fps": round(frames / wall, 1), "realtime_x": round(frames / wall / 25.0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: vastbench's rule)")
    ap.add_argument("--presets", default="quick,full")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    from vastbench.torchutil import configure_threads

    threads = configure_threads() if args.threads is None else args.threads
    torch.set_num_threads(threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {"torch": torch.__version__, "threads": threads, "cores": os.cpu_count(),
               "cpu": platform.processor() or platform.machine(),
               "load_avg": [round(x, 2) for x in os.getloadavg()],
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "runs": []}
    for device in devices:
        for preset in args.presets.split(","):
            frames = args.frames if not (device == "cpu" and preset == "full") else max(8, args.frames // 4)
            results["runs"].append(bench_one(preset, device, frames, args.chunk, args.repeats))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
