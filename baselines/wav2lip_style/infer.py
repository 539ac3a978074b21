"""Inference: a reference video of the target + driving audio -> lip-synced frames.

As Wav2Lip's ``inference.py`` on a video: the reference video's frames supply
the head, pose and background; they are looped to the driving audio's length --
ping-pong (forward, backward, forward, ...), so the loop has no jump -- their
lower halves are masked, and each frame is generated from its 0.2 s mel window.
The reference input of every frame is the frame itself, as in Wav2Lip (training
gave the network a random other frame of the clip as reference, so the
reference's mouth says nothing about the audio).  With ``cfg.paste`` (``quick``)
only that box around the mouth of the generated frame is pasted into the looped
frame, as Wav2Lip pastes its generated face crop back into the full frame.
"""

from __future__ import annotations

import numpy as np
import torch

from vastbench import media
from vastbench.errors import VastbenchError

from baselines.wav2lip_style import audio as A
from baselines.wav2lip_style.model import Wav2LipGenerator


def ping_pong(n_source: int, n_out: int) -> np.ndarray:
    """Indices 0, 1, .., n-1, n-2, .., 1, 0, 1, .. of length ``n_out`` (a source of one frame repeats it)."""
    if n_source < 1:
        raise VastbenchError("the reference video has no frames")
    if n_source == 1:
        return np.zeros(n_out, dtype=np.int64)
    period = 2 * n_source - 2
    k = np.arange(n_out) % period
    return np.where(k < n_source, k, period - k)


PASTE_FEATHER = 3   # pixels over which the pasted box fades into the frame


def paste_mask(cfg) -> torch.Tensor:
    """(1, 1, H, W) weights of the generated frame: 1 inside ``cfg.paste``, fading to 0 over its edge."""
    s = cfg.size
    y0, y1, x0, x1 = (f * s for f in cfg.paste)
    r = torch.arange(s, dtype=torch.float32) + 0.5

    def ramp(lo: float, hi: float) -> torch.Tensor:
        return ((r - lo) / PASTE_FEATHER).clamp(0, 1) * ((hi - r) / PASTE_FEATHER).clamp(0, 1)

    return (ramp(y0, y1)[:, None] * ramp(x0, x1)[None, :])[None, None]


@torch.no_grad()
def lipsync_frames(model: Wav2LipGenerator, reference: np.ndarray, audio: np.ndarray,
                   sample_rate: int = media.SAMPLE_RATE, n_frames: int | None = None, chunk: int = 64) -> np.ndarray:
    """(n_frames, H, W, 3) uint8: ``reference`` (T, H, W, 3) uint8 frames looped and lip-synced to ``audio``.

    ``n_frames`` defaults to the audio's length at 25 fps (``controls.n_frames_for``).  Frames are
    generated independently (in chunks of ``chunk``), so the result does not depend on ``chunk``.
    """
    from vastbench.controls.controls import n_frames_for

    reference = np.asarray(reference)
    size = model.cfg.size
    if reference.ndim != 4 or reference.shape[1:] != (size, size, 3) or reference.dtype != np.uint8:
        raise VastbenchError(f"wav2lip_style: the reference video must be (T, {size}, {size}, 3) uint8 frames, got "
                             f"{reference.shape} {reference.dtype}; use the dataset profile of the model's size")
    n = n_frames_for(audio, sample_rate) if n_frames is None else int(n_frames)
    looped = reference[ping_pong(len(reference), n)]
    mels = A.frame_windows(audio, n, model.cfg.n_mels)                         # (n, n_mels, 20)
    p = next(model.parameters())
    alpha = paste_mask(model.cfg).to(p.device, p.dtype) if model.cfg.paste else None
    model.eval()
    out = []
    for s in range(0, n, chunk):
        f = torch.from_numpy(looped[s:s + chunk]).permute(0, 3, 1, 2).to(p.device, p.dtype).div_(255.0)
        y = model(Wav2LipGenerator.inputs(f, f), torch.from_numpy(mels[s:s + chunk]).to(p.device, p.dtype))
        if alpha is not None:   # the frame itself outside the box (it is its own reference: exact there)
            y = alpha * y + (1 - alpha) * f
        out.append((y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out)
