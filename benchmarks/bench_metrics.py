"""Throughput of the objective metrics on this machine: LSE, FID features, LPIPS.

    python benchmarks/bench_metrics.py [--threads 1] [--frames 50] [--json out.json]

LSE is timed twice on the same clip: the library's batched pipeline and the
plain re-statement of syncnet_python's loops from ``tests/metrics/test_lse.py``
(one window per forward pass, one offset at a time); both must give the same
numbers, and the speed-up is reported at equal values.  SyncNet weights are
random in the official layout (speed does not depend on them), LPIPS runs the
seeded untrained trunk (same cost as the real one), FID uses the real FID
Inception weights.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent


def _official_reference():
    """The plain loops of the LSE test file (not part of the library)."""
    spec = importlib.util.spec_from_file_location("_lse_reference", REPO / "tests" / "metrics" / "test_lse.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REPEAT = 2


def _timed(fn, repeat: int | None = None):
    fn()  # warm-up (allocator, first-call dispatch)
    best = float("inf")
    for _ in range(repeat or REPEAT):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _face_clip(T: int, size: int = 128, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    frames, landmarks = [], []
    for t in range(T):
        cx, cy = size / 2 + 4 * np.sin(t / 5), size / 2 + 3 * np.cos(t / 7)
        f = (60 + 40 * rng.random((size, size, 3)))
        f[((xx - cx) / (0.3 * size)) ** 2 + ((yy - cy) / (0.38 * size)) ** 2 < 1] = [200, 160, 140]
        opening = 1 + 6 * abs(np.sin(t * 0.6))
        f[((xx - cx) / (0.12 * size)) ** 2 + ((yy - cy - 0.16 * size) / opening) ** 2 < 1] = [60, 10, 20]
        frames.append(f.astype(np.uint8))
        ang = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        landmarks.append(np.stack([cx + 0.28 * size * np.cos(ang), cy + 0.36 * size * np.sin(ang)], 1))
    t = np.arange(640 * T) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 150 * t) * np.abs(np.sin(2 * np.pi * 2.4 * t))).astype(np.float32)
    return np.stack(frames), np.stack(landmarks), audio


def bench_lse(frames_per_clip: int) -> dict:
    from vastbench.metrics import lse as L
    from vastbench.metrics import syncnet as S

    ref = _official_reference()
    with tempfile.TemporaryDirectory() as tmp:
        model = S.load_syncnet(S.save_random_official_layout(Path(tmp) / "random.model", seed=0))
    frames, landmarks, audio = _face_clip(frames_per_clip)
    batched, t_batched = _timed(lambda: L.lse_result(frames, audio, landmarks=landmarks, model=model))

    def plain():
        crops = ref.official_crops(frames, L.boxes_from_landmarks(landmarks))
        return ref.official_lse(model, crops, L.int16_samples(audio))

    (d, c, off), t_plain = _timed(plain)
    agree = bool(np.allclose([batched.lse_d, batched.lse_c], [d, c], rtol=1e-4, atol=1e-4) and off == batched.offset)
    return {"frames_per_clip": frames_per_clip, "windows": batched.n_windows,
            "batched_s": t_batched, "batched_clips_per_s": 1 / t_batched, "batched_frames_per_s": frames_per_clip / t_batched,
            "plain_s": t_plain, "plain_clips_per_s": 1 / t_plain, "plain_frames_per_s": frames_per_clip / t_plain,
            "speedup": t_plain / t_batched, "values_agree": agree,
            "lse_d": batched.lse_d, "lse_c": batched.lse_c, "offset": batched.offset}


def bench_fid(n_frames: int, size: int = 256) -> dict:
    from vastbench.metrics import fid as FM

    t = time.perf_counter()
    model = FM.load_inception()
    t_load = time.perf_counter() - t
    frames = np.random.default_rng(0).integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
    feats, t_feat = _timed(lambda: FM.frame_features(frames, model))
    state = FM.new_statistics()
    FM.accumulate(state, feats)
    other = FM.new_statistics()
    FM.accumulate(other, feats[::-1] * 1.01)
    _, t_dist = _timed(lambda: FM.fid_from_statistics(state, other))
    path, source = FM.inception_weights()
    return {"frames": n_frames, "size": size, "load_s": t_load, "frames_per_s": n_frames / t_feat,
            "frechet_2048d_s": t_dist, "frechet_samples": n_frames, "weights": source}


def bench_lpips(n_frames: int, size: int = 256) -> dict:
    from vastbench.metrics import lpips_metric as LM

    model = LM.build_lpips(trained_backbone=False)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
    _, t = _timed(lambda: LM.lpips_frames(a, b, model))
    return {"frames": n_frames, "size": size, "frame_pairs_per_s": n_frames / t,
            "clips_per_s_at_100_frames": n_frames / t / 100}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--frames", type=int, default=50, help="frames of the LSE clip (25 fps)")
    p.add_argument("--fid-frames", type=int, default=32)
    p.add_argument("--lpips-frames", type=int, default=32)
    p.add_argument("--repeat", type=int, default=2, help="timed runs after a warm-up; the best is reported")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    global REPEAT
    REPEAT = args.repeat
    torch.set_num_threads(args.threads)
    try:  # LAPACK (the Fréchet distance's eigensolver) on the same number of threads
        import scipy.linalg  # noqa: F401  (threadpoolctl limits only libraries already loaded)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        blas = f"{args.threads} BLAS thread(s)"
    except ImportError:
        blas = "BLAS threads unset (no threadpoolctl)"
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas, "device": "cpu",
           "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "python": platform.python_version()}
    print(f"torch {env['torch']}, {env['threads']} torch thread(s), {blas}, {env['cores']} cores "
          f"({env['cpu']}), python {env['python']}")
    lse = bench_lse(args.frames)
    print(f"LSE  {lse['frames_per_clip']} frames ({lse['windows']} windows): batched {lse['batched_clips_per_s']:.3f} clips/s "
          f"({lse['batched_frames_per_s']:.1f} frames/s) | plain loops {lse['plain_clips_per_s']:.3f} clips/s "
          f"({lse['plain_frames_per_s']:.1f} frames/s) | speed-up {lse['speedup']:.2f}x, values agree: {lse['values_agree']}")
    fid = bench_fid(args.fid_frames)
    print(f"FID  Inception features ({fid['weights']} weights, {fid['size']}px -> 299): {fid['frames_per_s']:.2f} frames/s; "
          f"Fréchet distance (2048-d, {fid['frechet_samples']} samples): {fid['frechet_2048d_s']:.2f} s; load {fid['load_s']:.2f} s")
    lp = bench_lpips(args.lpips_frames)
    print(f"LPIPS AlexNet ({lp['size']}px): {lp['frame_pairs_per_s']:.1f} frame pairs/s "
          f"({lp['clips_per_s_at_100_frames']:.3f} clips/s at 100 frames)")
    out = {"env": env, "lse": lse, "fid": fid, "lpips": lp}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
