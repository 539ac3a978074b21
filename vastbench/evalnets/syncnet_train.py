"""The frozen SynthTalk SyncNet: a seeded recipe that trains syncnet_python's network on SynthTalk.

    python -m vastbench.evalnets.syncnet_train train [--out PATH] [--steps N]
    python -m vastbench.evalnets.syncnet_train evaluate [--weights PATH]
    vastbench assets train syncnet

Without the official ``syncnet_v2.model`` (a download we cannot make offline),
LSE-D/LSE-C run on this network: the same :class:`SyncNetModel` (official key
layout), trained on the ground truth of the SynthTalk ``quick`` dataset (seed 0,
``train`` split; ``val`` picks the checkpoint), and shipped as
``vastbench/weights/syncnet_synthtalk_v1.pt`` (asset ``syncnet-synthtalk``).

Inputs are made by :mod:`vastbench.metrics.lse`'s own functions, so the network
sees at training what it sees at evaluation: official-geometry face crops from
landmarks (ground-truth landmarks here; the face capture's at evaluation) *and*
centred crops (LSE's ``no_face="centre"``, used when no landmarks are at hand),
in BGR 0-255, five frames per window; MFCC 13 x 20 windows of the int16 audio,
from the mp4's AAC track (what LSE reads from a clip) or the original wav.
Crops are cached at their native size (the 80 px frames give crops of 40-80 px)
and resized to 224 x 224 by the same ``cv2.resize`` call when a batch is drawn;
:func:`upsample` is tested to give byte-identical crops to ``lse.face_crops``.

What is trained.  On one CPU thread a full forward and backward pass of the
lip tower costs about 85 ms per window (bf16), 80 % of it in the first two
convolutions on 224 x 224 inputs, and the lip tower learnt too slowly at that
price (it had not begun to read the mouth after 60 steps of 32 windows).  So
the lip tower's *stem* (its first two convolution blocks, ``netcnnlip[:8]``)
stays at its seeded random initialisation — random features, with batch-norm
statistics calibrated on training windows — and its output (256 x 13 x 13 per
window) is computed once for every second window position of every training
clip and crop kind.  The rest of the lip tower, both fully connected heads and
the whole audio tower are trained.  The shipped network is still a complete
syncnet_python SyncNet; evaluation runs it end to end in float32.

Batches.  A step takes ``clips_per_batch`` clips, a run of ``windows_per_clip``
cached video windows in each (every ``video_stride``-th window position), and
``audio_per_clip`` audio windows per clip: the run's own (positives) and
others within ``vshift`` (15) windows of it.  Every video-audio pair of the
batch is a training pair: same clip and time is positive; the same clip shifted
and every window of the other clips are negatives, so the shifts LSE searches
over are the negatives it is trained to push away.

Loss: the contrastive loss of the original SyncNet paper (Chung & Zisserman,
2016), ``y d^2 + (1 - y) max(margin - d, 0)^2`` on the Euclidean distance
``d``, the positive term and the two negative terms (shifted, other clip)
averaged separately.  Chosen over Wav2Lip's cosine BCE because LSE-D and LSE-C
*are* Euclidean distances of the raw 1024-d embeddings (``pairwise_distance``
in ``SyncNetInstance.evaluate``): this loss shapes the very quantity that is
reported, while cosine BCE would leave its scale and the embedding norms
unconstrained.  The margin (14) puts the out-of-sync distance on the scale of
the official network's (median distance about 14.5 on LRS2, from Wav2Lip's
LSE-D 6.7 + LSE-C 7.8); the numbers are still not comparable to published ones.

Warm start.  Trained from scratch on the contrastive loss alone, both towers
first collapse to near-constant embeddings (every distance near margin / 2)
and stayed there for all 120 steps we could afford to watch.  So for the first
``aux_only_until`` of the steps the towers learn to read the five frames'
mouth articulation (SynthTalk's ground-truth jaw_open, lip_round, lip_stretch
and lip_press weights) through two linear probes — the lip tower from pixels,
the audio tower from MFCC — and the contrastive loss then starts from
embeddings that already carry what lip sync is about.  The probe loss fades
to zero at ``aux_until``; the probes are training scaffolding, never shipped.

Cost and resuming.  bf16 autocast for the training passes (weights and
optimizer float32); learning rate 1e-4 (1e-3 fitted no faster and left the
batch-norm running statistics far from the batch statistics).  The default
recipe fits the ~45 minute budget on one thread (``docs/metrics.md`` has the
measured numbers).  Checkpoints every ``checkpoint_every`` steps, and the stem
features once, go to ``$VASTBENCH_CACHE/train/syncnet-<config hash>``; a killed
run resumes there and ends bit-identical to an uninterrupted one (each step's
batch is drawn from ``(seed, step)``; the learning rate is a function of the
step).  Bit-identical weights need the same torch version, thread count and
device; the pinned sha256 was made with one thread on the CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vastbench import media
from vastbench.errors import VastbenchError
from vastbench.features.mfcc import SAMPLES_PER_VIDEO_FRAME, mfcc_for_video
from vastbench.metrics import lse as L
from vastbench.metrics.syncnet import EMBED_DIM, IMAGE_SIZE, WINDOW_FRAMES, SyncNetModel, load_syncnet
from vastbench.trainstate import save_state

log = logging.getLogger(__name__)

ASSET_NAME = "syncnet-synthtalk"
FILENAME = "syncnet_synthtalk_v1.pt"
CROP_KINDS = ("landmarks", "centre")
AUDIO_SOURCES = ("clip", "wav")
EVAL_SHIFTS = tuple(range(-5, 6))
# Speech articulators among SynthTalk's blendshapes (jaw_open, lip_round, lip_stretch, lip_press): the
# warm-start targets.  Smiles, brows and blinks carry style, not timing, and are left out.
MOUTH_CHANNELS = (0, 1, 2, 5)
CONTROL_SHIFT = 8   # the `shifted_audio` control's default delay, in frames


@dataclass(frozen=True)
class SyncTrainConfig:
    seed: int = 0
    steps: int = 1000
    clips_per_batch: int = 4
    windows_per_clip: int = 16        # cached video windows per clip: a batch has 64
    video_stride: int = 2             # stem features cached for every second window position
    vshift: int = L.VSHIFT            # audio windows come from this far around the run ...
    audio_per_clip: int = 24          # ... this many per clip: the run's own (positives) and shifted ones
    margin: float = 14.0
    lr: float = 1e-4
    warmup: int = 20
    weight_decay: float = 1e-4
    bf16: bool = True                 # autocast the training passes (CPU bf16); master weights stay float32
    crop_kinds: tuple[str, ...] = CROP_KINDS
    audio_sources: tuple[str, ...] = AUDIO_SOURCES
    calib_windows: int = 256          # training windows (per crop kind) that set the stem's batch-norm statistics
    aux_weight: float = 1.0           # warm start: mouth articulation read out of both embeddings (docstring)
    aux_only_until: float = 0.15      # before this fraction of `steps`, the warm-start loss alone
    aux_until: float = 0.6            # ... then fading linearly to zero at this fraction
    val_at: tuple[float, ...] = (0.6, 0.8, 1.0)   # fractions of `steps` where val picks the checkpoint
    checkpoint_every: int = 50

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def val_steps(self) -> list[int]:
        return sorted({max(1, min(self.steps, round(f * self.steps))) for f in self.val_at} | {self.steps})


# --------------------------------------------------------------------------- data
@dataclass
class SyncClip:
    """One clip ready for training and validation: native-size crops and MFCC windows."""

    clip_id: str
    min_length: int                               # frames with audio under them (LSE's min_length)
    crops: dict[str, list[np.ndarray]]            # kind -> per-frame crops before the 224 x 224 resize
    audio: dict[str, np.ndarray]                  # source -> float audio in [-1, 1] at 16 kHz
    mfcc: dict[str, torch.Tensor] = field(default_factory=dict)  # source -> (n_windows, 1, 13, 20)
    mouth: np.ndarray | None = None               # (min_length, 4) ground-truth articulator weights (MOUTH_CHANNELS)
    stem: dict[str, torch.Tensor] = field(default_factory=dict)  # kind -> (positions, 256, 1, 13, 13) float16

    @property
    def n_windows(self) -> int:
        return self.min_length - WINDOW_FRAMES    # the official `lastframe = min_length - 5`


def native_crops(frames: np.ndarray, landmarks: np.ndarray | None) -> list[np.ndarray]:
    """Per-frame crops as ``lse.face_crops`` cuts them, before its resize to 224 x 224.

    Cached at this size (a few kB per frame instead of 150 kB); :func:`upsample`
    finishes them with the same ``cv2.resize`` call, byte for byte."""
    if landmarks is None:  # face_crops' no_face="centre" branch: the largest centred square
        h, w = frames.shape[1:3]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return [np.ascontiguousarray(f[top:top + side, left:left + side]) for f in frames]
    boxes = L._fill_missing(L.boxes_from_landmarks(landmarks))
    if boxes is None:
        raise VastbenchError("no landmarks in any frame of this clip; cannot cut face crops")
    geo = L.official_crop_geometry(boxes, L.CROP_SCALE)
    return [L._crop_one(f, s, x, y, L.CROP_SCALE) for f, (s, x, y) in zip(frames, geo)]


def upsample(crops: Sequence[np.ndarray], size: int = IMAGE_SIZE) -> np.ndarray:
    """Native crops -> (T, size, size, 3) uint8 RGB, identical to ``lse.face_crops``'s output."""
    import cv2

    return np.stack([cv2.resize(c, (size, size)) for c in crops])


def clip_mfcc_windows(audio: np.ndarray, min_length: int) -> torch.Tensor:
    """(n_windows, 1, 13, 20) MFCC windows of a clip's audio, as ``lse.lse_result`` makes them."""
    pcm = L.int16_samples(audio)
    mfcc = mfcc_for_video(pcm[: min_length * SAMPLES_PER_VIDEO_FRAME], min_length)
    return L.mfcc_windows(mfcc, min_length - WINDOW_FRAMES)


def prepare_clip(clip, kinds: Sequence[str] = CROP_KINDS, sources: Sequence[str] = AUDIO_SOURCES,
                 landmarks: np.ndarray | None = None) -> SyncClip:
    """Read a SynthTalk clip (video, its AAC track, the wav, ground-truth landmarks) into a :class:`SyncClip`."""
    video = media.read_video(clip.path("video"), require_audio=True)
    audio = {"clip": video.audio}
    if "wav" in sources:
        audio["wav"], _ = media.read_wav(clip.path("audio"))
    min_length = min(video.n_frames, len(L.int16_samples(video.audio)) // SAMPLES_PER_VIDEO_FRAME)
    if min_length - WINDOW_FRAMES < 1:
        raise VastbenchError(f"{clip.path('video')}: {min_length} frames with audio, too short for SyncNet windows")
    feats = np.load(clip.path("features"))
    if landmarks is None and "landmarks" in kinds:
        landmarks = feats["landmarks2d"]
    frames = video.frames[:min_length]
    crops = {k: native_crops(frames, None if k == "centre" else landmarks[:min_length]) for k in kinds}
    sc = SyncClip(clip.clip_id, min_length, crops, {s: audio[s] for s in sources})
    sc.mfcc = {s: clip_mfcc_windows(a, min_length) for s, a in sc.audio.items()}
    sc.mouth = np.asarray(feats["expression"][:min_length][:, list(MOUTH_CHANNELS)], np.float32)
    return sc


def prepare_clips(clips: Iterable, cfg: SyncTrainConfig, progress=None) -> list[SyncClip]:
    clips = list(clips)
    it = progress.track(clips, "SyncNet crops and MFCC", total=len(clips)) if progress is not None else clips
    return [prepare_clip(c, cfg.crop_kinds, cfg.audio_sources) for c in it]


def lip_windows(crops_rgb: np.ndarray) -> torch.Tensor:
    """(T, 224, 224, 3) uint8 RGB crops -> (T - 4, 3, 5, 224, 224) BGR 0-255 windows, as ``lse.embed`` feeds them."""
    clip = torch.from_numpy(np.ascontiguousarray(crops_rgb[..., ::-1])).float().permute(3, 0, 1, 2)  # (3, T, H, W)
    return clip.unfold(1, WINDOW_FRAMES, 1).permute(1, 0, 4, 2, 3).contiguous()


# --------------------------------------------------------------------------- the frozen stem
STEM_LAYERS = 8   # netcnnlip[:8]: conv-BN-ReLU-pool, conv-BN-ReLU-pool (module docstring, "What is trained")


def stem_of(model: SyncNetModel) -> nn.Sequential:
    return model.netcnnlip[:STEM_LAYERS]


def head_lip(model: SyncNetModel, stem_out: torch.Tensor) -> torch.Tensor:
    """(B, 256, 1, 13, 13) stem features -> (B, D): the rest of ``forward_lip``."""
    return model.netfclip(model.netcnnlip[STEM_LAYERS:](stem_out).flatten(1))


def trainable_parameters(model: SyncNetModel) -> list[nn.Parameter]:
    stem = {id(p) for p in stem_of(model).parameters()}
    return [p for p in model.parameters() if id(p) not in stem]


def _positions(c: SyncClip, stride: int) -> np.ndarray:
    return np.arange(0, c.n_windows, stride)


def _stem_windows(c: SyncClip, kind: str, positions: Sequence[int]) -> Iterable[torch.Tensor]:
    """Lip windows of ``positions`` in chunks of at most 16 (built as ``lse.embed`` builds them)."""
    positions = list(positions)
    for s in range(0, len(positions), 16):
        chunk = positions[s:s + 16]
        lo, hi = chunk[0], chunk[-1]
        windows = lip_windows(upsample(c.crops[kind][lo:hi + WINDOW_FRAMES]))   # (hi - lo + 1, 3, 5, H, W)
        yield windows[[p - lo for p in chunk]]


@torch.no_grad()
def calibrate_stem(model: SyncNetModel, clips: Sequence[SyncClip], cfg: SyncTrainConfig) -> None:
    """Set the stem's batch-norm statistics to the cumulative mean and variance over training windows."""
    rng = np.random.default_rng([cfg.seed, 101])
    stem = stem_of(model)
    bns = [m for m in stem if isinstance(m, nn.BatchNorm3d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all calibration batches
    stem.train()
    per_clip = 8
    picks = rng.choice(len(clips), max(1, min(len(clips), cfg.calib_windows // per_clip)), replace=False)
    for kind in cfg.crop_kinds:
        for ci in picks:
            c = clips[int(ci)]
            pos = np.sort(rng.choice(c.n_windows, min(per_clip, c.n_windows), replace=False))
            for w in _stem_windows(c, kind, pos):
                stem(w)
    for bn in bns:
        bn.momentum = 0.1
    stem.eval()
    for p in stem.parameters():
        p.requires_grad_(False)


@torch.no_grad()
def cache_stem(model: SyncNetModel, clips: Sequence[SyncClip], cfg: SyncTrainConfig, progress=None) -> None:
    """Stem features of every ``video_stride``-th window of every clip and crop kind, into ``clip.stem``."""
    stem = stem_of(model).eval()
    todo = [(c, k) for c in clips for k in cfg.crop_kinds]
    it = progress.track(todo, "SyncNet stem features", total=len(todo)) if progress is not None else todo
    for c, kind in it:
        parts = []
        for w in _stem_windows(c, kind, _positions(c, cfg.video_stride)):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                out = stem(w)
            parts.append(out.float().half())
        c.stem[kind] = torch.cat(parts)


# --------------------------------------------------------------------------- batches
@dataclass
class Batch:
    video: torch.Tensor       # (B, 256, 1, 13, 13) stem features
    audio: torch.Tensor       # (Na, 1, 13, 20)
    v_clip: torch.Tensor      # (B,) clip index of each video window
    v_pos: torch.Tensor       # (B,) window index within its clip
    a_clip: torch.Tensor      # (Na,)
    a_pos: torch.Tensor       # (Na,)
    v_mouth: torch.Tensor     # (B, 4 * 5) articulator weights of each window's five frames
    a_mouth: torch.Tensor     # (Na, 4 * 5)


def sample_batch(clips: Sequence[SyncClip], cfg: SyncTrainConfig, step: int) -> Batch:
    """The batch of ``step``: a function of ``(seed, step)`` only, so resumed runs draw the same batches."""
    rng = np.random.default_rng([cfg.seed, step])
    r = cfg.windows_per_clip
    usable = [i for i, c in enumerate(clips) if len(_positions(c, cfg.video_stride)) >= r]
    if len(usable) < cfg.clips_per_batch:
        raise VastbenchError(f"need {cfg.clips_per_batch} clips with at least {r} cached SyncNet windows, "
                             f"have {len(usable)}")
    video, audio, vc, vp, ac, ap, vm, am = [], [], [], [], [], [], [], []
    for ci in rng.choice(usable, cfg.clips_per_batch, replace=False):
        c = clips[int(ci)]
        n_cached = len(_positions(c, cfg.video_stride))
        k0 = int(rng.integers(0, n_cached - r + 1))
        kind = cfg.crop_kinds[int(rng.integers(len(cfg.crop_kinds)))]
        source = cfg.audio_sources[int(rng.integers(len(cfg.audio_sources)))]
        vpos = np.arange(k0, k0 + r) * cfg.video_stride
        video.append(c.stem[kind][k0:k0 + r])
        a0, a1 = max(0, int(vpos[0]) - cfg.vshift), min(c.n_windows, int(vpos[-1]) + cfg.vshift + 1)
        shifted = np.setdiff1d(np.arange(a0, a1), vpos)
        extra = rng.choice(shifted, min(len(shifted), max(0, cfg.audio_per_clip - r)), replace=False)
        apos = np.sort(np.concatenate([vpos, extra])).astype(np.int64)
        audio.append(c.mfcc[source][torch.from_numpy(apos)])
        # Window i covers video frames i..i+4 and MFCC frames 4i..4i+19: the same five frames' mouth.
        mouth = np.lib.stride_tricks.sliding_window_view(c.mouth, WINDOW_FRAMES, axis=0)  # (T - 4, 4, 5)
        vm.append(mouth[vpos].reshape(r, -1))
        am.append(mouth[apos].reshape(len(apos), -1))
        vc += [int(ci)] * r
        vp += vpos.tolist()
        ac += [int(ci)] * len(apos)
        ap += apos.tolist()
    t = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
    f = lambda v: torch.from_numpy(np.concatenate(v)).float()  # noqa: E731
    return Batch(torch.cat(video), torch.cat(audio), t(vc), t(vp), t(ac), t(ap), f(vm), f(am))


# --------------------------------------------------------------------------- loss and step
def contrastive_loss(v: torch.Tensor, a: torch.Tensor, batch: Batch, margin: float) -> tuple[torch.Tensor, dict]:
    """The SyncNet paper's contrastive loss over every video-audio pair of the batch (module docstring)."""
    sq = (v.float()[:, None, :] - a.float()[None, :, :]).pow(2).sum(-1)    # (B, Na) squared distances
    d = sq.clamp_min(1e-12).sqrt()
    same = batch.v_clip[:, None] == batch.a_clip[None, :]
    pos = same & (batch.v_pos[:, None] == batch.a_pos[None, :])
    hinge = F.relu(margin - d).pow(2)
    terms = {"pos": sq[pos].mean(), "shifted": hinge[same & ~pos].mean()}
    other = ~same
    terms["other"] = hinge[other].mean() if other.any() else torch.zeros(())
    loss = terms["pos"] + 0.5 * (terms["shifted"] + terms["other"])
    with torch.no_grad():
        stats = {k: float(x) for k, x in terms.items()}
        stats["d_pos"] = float(d[pos].mean())
        stats["d_shifted"] = float(d[same & ~pos].mean())
        stats["d_other"] = float(d[other].mean()) if other.any() else float("nan")
    return loss, stats


class MouthProbes(nn.Module):
    """Linear read-outs of the five frames' articulator weights from each tower's embedding.

    Training-only scaffolding for the warm start (module docstring): never shipped."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, embed_dim: int = EMBED_DIM):
        super().__init__()
        n = len(MOUTH_CHANNELS) * WINDOW_FRAMES
        self.lip, self.aud = nn.Linear(embed_dim, n), nn.Linear(embed_dim, n)
        # Targets are (channel, frame) flattened: channel-major, five frames each.
        self.register_buffer("mean", torch.as_tensor(np.repeat(mean, WINDOW_FRAMES), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.repeat(std, WINDOW_FRAMES), dtype=torch.float32))

    def loss(self, v: torch.Tensor, a: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardized MSE of the lip and the audio read-out."""
        zv, za = (batch.v_mouth - self.mean) / self.std, (batch.a_mouth - self.mean) / self.std
        return F.mse_loss(self.lip(v.float()), zv), F.mse_loss(self.aud(a.float()), za)


def mouth_stats(clips: Sequence[SyncClip]) -> tuple[np.ndarray, np.ndarray]:
    allm = np.concatenate([c.mouth for c in clips])
    return allm.mean(0), np.maximum(allm.std(0), 1e-3)


def make_probes(clips: Sequence[SyncClip], cfg: SyncTrainConfig) -> MouthProbes | None:
    if cfg.aux_weight <= 0:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed + 1)
        return MouthProbes(*mouth_stats(clips))


def aux_weight(cfg: SyncTrainConfig, step: int) -> float:
    """Full weight until ``aux_only_until``, then linearly down to zero at ``aux_until``."""
    a, b = cfg.aux_only_until * cfg.steps, cfg.aux_until * cfg.steps
    if step < a:
        return cfg.aux_weight
    return cfg.aux_weight * max(0.0, 1.0 - (step - a) / (b - a)) if b > a else 0.0


def batch_loss(model: SyncNetModel, probes: MouthProbes | None, batch: Batch, cfg: SyncTrainConfig,
               step: int) -> tuple[torch.Tensor, dict]:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        v = head_lip(model, batch.video.float())
        a = model.forward_aud(batch.audio)
    loss, stats = contrastive_loss(v, a, batch, cfg.margin)
    loss = loss / cfg.margin ** 2      # O(1), like the probes' standardized MSE
    if step < cfg.aux_only_until * cfg.steps:
        loss = loss * 0.0
    lam = aux_weight(cfg, step) if probes is not None else 0.0
    if lam > 0:
        aux_lip, aux_aud = probes.loss(v, a, batch)
        stats["aux_lip"], stats["aux_aud"] = float(aux_lip.detach()), float(aux_aud.detach())
        loss = loss + lam * (aux_lip + aux_aud)
    return loss, stats


def learning_rate(cfg: SyncTrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to zero: a function of the step, so nothing to checkpoint."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(1.0, t)))


def make_optimizer(model: SyncNetModel, probes: MouthProbes | None, cfg: SyncTrainConfig) -> torch.optim.Optimizer:
    params = trainable_parameters(model) + (list(probes.parameters()) if probes is not None else [])
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_step(model: SyncNetModel, probes: MouthProbes | None, opt: torch.optim.Optimizer, batch: Batch,
               cfg: SyncTrainConfig, step: int) -> dict:
    model.train()
    stem_of(model).eval()  # frozen: its statistics stay the calibrated ones
    for g in opt.param_groups:
        g["lr"] = learning_rate(cfg, step)
    loss, stats = batch_loss(model, probes, batch, cfg, step)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss": float(loss.detach()), **stats}


def init_model(seed: int) -> SyncNetModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SyncNetModel()


# --------------------------------------------------------------------------- evaluation
@dataclass
class EvalItem:
    """One clip as LSE sees it: its 224 x 224 crops (one crop kind) and its audio track."""

    clip_id: str
    kind: str
    crops_rgb: np.ndarray     # (min_length, 224, 224, 3) uint8
    audio: np.ndarray         # float audio in [-1, 1], 16 kHz


@torch.no_grad()
def shift_results(model: SyncNetModel, item: EvalItem, shifts: Iterable[int]) -> dict[int, L.LSEResult]:
    """LSE of one clip with its audio delayed by ``k`` frames (``controls.shift_audio``), for each ``k``.

    The same computation as ``lse.lse_result(frames, shift_audio(audio, k), ...)``
    (tested), with the lip tower run once for all shifts: only the audio changes."""
    from vastbench.controls.controls import shift_audio

    model.eval()
    min_length = len(item.crops_rgb)
    n_windows = min_length - WINDOW_FRAMES
    mfcc0 = mfcc_for_video(L.int16_samples(item.audio)[: min_length * SAMPLES_PER_VIDEO_FRAME], min_length)
    im_feat, _ = L.embed(model, item.crops_rgb, mfcc0, n_windows)
    device = next(model.parameters()).device
    out = {}
    for k in shifts:
        cc = model.forward_aud(clip_mfcc_windows(shift_audio(item.audio, k), min_length).to(device)).cpu()
        out[k] = L.summarize(L.offset_distances(im_feat, cc))
    return out


def evaluate_items(model: SyncNetModel, items: Iterable[EvalItem], shifts: Sequence[int] = EVAL_SHIFTS,
                   control_shift: int = CONTROL_SHIFT, progress=None, total: int | None = None) -> dict:
    """Offset recovery under audio shifts, and ground truth vs the ``shifted_audio`` control.

    A clip with its audio delayed by ``k`` frames is right when LSE's offset is
    ``-k`` (the official sign).  Returns the fraction right (overall, per crop
    kind, per shift) and the mean LSE-D / LSE-C of ground truth (``k = 0``) and
    of the control (``k = control_shift``)."""
    rows = []
    it = progress.track(items, "SyncNet shift evaluation", total=total) if progress is not None else items
    for item in it:
        res = shift_results(model, item, sorted(set(shifts) | {0, control_shift}))
        for k in shifts:
            rows.append({"clip": item.clip_id, "kind": item.kind, "shift": k, "offset": res[k].offset,
                         "ok": res[k].offset == -k})
        rows.append({"clip": item.clip_id, "kind": item.kind, "gt": (res[0].lse_d, res[0].lse_c),
                     "control": (res[control_shift].lse_d, res[control_shift].lse_c)})
    shift_rows = [r for r in rows if "shift" in r]
    pair_rows = [r for r in rows if "gt" in r]
    if not pair_rows:
        raise VastbenchError("no clips to evaluate the SyncNet on")

    def frac(rs):
        return round(float(np.mean([r["ok"] for r in rs])), 4) if rs else None

    def mean(key, idx, rs=pair_rows):
        return round(float(np.mean([r[key][idx] for r in rs])), 3)

    kinds = sorted({r["kind"] for r in pair_rows})
    return {
        "clips": len({r["clip"] for r in pair_rows}), "items": len(pair_rows), "shifts": list(shifts),
        "offset_accuracy": frac(shift_rows),
        "offset_accuracy_by_kind": {k: frac([r for r in shift_rows if r["kind"] == k]) for k in kinds},
        "offset_accuracy_by_shift": {str(k): frac([r for r in shift_rows if r["shift"] == k]) for k in shifts},
        "control_shift": control_shift,
        "gt": {"lse_d": mean("gt", 0), "lse_c": mean("gt", 1)},
        "control": {"lse_d": mean("control", 0), "lse_c": mean("control", 1)},
        "gt_better_than_control": round(float(np.mean([r["gt"][0] < r["control"][0] and r["gt"][1] > r["control"][1]
                                                       for r in pair_rows])), 4),
        "by_kind": {k: {"gt": {"lse_d": mean("gt", 0, [r for r in pair_rows if r["kind"] == k]),
                               "lse_c": mean("gt", 1, [r for r in pair_rows if r["kind"] == k])},
                        "control": {"lse_d": mean("control", 0, [r for r in pair_rows if r["kind"] == k]),
                                    "lse_c": mean("control", 1, [r for r in pair_rows if r["kind"] == k])}}
                    for k in kinds},
    }


def val_items(clips: Sequence[SyncClip]) -> Iterable[EvalItem]:
    """Validation during training: each val clip with one crop kind, alternating (half the cost of both)."""
    for i, c in enumerate(clips):
        kinds = [k for k in CROP_KINDS if k in c.crops]
        kind = kinds[i % len(kinds)]
        yield EvalItem(c.clip_id, kind, upsample(c.crops[kind]), c.audio["clip"])


def clip_items(clips: Iterable, kinds: Sequence[str] = CROP_KINDS, capture=None) -> Iterable[EvalItem]:
    """Clips as the benchmark's LSE sees them: decoded mp4 frames and AAC track, crops by ``lse.face_crops``
    from the shipped face capture's landmarks ("landmarks") or centred ("centre")."""
    for clip in clips:
        video = media.read_video(clip.path("video"), require_audio=True)
        min_length = min(video.n_frames, len(L.int16_samples(video.audio)) // SAMPLES_PER_VIDEO_FRAME)
        frames = video.frames[:min_length]
        for kind in kinds:
            landmarks = None
            if kind == "landmarks":
                if capture is None:
                    from vastbench.evalnets.face_capture import load_shipped

                    capture = load_shipped()
                landmarks = capture.capture(frames, what=str(clip.path("video")))["landmarks2d"]
            yield EvalItem(clip.clip_id, kind, L.face_crops(frames, landmarks), video.audio)


def evaluate_weights(weights: str | Path | None = None, manifest=None, split: str = "test",
                     kinds: Sequence[str] = CROP_KINDS, progress=None) -> dict:
    """The acceptance evaluation of a SyncNet file on SynthTalk quick ``split`` clips (default: the shipped one)."""
    path = Path(weights) if weights else shipped_path()
    model = load_syncnet(path)
    if manifest is None:
        from vastbench.evalnets.train_evalnets import quick_manifest

        manifest = quick_manifest()
    clips = manifest.split(split)
    if not clips:
        raise VastbenchError(f"the manifest has no '{split}' clips to evaluate the SyncNet on")
    report = evaluate_items(model, clip_items(clips, kinds), progress=progress, total=len(clips) * len(kinds))
    return {"weights": str(path), "sha256": L.weights_sha256(path), "split": split, **report}


# --------------------------------------------------------------------------- training loop
def _work_dir(cfg: SyncTrainConfig) -> Path:
    from vastbench.paths import cache_dir

    return cache_dir() / "train" / f"syncnet-{cfg.key()}"


def _val_score(report: dict) -> tuple:
    """Model selection: offset accuracy first, then how far the control's LSE-C sits below ground truth's."""
    return (report["offset_accuracy"], report["gt"]["lse_c"] - report["control"]["lse_c"])


def _stem_cache(clips: Sequence[SyncClip], model: SyncNetModel, cfg: SyncTrainConfig, path: Path,
                progress=None) -> None:
    """Fill ``clip.stem`` from ``path`` when it holds this recipe's features, else compute and store them."""
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("config") == cfg.key() and all(c.clip_id in saved["stem"] for c in clips):
            for c in clips:
                c.stem = dict(saved["stem"][c.clip_id])
            return
    cache_stem(model, clips, cfg, progress)
    save_state(path, {"config": cfg.key(), "stem": {c.clip_id: c.stem for c in clips}})


def train(train_clips: Sequence[SyncClip], val_clips: Sequence[SyncClip], cfg: SyncTrainConfig,
          work_dir: Path | None = None, progress=None, stop_after: int | None = None) -> dict:
    """Train (or resume) and return ``{"state_dict": best-by-val weights, "history", "best_step", "model"}``.

    ``stop_after`` ends the run after that many steps (as a kill would; for tests)."""
    work_dir = Path(work_dir or _work_dir(cfg))
    ckpt_path = work_dir / "checkpoint.pt"
    model = init_model(cfg.seed)
    probes = make_probes(train_clips, cfg)
    start, history, best, ck = 0, {"train": [], "val": [], "seconds": {}}, None, None
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ck.get("config") != cfg.key():
            raise VastbenchError(f"{ckpt_path}: a checkpoint of another SyncNet recipe; delete {work_dir} to start over")
        model.load_state_dict(ck["model"])  # the calibrated stem included
        for p in stem_of(model).parameters():
            p.requires_grad_(False)
        start, history, best = ck["step"], json.loads(ck["history"]), ck.get("best")
        log.info("SyncNet: resuming at step %d from %s", start, ckpt_path)
    else:
        t = time.time()
        calibrate_stem(model, train_clips, cfg)
        history["seconds"]["calibrate_stem"] = round(time.time() - t, 1)
    t = time.time()
    _stem_cache(train_clips, model, cfg, work_dir / "stem_features.pt", progress)
    history["seconds"]["stem_features" + ("_resumed" if ck else "")] = round(time.time() - t, 1)
    log.info("SyncNet: stem features of %d clips ready in %.0f s", len(train_clips), time.time() - t)
    opt = make_optimizer(model, probes, cfg)
    if ck is not None:
        if probes is not None:
            probes.load_state_dict(ck["probes"])
        opt.load_state_dict(ck["opt"])
    val_steps = set(cfg.val_steps())
    t0, window = time.time(), []
    steps = range(start, cfg.steps)
    it = progress.track(steps, "train SyncNet", total=len(steps)) if progress is not None else steps
    for step in it:
        if stop_after is not None and step >= stop_after:
            break
        stats = train_step(model, probes, opt, sample_batch(train_clips, cfg, step), cfg, step)
        window.append(stats)
        if (step + 1) % 10 == 0 or step + 1 == cfg.steps:
            avg = {k: round(float(np.mean([w.get(k, 0.0) for w in window])), 4) for k in window[0]}
            history["train"].append({"step": step + 1, **avg, "seconds": round(time.time() - t0, 1)})
            log.info("SyncNet step %d/%d: %s (%.0f s)", step + 1, cfg.steps, avg, time.time() - t0)
            window = []
        if step + 1 in val_steps and val_clips:
            t = time.time()
            report = evaluate_items(model, val_items(val_clips))
            history["val"].append({"step": step + 1, **report, "seconds": round(time.time() - t, 1)})
            log.info("SyncNet val at step %d: offset accuracy %.3f, GT LSE-D/C %s, control %s (%.0f s)", step + 1,
                     report["offset_accuracy"], report["gt"], report["control"], time.time() - t)
            if best is None or _val_score(report) > tuple(best["score"]):
                best = {"step": step + 1, "score": list(_val_score(report)),
                        "state": {k: v.clone() for k, v in model.state_dict().items()}}
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps or step + 1 in val_steps:
            save_state(ckpt_path, {"config": cfg.key(), "step": step + 1, "model": model.state_dict(),
                                         "probes": probes.state_dict() if probes is not None else {},
                                         "opt": opt.state_dict(), "history": json.dumps(history), "best": best})
    state = best["state"] if best is not None else model.state_dict()
    return {"state_dict": state, "history": history, "best_step": best["step"] if best else None,
            "model": model}


# --------------------------------------------------------------------------- the shipped file
def shipped_path() -> Path:
    from vastbench.assets import SHIPPED_DIR

    return SHIPPED_DIR / FILENAME


def weights_bytes(state_dict: dict[str, torch.Tensor]) -> bytes:
    """The shipped file's bytes: official keys (no ``num_batches_tracked``), float16, nothing else.

    Written through a buffer so the archive name inside the zip does not depend
    on the target file name, and with no metadata, so the sha256 depends on the
    weights alone."""
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in state_dict.items()
             if not k.endswith("num_batches_tracked")}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def save_weights(state_dict: dict[str, torch.Tensor], path: str | Path) -> Path:
    from vastbench.rundir import atomic_write_bytes

    return atomic_write_bytes(path, weights_bytes(state_dict))


def run_recipe(out: Path | None = None, cfg: SyncTrainConfig | None = None, progress=None,
               evaluate: bool = True) -> dict:
    """The whole recipe: data, training (resumable), the shipped file, the test evaluation."""
    from vastbench.evalnets.train_evalnets import quick_manifest
    from vastbench.rundir import atomic_write_json, sha256_file
    from vastbench.torchutil import configure_threads

    cfg = cfg or SyncTrainConfig()
    threads = configure_threads()
    out = Path(out or shipped_path())
    manifest = quick_manifest()
    t0 = time.time()
    train_clips = prepare_clips(manifest.split("train"), cfg, progress)
    val_clips = prepare_clips(manifest.split("val"), cfg, progress)
    prep_s = time.time() - t0
    t1 = time.time()
    result = train(train_clips, val_clips, cfg, progress=progress)
    train_s = time.time() - t1
    save_weights(result["state_dict"], out)
    record: dict[str, Any] = {
        "file": str(out), "sha256": sha256_file(out), "config": asdict(cfg), "best_step": result["best_step"],
        "prepare_seconds": round(prep_s, 1), "train_seconds": round(train_s, 1), "threads": threads,
        "torch": torch.__version__, "val": result["history"]["val"], "train_log": result["history"]["train"]}
    if evaluate:
        t2 = time.time()
        record["test"] = evaluate_weights(out, manifest, "test", progress=progress)
        record["eval_seconds"] = round(time.time() - t2, 1)
    atomic_write_json(_work_dir(cfg) / "result.json", record)
    return record


def summary_lines(report: dict) -> list[str]:
    """Human-readable lines of an :func:`evaluate_weights` report."""
    acc = report["offset_accuracy"]
    lines = [f"offset recovery on {report['split']} clips ({report['clips']} clips x {len(report['by_kind'])} crop kinds, "
             f"audio shifted {min(report['shifts'])}..{max(report['shifts'])} frames): {100 * acc:.1f}% "
             f"({'passes' if acc >= 0.9 else 'FAILS'} the 90% acceptance)"]
    for k, v in report["offset_accuracy_by_kind"].items():
        lines.append(f"  {k} crops: {100 * v:.1f}%")
    lines.append("  by shift: " + ", ".join(f"{k}: {100 * v:.0f}%" for k, v in report["offset_accuracy_by_shift"].items()))
    g, c = report["gt"], report["control"]
    lines.append(f"ground truth LSE-D {g['lse_d']:.3f} / LSE-C {g['lse_c']:.3f}; shifted_audio "
                 f"({report['control_shift']} frames) LSE-D {c['lse_d']:.3f} / LSE-C {c['lse_c']:.3f}; "
                 f"ground truth better on both for {100 * report['gt_better_than_control']:.1f}% of clips")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vastbench.evalnets.syncnet_train", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="run the recipe and evaluate the result on the test split")
    tr.add_argument("--out", type=Path, default=None, help="where to write the weights (default: the shipped file)")
    tr.add_argument("--steps", type=int, default=SyncTrainConfig.steps)
    tr.add_argument("--seed", type=int, default=SyncTrainConfig.seed)
    ev = sub.add_parser("evaluate", help="evaluate SyncNet weights on SynthTalk quick test clips")
    ev.add_argument("--weights", type=Path, default=None, help="default: the shipped SynthTalk SyncNet")
    ev.add_argument("--split", default="test")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.cmd == "train":
        rec = run_recipe(args.out, SyncTrainConfig(steps=args.steps, seed=args.seed))
        print(json.dumps({k: v for k, v in rec.items() if k != "train_log"}, indent=2))
        report = rec["test"]
    else:
        from vastbench.torchutil import configure_threads

        configure_threads()
        report = evaluate_weights(args.weights, split=args.split)
        print(json.dumps(report, indent=2))
    print("\n".join(summary_lines(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
