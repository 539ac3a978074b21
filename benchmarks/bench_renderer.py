"""Benchmark: renderer inference throughput (frames per second) at the quick and full sizes.

    .venv/bin/python benchmarks/bench_renderer.py [--frames 64] [--chunk 32] [--threads N] [--json OUT]

A thin wrapper over :func:`vastbench.bench.bench_renderer` (``vastbench bench --only renderer`` runs the
same code with the rest of the stages).  Untrained weights (speed does not depend on them), the presets'
architectures, one clip of ``--frames`` frames rendered through ``render_sequence`` in chunks of
``--chunk`` frames; the full preset gets a quarter of the frames on the CPU.  Condition building
(uint8 -> [-1, 1]) is included, mesh rasterization is not (``vastbench bench --only rasterizer``).
Prints JSON (CPU always, CUDA when available; bf16 autocast rows on CUDA) and optionally writes it.
Real time is 25 fps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: vastbench's rule)")
    ap.add_argument("--presets", default="quick,full")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from vastbench import bench as B

    threads = B.set_threads(args.threads)
    devices = B.BenchConfig(device="auto").devices()
    env = B.environment(devices)
    results = {"torch": env["torch"], "threads": threads, "cores": env["cores"], "cpu": env["host_cpu"],
               "load_avg": env["load_avg_start"], "gpu": (env["cuda"] or {}).get("name"), "runs": []}
    for device in devices:
        for precision in B.precisions(device):
            for preset in args.presets.split(","):
                frames = args.frames if not (device == "cpu" and preset == "full") else max(8, args.frames // 4)
                r = B.bench_renderer(preset, device, precision, frames, args.chunk, args.repeats)
                results["runs"].append({"preset": preset, "size": r["size"], "device": device, "precision": precision,
                                        "frames": frames, "chunk": args.chunk, "params": r["extra"]["params"],
                                        "wall_s": round(r["wall_s"], 4), "cpu_s": round(r["cpu_s"], 4),
                                        "fps": round(r["fps"], 1), "realtime_x": round(r["rtf"], 2)})
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
