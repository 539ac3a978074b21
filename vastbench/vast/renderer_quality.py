"""How well a trained renderer reproduces held-out frames of its target.

Each held-out clip (the target's ``test`` split) is rendered from its own
ground-truth expressions and pose (mesh images) and its audio (PPG), and the
output is compared with the clip's real frames:

* ``psnr`` (dB) and ``ssim`` (scikit-image, RGB, data range 255) per frame,
  averaged over all frames;
* ``mouth_l1``: mean absolute error in grey levels (0-255) inside the
  dilated outer-lip polygon of each frame (``conditioning.mouth_masks``);
* ``face_psnr``: PSNR inside the erased region (what the renderer draws;
  outside it the background is given);
* ``flicker``: mean over pixels and frames of
  ``|(out[t+1] - out[t]) - (gt[t+1] - gt[t])|`` in grey levels -- temporal
  change the ground truth does not have (0 for a perfect copy; a static
  output scores the ground truth's own motion);
* ``psnr_background``: PSNR of the eroded background itself, the floor that
  a renderer which drew nothing would get.

Per-clip values are kept (``per_clip``) so that confidence intervals are
possible.  ``grid`` is a PNG: rows ground truth / mesh image / output.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vastbench.vast.conditioning import MeshRasterizer, SynthTalkRasterizer
from vastbench.vast.renderer_train import (RendererClip, default_recognizer, load_clip, load_state,
                                           render_sequence, renderer_from_state, write_grid)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of uint8 images (..., H, W, 3), over ``mask`` (..., H, W) pixels when given."""
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = err[mask].mean() if mask is not None else err.mean()
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over frames (T, H, W, 3) uint8."""
    from skimage.metrics import structural_similarity

    return float(np.mean([structural_similarity(x, y, channel_axis=-1, data_range=255) for x, y in zip(a, b)]))


def flicker(out: np.ndarray, gt: np.ndarray) -> float:
    """Mean |frame difference of the output - frame difference of the ground truth|, grey levels."""
    if len(out) < 2:
        return 0.0
    d_out = np.diff(out.astype(np.float64), axis=0)
    d_gt = np.diff(gt.astype(np.float64), axis=0)
    return float(np.abs(d_out - d_gt).mean())


def mouth_l1(out: np.ndarray, gt: np.ndarray, mouth: np.ndarray) -> float:
    err = np.abs(out.astype(np.float64) - gt.astype(np.float64)).mean(-1)  # (T, H, W)
    return float(err[mouth].mean()) if mouth.any() else float("nan")


def clip_scores(out: np.ndarray, clip: RendererClip, background: np.ndarray, erase: np.ndarray | None) -> dict[str, float]:
    gt = clip.frames
    per_frame_psnr = [psnr(o, g) for o, g in zip(out, gt)]
    scores = {"psnr": float(np.mean(per_frame_psnr)), "ssim": ssim(out, gt), "mouth_l1": mouth_l1(out, gt, clip.mouth),
              "flicker": flicker(out, gt),
              "psnr_background": float(np.mean([psnr(background, g) for g in gt]))}
    if erase is not None:
        region = np.broadcast_to(erase, gt.shape[:3])
        scores["face_psnr"] = psnr(out, gt, region)
    return scores


def evaluate_renderer(renderer_path: str | Path, clips: Sequence, out_dir: str | Path | None = None,
                      rasterizer: MeshRasterizer | None = None, recognizer: Any = "default",
                      device: str = "cpu", grid_frames: int = 8) -> dict[str, Any]:
    """Scores of a renderer on held-out clips of its target (module doc); writes ``out_dir/grid.png``.

    ``clips``: manifest clips of the target (its ``test`` split).  ``rasterizer``: defaults to the
    SynthTalk identity of the clips.  Returns means over clips (each clip weighted by its frames) plus
    ``per_clip``, ``n_clips``, ``n_frames``, ``render_fps`` and ``grid`` (path or None).
    """
    state = load_state(renderer_path)
    model, background = renderer_from_state(state, device, renderer_path)
    erase = state["erase"].numpy() if state.get("erase") is not None else None
    clips = sorted(clips, key=lambda c: c.clip_id)
    if rasterizer is None:
        rasterizer = SynthTalkRasterizer(clips[0].identity, model.cfg.size)
    if recognizer == "default":
        recognizer, source = default_recognizer()
    else:
        source = "phones" if recognizer is None else "given"
    per_clip, weights, render_s, grid_rows = [], [], 0.0, None
    for clip in clips:
        data = load_clip(clip, rasterizer, recognizer)
        t0 = time.perf_counter()
        out = render_sequence(model, background, data.mesh_images, data.ppg if model.cfg.use_ppg else None)
        render_s += time.perf_counter() - t0
        per_clip.append({"clip_id": clip.clip_id, "n_frames": len(data), **clip_scores(out, data, background, erase)})
        weights.append(len(data))
        if grid_rows is None:
            show = np.linspace(0, len(data) - 1, min(grid_frames, len(data))).round().astype(int)
            grid_rows = [("ground truth", data.frames[show]), ("mesh image", data.mesh_images[show]),
                         ("output", out[show])]
    w = np.asarray(weights, float)
    keys = [k for k in per_clip[0] if k not in ("clip_id", "n_frames")]
    result: dict[str, Any] = {k: float(np.average([c[k] for c in per_clip], weights=w)) for k in keys}
    result.update(n_clips=len(per_clip), n_frames=int(w.sum()), render_fps=float(w.sum() / max(render_s, 1e-9)),
                  ppg_source=source, per_clip=per_clip, grid=None)
    if out_dir is not None and grid_rows is not None:
        result["grid"] = str(write_grid(Path(out_dir) / "grid.png", grid_rows))
    return result
