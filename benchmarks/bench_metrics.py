"""Throughput of the objective metrics on this machine: LSE, FID features, LPIPS.

    python benchmarks/bench_metrics.py [--threads 1] [--frames 50] [--json out.json]

A thin wrapper over :mod:`vastbench.bench` (``vastbench bench --only metrics`` also times PSNR, SSIM,
style_sim, M-LMD and decoding).  LSE is timed twice on the same clip: the library's batched pipeline and
the plain re-statement of syncnet_python's loops from ``tests/metrics/test_lse.py`` (one window per
forward pass, one offset at a time); both must give the same numbers, and the speed-up is reported at
equal values.  SyncNet weights are random in the official layout (speed does not depend on them),
LPIPS runs the real AlexNet trunk when its weights are present and the seeded untrained trunk otherwise
(same cost), FID uses the real FID Inception weights.  CPU only, as before.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _pick(rows: list[dict], name: str) -> dict:
    for r in rows:
        if r["name"] == name and r["status"] == "ok":
            return r
    reasons = [f"{r['name']}: {r['reason']}" for r in rows if r["status"] != "ok"]
    raise SystemExit(f"{name} did not run ({'; '.join(reasons) or 'no result'})")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op and BLAS threads (default 1)")
    p.add_argument("--frames", type=int, default=50, help="frames of the LSE clip (25 fps)")
    p.add_argument("--fid-frames", type=int, default=32)
    p.add_argument("--lpips-frames", type=int, default=32)
    p.add_argument("--repeat", type=int, default=2, help="timed runs after a warm-up; the median is reported")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)

    from vastbench import bench as B

    threads = B.set_threads(args.threads)
    full = B.environment(["cpu"])
    env = {"torch": full["torch"], "threads": threads, "blas": full["blas_threads"], "device": "cpu",
           "cpu": full["host_cpu"], "cores": full["cores"], "python": full["python"],
           "load_avg": full["load_avg_start"]}
    print(f"torch {env['torch']}, {threads} torch thread(s), BLAS {env['blas']}, {env['cores']} cores "
          f"({env['cpu']}), python {env['python']}, load average {env['load_avg']}")

    rows = B.bench_lse(args.frames, "cpu", args.repeat)
    b, pl = _pick(rows, "lse batched"), _pick(rows, "lse plain loops")
    lse = {"frames_per_clip": args.frames, "windows": b["extra"]["windows"],
           "batched_s": b["wall_s"], "batched_clips_per_s": 1 / b["wall_s"], "batched_frames_per_s": b["fps"],
           "plain_s": pl["wall_s"], "plain_clips_per_s": 1 / pl["wall_s"], "plain_frames_per_s": pl["fps"],
           "speedup": pl["extra"]["speedup_of_batched"], "values_agree": pl["extra"]["values_agree"],
           "lse_d": b["extra"]["lse_d"], "lse_c": b["extra"]["lse_c"], "offset": b["extra"]["offset"]}
    print(f"LSE  {args.frames} frames ({lse['windows']} windows): batched {lse['batched_clips_per_s']:.3f} clips/s "
          f"({lse['batched_frames_per_s']:.1f} frames/s) | plain loops {lse['plain_clips_per_s']:.3f} clips/s "
          f"({lse['plain_frames_per_s']:.1f} frames/s) | speed-up {lse['speedup']:.2f}x, "
          f"values agree: {lse['values_agree']}")

    rows = B.guarded("metrics", "fid inception features", "cpu", "fp32",
                    lambda: B.bench_fid(args.fid_frames, "cpu", args.repeat))
    feats, dist = _pick(rows, "fid inception features"), _pick(rows, "fid frechet distance")
    fid = {"frames": args.fid_frames, "size": feats["size"], "load_s": feats["extra"]["load_s"],
           "frames_per_s": feats["fps"], "frechet_2048d_s": dist["wall_s"], "frechet_samples": args.fid_frames,
           "weights": feats["extra"]["weights"]}
    print(f"FID  Inception features ({fid['weights']} weights, {fid['size']}px -> 299): {fid['frames_per_s']:.2f} "
          f"frames/s; Fréchet distance (2048-d, {fid['frechet_samples']} samples): {fid['frechet_2048d_s']:.2f} s; "
          f"load {fid['load_s']:.2f} s")

    rows = B.bench_lpips(args.lpips_frames, "cpu", args.repeat)
    ok = [r for r in rows if r["status"] == "ok"][0]
    lp = {"frames": args.lpips_frames, "size": ok["size"], "variant": ok["name"], "frame_pairs_per_s": ok["fps"],
          "clips_per_s_at_100_frames": ok["fps"] / 100}
    print(f"LPIPS AlexNet ({lp['size']}px, {lp['variant']}): {lp['frame_pairs_per_s']:.1f} frame pairs/s "
          f"({lp['clips_per_s_at_100_frames']:.3f} clips/s at 100 frames)")
    out = {"env": env, "lse": lse, "fid": fid, "lpips": lp}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
