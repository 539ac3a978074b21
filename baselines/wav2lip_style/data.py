"""Training material in memory, and the two samplers (sync expert, generator).

All train clips are decoded once into one uint8 frame array (SynthTalk quick: 8,959
frames of 80 x 80 = 172 MB; a memory-mapped file when it would not fit in RAM)
plus one padded mel per clip; batches are index gathers from those arrays, so a
training step spends its time in the networks.

Sampling follows Wav2Lip's ``Dataset.__getitem__`` of ``color_syncnet_train.py``
and ``wav2lip_train.py``: a clip, then a random 5-frame window in it.

- expert: the audio is always the window's own; the video is the window itself
  (label 1) or another window of the same clip (label 0).  Training scores all
  pairs of several windows of one clip (:class:`ExpertSampler`), evaluation
  Wav2Lip's half-and-half pairs;
- generator: the window's frames are the target (lower half masked at the
  network's input) and the ground truth; a second random window of the same
  clip (Wav2Lip's "wrong window") gives the reference frames; every frame has
  its own mel window (``indiv_mels``) and the whole window the expert's one, plus
  the mouth boxes (from the clip's ``landmarks2d``) of the target frames, for the
  mouth-weighted L1 (``mouth_weight``; not in Wav2Lip).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from vastbench import media
from vastbench.errors import VastbenchError
from vastbench.trainstate import plain

from baselines.wav2lip_style import audio as A

log = logging.getLogger(__name__)
T_WIN = A.WINDOW_FRAMES


@dataclass
class TrainData:
    frames: np.ndarray                 # (N, H, W, 3) uint8, all clips concatenated
    offsets: np.ndarray                # (C + 1,) frame offset of each clip in ``frames``
    mels: list[np.ndarray]             # per clip: (4 T + 2 PAD, n_mels) padded normalized log-mel
    mouth_boxes: np.ndarray            # (N, 4) int: y0, y1, x0, x1 of the mouth (landmarks 48-67, padded)
    clip_ids: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def size(self) -> int:
        return int(self.frames.shape[1])


MOUTH = slice(48, 68)      # iBUG mouth landmarks (every clip's features carry landmarks2d, T x 68 x 2)
MOUTH_PAD = 0.06           # box padding, as a fraction of the frame height


def mouth_boxes(landmarks2d: np.ndarray, n_frames: int, size: int) -> np.ndarray:
    """(n_frames, 4) int boxes y0, y1, x0, x1 around the mouth landmarks (the last frame repeats if short)."""
    lm = np.asarray(landmarks2d, np.float64)[:, MOUTH]
    if len(lm) == 0:
        raise VastbenchError("mouth boxes: the clip's features have no landmarks")
    lm = lm[np.minimum(np.arange(n_frames), len(lm) - 1)]
    pad = MOUTH_PAD * size
    lo, hi = np.floor(lm.min(1) - pad), np.ceil(lm.max(1) + pad) + 1          # (T, 2) x, y each
    box = np.stack([lo[:, 1], hi[:, 1], lo[:, 0], hi[:, 0]], 1)
    return np.clip(box, 0, size).astype(np.int32)


def load_clip(clip, n_mels: int, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, padded mel) of one manifest clip; T = the video's frame count."""
    frames = media.read_video(clip.path("video"), with_audio=False).frames
    if size is not None and (frames.shape[1] != size or frames.shape[2] != size):
        raise VastbenchError(f"clip {clip.clip_id}: frames are {frames.shape[2]}x{frames.shape[1]} but this "
                             f"wav2lip_style config works at {size}x{size}; use the preset of that size "
                             f"(quick: 80, full: 256)")
    wav, sr = media.read_wav(clip.path("audio"))
    return frames, A.pad_mel(A.log_mel(wav, len(frames), n_mels, sr))


def load_train_data(clips: Sequence, n_mels: int, size: int, spill_dir: str | Path | None = None,
                    max_ram_gb: float = 8.0) -> TrainData:
    """Decode every clip long enough for one 5-frame window (shorter ones are skipped, as Wav2Lip does).

    Frames live in RAM, unless they would take more than ``max_ram_gb`` and ``spill_dir`` is given:
    then they are written once to ``spill_dir/frames.u8`` and memory-mapped (real data at 256 px:
    100k frames are 20 GB), and batches read them through the page cache.
    """
    clips = sorted(clips, key=lambda c: c.clip_id)
    budget = sum(int(c.n_frames) + 2 for c in clips)            # + slack: a decoder may give a frame more
    spill = spill_dir is not None and budget * size * size * 3 > max_ram_gb * 2 ** 30
    store = None
    if spill:
        path = Path(spill_dir) / "frames.u8"
        path.parent.mkdir(parents=True, exist_ok=True)
        store = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(budget, size, size, 3))
        log.info("wav2lip_style: %d frames of %d px exceed %.0f GB; memory-mapping them from %s", budget, size,
                 max_ram_gb, path)
    frames, mels, boxes, ids, skipped, n = [], [], [], [], [], 0
    for clip in clips:
        f, m = load_clip(clip, n_mels, size)
        if len(f) < T_WIN + 1:   # one window plus at least one other start for the negatives
            skipped.append(clip.clip_id)
            continue
        try:
            lm = np.load(clip.path("features"))["landmarks2d"]
        except (OSError, KeyError, ValueError) as exc:
            raise VastbenchError(f"clip {clip.clip_id}: cannot read landmarks2d from {clip.path('features')} "
                                 f"({type(exc).__name__}); rebuild the dataset's features") from None
        if store is not None:
            if n + len(f) > budget:
                raise VastbenchError(f"clip {clip.clip_id}: the video has more frames than the manifest's "
                                     f"n_frames ({clip.n_frames}); re-ingest the dataset")
            store[n:n + len(f)] = f
        else:
            frames.append(f)
        n += len(f)
        mels.append(m)
        boxes.append(mouth_boxes(lm, len(f), f.shape[1]))
        ids.append(clip.clip_id)
    if not ids:
        raise VastbenchError(f"wav2lip_style: none of the {len(clips)} training clips has {T_WIN + 1} frames or "
                             f"more; the train split is empty or its clips are too short")
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in boxes])])
    all_frames = store[:n] if store is not None else np.concatenate(frames)
    return TrainData(all_frames, offsets, mels, np.concatenate(boxes), ids,
                     meta={"skipped": skipped, "memory_mapped": bool(spill)})


class _Sampler:
    def __init__(self, data: TrainData, seed: int):
        self.data = data
        lengths = data.lengths.astype(float)
        self.p = lengths / lengths.sum()     # clips drawn by length: every window about equally likely
        self.rng = np.random.default_rng(seed)

    def _clips(self, n: int) -> np.ndarray:
        return self.rng.choice(len(self.p), size=n, p=self.p)

    def _starts(self, clips: np.ndarray) -> np.ndarray:
        return self.rng.integers(0, self.data.lengths[clips] - T_WIN + 1)

    def _other_starts(self, clips: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """A different window start in the same clip (uniform over the other starts)."""
        n_starts = self.data.lengths[clips] - T_WIN + 1
        other = self.rng.integers(0, n_starts - 1)
        return other + (other >= starts)

    def _window_frames(self, clips: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        idx = (self.data.offsets[clips] + starts)[:, None] + np.arange(T_WIN)[None]
        return torch.from_numpy(self.data.frames[idx]).permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, 5, 3, H, W)

    def _sync_mels(self, clips: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([A.windows(self.data.mels[c], A.sync_window_starts([s]))[0]
                                          for c, s in zip(clips, starts)]))

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": plain(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


class ExpertSampler(_Sampler):
    """Batches for the sync expert.

    ``batch``: ``batch_size / per_clip`` clips, ``per_clip`` distinct windows of each, every window with
    its own mel; the loss scores all ``per_clip x per_clip`` (video, audio) pairs of a clip -- the
    diagonal in sync, the rest off-sync windows of the same clip, Wav2Lip's negatives -- so one forward
    pass of ``batch_size`` windows gives ``per_clip`` times more pairs than Wav2Lip's one pair per window.
    ``pairs``: Wav2Lip's own sampling (half in sync, half another window of the clip), for evaluation.
    """

    def batch(self, batch_size: int, per_clip: int) -> dict[str, torch.Tensor]:
        if batch_size % per_clip:
            raise VastbenchError(f"expert batch {batch_size} is not a multiple of {per_clip} windows per clip")
        clips = self._clips(batch_size // per_clip)
        starts = np.concatenate([self.rng.choice(n, size=per_clip, replace=n < per_clip)
                                 for n in self.data.lengths[clips] - T_WIN + 1])
        clips = np.repeat(clips, per_clip)
        return {"faces": self._window_frames(clips, starts), "mel": self._sync_mels(clips, starts),
                "starts": torch.from_numpy(starts.reshape(-1, per_clip))}

    def pairs(self, batch_size: int) -> dict[str, torch.Tensor]:
        clips = self._clips(batch_size)
        starts = self._starts(clips)
        y = np.zeros(batch_size, np.float32)
        y[: batch_size // 2] = 1.0
        self.rng.shuffle(y)
        shown = np.where(y > 0, starts, self._other_starts(clips, starts))
        return {"faces": self._window_frames(clips, shown), "mel": self._sync_mels(clips, starts),
                "y": torch.from_numpy(y)}


class GeneratorSampler(_Sampler):
    """Batches for the generator: target / reference windows, per-frame and per-window mels, mouth masks."""

    def batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        clips = self._clips(batch_size)
        starts = self._starts(clips)
        refs = self._other_starts(clips, starts)
        frame_mels = np.stack([A.windows(self.data.mels[c], A.frame_window_starts(s + np.arange(T_WIN)))
                               for c, s in zip(clips, starts)])                        # (B, 5, n_mels, 20)
        return {"target": self._window_frames(clips, starts), "reference": self._window_frames(clips, refs),
                "frame_mel": torch.from_numpy(frame_mels), "sync_mel": self._sync_mels(clips, starts),
                "mouth": self._mouth_masks(clips, starts)}

    def _mouth_masks(self, clips: np.ndarray, starts: np.ndarray) -> torch.Tensor:
        """(B, 5, 1, H, W) float: 1 inside the mouth box of each frame of the windows."""
        idx = (self.data.offsets[clips] + starts)[:, None] + np.arange(T_WIN)[None]
        return torch.from_numpy(box_masks(self.data.mouth_boxes[idx], self.data.size)[:, :, None])


def box_masks(boxes: np.ndarray, size: int) -> np.ndarray:
    """(..., 4) boxes y0, y1, x0, x1 -> (..., size, size) float32 masks, 1 inside."""
    yy, xx = np.arange(size)[:, None], np.arange(size)[None, :]
    b = np.asarray(boxes)[..., None, None, :]
    m = (yy >= b[..., 0]) & (yy < b[..., 1]) & (xx >= b[..., 2]) & (xx < b[..., 3])
    return m.astype(np.float32)
