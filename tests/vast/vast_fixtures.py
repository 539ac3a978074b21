"""Helpers for the VAST tests: tiny synthetic clips (SynthTalk layout), tiny configs, random batches."""

from __future__ import annotations

import numpy as np
import torch

E, POSE, P = 11, 6, 40


def make_clip(rng: np.random.Generator, T: int, style: int, clip_id: str, identity: str = "id0") -> dict:
    """Phones drive the mouth (scaled by the style), the style sets brows and head-motion amplitude."""
    # Phone segments of 6-13 PPG frames (60-130 ms), silence (class 0) at both ends.
    phones = np.zeros(4 * T, dtype=int)
    t = 8
    while t < 4 * T - 8:
        n = int(rng.integers(6, 14))
        phones[t: min(t + n, 4 * T - 8)] = rng.integers(1, P)
        t += n
    ppg = np.full((4 * T, P), 0.02 / (P - 1), dtype=np.float32)
    ppg[np.arange(4 * T), phones] = 0.98
    openness = (phones.reshape(T, 4) % 5).mean(1) / 4.0                       # (T,) in [0, 1]
    amp = 0.5 + 0.5 * style
    expr = np.zeros((T, E), dtype=np.float32)
    expr[:, 0] = amp * openness
    expr[:, 1] = amp * (phones.reshape(T, 4) % 3 == 0).mean(1)
    expr[:, 2:6] = 0.2 * style * openness[:, None]
    expr[:, 6] = 0.3 * style + 0.05 * np.sin(np.arange(T) / 5.0)
    expr[:, 8:10] = (rng.random((T, 1)) < 0.05).astype(np.float32)
    expr += 0.01 * rng.standard_normal(expr.shape).astype(np.float32)
    pose = (0.05 * (1 + style) * np.sin(np.arange(T)[:, None] / (4.0 + np.arange(POSE)))).astype(np.float32)
    return {"clip_id": clip_id, "style": f"s{style}", "identity": identity, "expression": expr, "pose": pose,
            "ppg": ppg}


def make_clips(n: int, seed: int = 0, lengths: tuple[int, int] = (60, 90), styles: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [make_clip(rng, int(rng.integers(*lengths)), i % styles, f"c{i:03d}", f"id{i % 2}") for i in range(n)]


def tiny_config(**overrides):
    """A model small enough that a training step takes milliseconds."""
    from vastbench.vast.config import make_config

    base = dict(d_model=32, n_heads=2, style_layers=1, content_layers=1, style_dim=32, latent_dim=8, ar_hidden=32,
                flow_steps=3, batch_size=4, window_min=20, window_max=30, prompt_max=40, steps=40, lr_warmup=5,
                kl_warmup_steps=10, ss_start=5, ss_end=20, ckpt_every=20, eval_every=20, eval_batches=1, log_every=10)
    return make_config("quick", **{**base, **overrides})


def random_batch(cfg, B=3, T=(30, 22, 41), Tp=(25, 60, 33), seed=0) -> dict:
    """A padded batch with the layout of vastbench.vast.data.collate, random values."""
    from vastbench.vast.data import collate

    rng = np.random.default_rng(seed)
    k, D, P = cfg.ppg_per_frame, cfg.out_dim, cfg.ppg_dim

    def ppg(n):
        return np.asarray(torch.softmax(torch.from_numpy(rng.standard_normal((k * n, P)) * 3), -1), np.float32)

    return collate([{"x": rng.standard_normal((t, D)).astype(np.float32), "ppg": ppg(t),
                     "prompt": rng.standard_normal((tp, D)).astype(np.float32), "prompt_ppg": ppg(tp)}
                    for t, tp in zip(T[:B], Tp[:B])])
