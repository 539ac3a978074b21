"""LSE-D and LSE-C: lip-sync error distance and confidence from SyncNet.

These are the numbers of syncnet_python's ``SyncNetInstance.evaluate`` (the
procedure Wav2Lip made the standard), computed the same way, batched:

1. **Face crops.**  The official pipeline (``run_pipeline.py``) detects faces
   with S3FD, and ``crop_video`` turns each frame's box into a crop: half-size
   ``s = max(w, h) / 2`` and centre ``(x, y)``, each median-filtered over time
   (``scipy.signal.medfilt``, kernel 13, zero-padded at the ends as in the
   original); the frame is padded by ``int(s * (1 + 2 cs))`` pixels of value 110;
   the crop spans rows ``y - s .. y + s (1 + 2 cs)`` and columns
   ``x - s (1 + cs) .. x + s (1 + cs)`` (``cs = 0.4``: more chin than forehead),
   and is resized to 224x224 with ``cv2.resize`` (bilinear).  vastbench takes the
   box from per-frame 2-D landmarks (their min/max extent) or from given face
   boxes instead of S3FD; missing (NaN) frames are interpolated linearly as the
   official tracker interpolates missed detections.  Landmark boxes are a little
   tighter at the top than S3FD boxes (no forehead), so crops sit slightly
   lower; the mouth, which SyncNet looks at, is inside either way.  With neither
   landmarks nor boxes, ``no_face="centre"`` crops the largest centred square
   of the frame (SynthTalk renders the face centred and filling the frame) and
   ``no_face="error"`` refuses.
2. **Video windows.**  Crops in **BGR** order (the official code reads frames
   with ``cv2.imread``) as raw 0-255 floats, no normalisation, five consecutive
   frames per window.  The official loop stops at ``min_length - 5`` windows
   (one fewer than would fit); we keep that.
3. **Audio windows.**  python_speech_features MFCC of the int16 samples
   (:mod:`vastbench.features.mfcc`), 13 x 20 per window, window ``i`` starting
   at MFCC frame ``4 i``.  ``min_length = min(T, floor(samples / 640))``.
4. **Offsets.**  For every video window ``i`` and shift ``j = 0..2v`` (``v =
   15``) the distance to audio window ``i + j - v`` (zero vectors outside the
   clip), as ``torch.nn.functional.pairwise_distance`` (``|a - b + 1e-6|``).
   ``mdist[j]`` = mean over windows.  **LSE-D** = ``min_j mdist``, **LSE-C** =
   ``median_j mdist - min_j mdist``, **offset** = ``v - argmin_j mdist``
   (official sign: a positive offset means the sound comes *earlier* than the
   picture — video window ``i`` matches audio window ``i - offset``; audio
   delayed by ``k`` frames gives offset ``-k``).

What is not reproduced: the official pipeline re-encodes crops (XVID) and dumps
JPEGs before SyncNet sees them, and evaluates each face track separately; we
crop the decoded frames directly and evaluate the whole clip as one track.

Batching: the windows of a clip go through the lip tower in batches (``chunk``
windows, built by ``unfold`` from one tensor of the clip's crops), all audio
windows in one batch, and all 31 offsets are one padded ``unfold`` + norm.

Weights: ``$VASTBENCH_SYNCNET`` or the ``weights`` argument, else the official
``syncnet_v2.model`` in ``$VASTBENCH_CACHE/assets/``, else a SynthTalk SyncNet
``syncnet_synthtalk.pt`` there, else the frozen SynthTalk SyncNet shipped with
vastbench (``vastbench/weights/syncnet_synthtalk_v1.pt``, asset
``syncnet-synthtalk``, checked against its pinned sha256; recipe in
:mod:`vastbench.evalnets.syncnet_train`).  Which one was used is in the
metric's ``describe()`` and ``footnote``: numbers from different weights are not
comparable.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from vastbench import media
from vastbench.errors import VastbenchError
from vastbench.features.mfcc import SAMPLES_PER_VIDEO_FRAME, mfcc_for_video
from vastbench.metrics.base import AUDIO, CaptureMetric, EvalSample, Metric
from vastbench.metrics.syncnet import (IMAGE_SIZE, MFCC_WINDOW, WINDOW_FRAMES, SyncNetModel,
                                       load_syncnet)
from vastbench.paths import cache_dir

ENV_WEIGHTS = "VASTBENCH_SYNCNET"
OFFICIAL_FILENAME = "syncnet_v2.model"
SYNTHTALK_FILENAME = "syncnet_synthtalk.pt"
SHIPPED_ASSET = "syncnet-synthtalk"   # vastbench/weights/syncnet_synthtalk_v1.pt
VSHIFT = 15
CROP_SCALE = 0.40
SMOOTH_KERNEL = 13
PAD_VALUE = 110
MIN_FRAMES = 7   # five per window plus the official off-by-one, and a median filter that sees real boxes

NoFace = Literal["centre", "error"]


# --------------------------------------------------------------------------- crops
def boxes_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(T, L, 2) image-coordinate landmarks -> (T, 4) boxes ``x1, y1, x2, y2`` (NaN where a frame has none)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[-1] != 2:
        raise VastbenchError(f"landmarks must be (T, L, 2), got shape {lm.shape}")
    out = np.full((lm.shape[0], 4), np.nan)
    ok = np.isfinite(lm).all(axis=(1, 2))
    out[ok, 0:2] = lm[ok].min(axis=1)
    out[ok, 2:4] = lm[ok].max(axis=1)
    return out


def _fill_missing(boxes: np.ndarray) -> np.ndarray | None:
    """Interpolate boxes of frames without a face (NaN rows); None when no frame has one."""
    ok = np.isfinite(boxes).all(axis=1)
    if not ok.any():
        return None
    if ok.all():
        return boxes
    t = np.arange(len(boxes))
    return np.stack([np.interp(t, t[ok], boxes[ok, j]) for j in range(4)], axis=1)


def official_crop_geometry(boxes: np.ndarray, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """(T, 4) face boxes -> (T, 3) smoothed ``(s, x, y)``: half-size and centre, as ``crop_video``."""
    from scipy.signal import medfilt

    b = np.asarray(boxes, np.float64)
    s = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    y = (b[:, 1] + b[:, 3]) / 2
    x = (b[:, 0] + b[:, 2]) / 2
    with warnings.catch_warnings():  # short clips: zero-padded at the ends, as the original
        warnings.simplefilter("ignore", UserWarning)
        return np.stack([medfilt(v, kernel_size=SMOOTH_KERNEL) for v in (s, x, y)], axis=1)


def _crop_one(frame: np.ndarray, s: float, x: float, y: float, cs: float) -> np.ndarray:
    """The official crop of one frame, without materialising the padded frame."""
    h, w = frame.shape[:2]
    bsi = int(s * (1 + 2 * cs))
    hp, wp = h + 2 * bsi, w + 2 * bsi
    my, mx = y + bsi, x + bsi
    # Padded-frame slice bounds, clipped like numpy slicing clips them.
    r0, r1 = (min(max(int(v), 0), hp) for v in (my - s, my + s * (1 + 2 * cs)))
    c0, c1 = (min(max(int(v), 0), wp) for v in (mx - s * (1 + cs), mx + s * (1 + cs)))
    if r1 <= r0 or c1 <= c0:
        raise VastbenchError(f"face box of half-size {s:.1f} at ({x:.0f}, {y:.0f}) gives an empty crop; check the landmarks")
    out = np.full((r1 - r0, c1 - c0, 3), PAD_VALUE, np.uint8)
    sr0, sr1 = max(r0 - bsi, 0), min(r1 - bsi, h)
    sc0, sc1 = max(c0 - bsi, 0), min(c1 - bsi, w)
    if sr1 > sr0 and sc1 > sc0:
        out[sr0 + bsi - r0:sr1 + bsi - r0, sc0 + bsi - c0:sc1 + bsi - c0] = frame[sr0:sr1, sc0:sc1]
    return out


def face_crops(frames: np.ndarray, landmarks: np.ndarray | None = None, boxes: np.ndarray | None = None,
               crop_scale: float = CROP_SCALE, no_face: NoFace = "centre", size: int = IMAGE_SIZE) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames -> (T, size, size, 3) uint8 RGB face crops (module docstring, step 1)."""
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VastbenchError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    n = len(frames)
    if landmarks is not None:
        boxes = boxes_from_landmarks(landmarks)
    if boxes is not None:
        boxes = np.asarray(boxes, np.float64)
        if boxes.shape != (n, 4):
            raise VastbenchError(f"need one face box (x1, y1, x2, y2) or landmark set per frame: {boxes.shape[0]} for {n} frames")
        boxes = _fill_missing(boxes)
    if boxes is None:
        if no_face == "error":
            raise VastbenchError("no face landmarks or boxes for this clip; run face capture first or use no_face='centre'")
        if no_face != "centre":
            raise VastbenchError(f"no_face must be 'centre' or 'error', got {no_face!r}")
        h, w = frames.shape[1:3]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return np.stack([cv2.resize(np.ascontiguousarray(f[top:top + side, left:left + side]), (size, size))
                         for f in frames])
    geo = official_crop_geometry(boxes, crop_scale)
    return np.stack([cv2.resize(_crop_one(f, s, x, y, crop_scale), (size, size))
                     for f, (s, x, y) in zip(frames, geo)])


# --------------------------------------------------------------------------- audio
def int16_samples(audio: np.ndarray) -> np.ndarray:
    """Mono audio -> int16 samples, as ffmpeg's ``pcm_s16le`` conversion the official pipeline uses."""
    a = np.asarray(audio)
    if a.dtype == np.int16:
        return a
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, -32768, 32767).astype(np.int16)
    return np.clip(np.rint(a.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def mfcc_windows(mfcc: np.ndarray, n_windows: int) -> torch.Tensor:
    """(N, 13) MFCC -> (n_windows, 1, 13, 20): window ``i`` = MFCC frames ``4i .. 4i + 19``."""
    cc = torch.from_numpy(np.ascontiguousarray(mfcc.T)).float()       # (13, N)
    win = cc.unfold(1, MFCC_WINDOW, 4)[:, :n_windows]                 # (13, W, 20)
    return win.permute(1, 0, 2).unsqueeze(1).contiguous()


# --------------------------------------------------------------------------- distances
def offset_distances(im_feat: torch.Tensor, cc_feat: torch.Tensor, vshift: int = VSHIFT,
                     chunk: int = 256) -> torch.Tensor:
    """(W, D) video and audio embeddings -> (W, 2 vshift + 1) distances at every offset.

    Entry ``[i, j]`` is ``|v_i - a_{i + j - vshift} + 1e-6|`` with zero audio
    embeddings outside the clip: the official ``calc_pdist``, as one tensor op.
    """
    n = 2 * vshift + 1
    padded = F.pad(cc_feat, (0, 0, vshift, vshift))                    # (W + 2v, D)
    shifted = padded.unfold(0, n, 1)                                   # (W, D, 2v + 1), a view
    out = torch.empty(im_feat.shape[0], n, dtype=im_feat.dtype)
    for s in range(0, im_feat.shape[0], chunk):
        diff = im_feat[s:s + chunk, :, None] - shifted[s:s + chunk] + 1e-6
        out[s:s + chunk] = torch.linalg.vector_norm(diff, dim=1)
    return out


@dataclass(frozen=True)
class LSEResult:
    lse_d: float          # min over offsets of the mean distance (lower is better)
    lse_c: float          # median - min of the mean-distance curve (higher is better)
    offset: int           # official sign: positive = audio leads video
    n_windows: int
    curve: tuple[float, ...]  # mean distance per offset index j = 0..2v (offset v - j)


def summarize(dists: torch.Tensor, vshift: int = VSHIFT) -> LSEResult:
    """(W, 2v + 1) distances -> LSE-D, LSE-C and offset, as ``SyncNetInstance.evaluate``."""
    mdist = dists.mean(0)
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval
    return LSEResult(lse_d=float(minval), lse_c=float(conf), offset=int(vshift - int(minidx)),
                     n_windows=int(dists.shape[0]), curve=tuple(float(v) for v in mdist))


# --------------------------------------------------------------------------- the pipeline
@torch.no_grad()
def embed(model: SyncNetModel, crops_rgb: np.ndarray, mfcc: np.ndarray, n_windows: int,
          chunk: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Video and audio embeddings of the first ``n_windows`` windows: ((W, D), (W, D)) on the CPU."""
    device = next(model.parameters()).device
    cc = model.forward_aud(mfcc_windows(mfcc, n_windows).to(device)).cpu()
    feats = []
    for s in range(0, n_windows, chunk):
        e = min(s + chunk, n_windows)
        block = crops_rgb[s:e + WINDOW_FRAMES - 1, :, :, ::-1]                          # (t, 224, 224, 3) BGR
        clip = torch.from_numpy(np.ascontiguousarray(block)).to(device).float().permute(3, 0, 1, 2)  # (3, t, H, W)
        windows = clip.unfold(1, WINDOW_FRAMES, 1).permute(1, 0, 4, 2, 3)               # (e - s, 3, 5, H, W)
        feats.append(model.embed_lip(windows).cpu())
    return torch.cat(feats, 0), cc


def lse_result(frames: np.ndarray, audio: np.ndarray, landmarks: np.ndarray | None = None,
               boxes: np.ndarray | None = None, model: SyncNetModel | str | Path | None = None,
               no_face: NoFace = "centre", crop_scale: float = CROP_SCALE, vshift: int = VSHIFT,
               chunk: int = 16) -> LSEResult:
    """LSE of one clip: 25 fps RGB frames (T, H, W, 3) uint8 and its 16 kHz mono audio."""
    if not isinstance(model, SyncNetModel):
        model = cached_model(resolve_weights(model))
    frames = np.asarray(frames)
    pcm = int16_samples(audio)
    min_length = min(len(frames), len(pcm) // SAMPLES_PER_VIDEO_FRAME)
    if min_length < MIN_FRAMES:
        raise VastbenchError(
            f"LSE needs at least {MIN_FRAMES} frames (0.28 s) of video with audio, got {len(frames)} frames "
            f"and {len(pcm) / 16000:.2f} s of audio")
    n_windows = min_length - WINDOW_FRAMES  # the official `lastframe = min_length - 5`
    crops = face_crops(frames[:min_length], None if landmarks is None else np.asarray(landmarks)[:min_length],
                       None if boxes is None else np.asarray(boxes)[:min_length], crop_scale, no_face)
    mfcc = mfcc_for_video(pcm[: min_length * SAMPLES_PER_VIDEO_FRAME], min_length)
    im_feat, cc_feat = embed(model, crops, mfcc, n_windows, chunk)
    return summarize(offset_distances(im_feat, cc_feat, vshift), vshift)


def lse_from_arrays(frames: np.ndarray, audio: np.ndarray, landmarks: np.ndarray | None = None,
                    model: SyncNetModel | str | Path | None = None, **kwargs) -> tuple[float, float, int]:
    """``(lse_d, lse_c, offset)`` of one clip; see :func:`lse_result` for the options."""
    r = lse_result(frames, audio, landmarks=landmarks, model=model, **kwargs)
    return r.lse_d, r.lse_c, r.offset


# --------------------------------------------------------------------------- weights
def resolve_weights(weights: str | Path | None = None) -> Path:
    """The SyncNet weights file: argument, ``$VASTBENCH_SYNCNET``, official asset, SynthTalk file in the
    asset directory, the shipped SynthTalk SyncNet (verified against its pin)."""
    if weights:
        return Path(weights)
    if os.environ.get(ENV_WEIGHTS):
        return Path(os.environ[ENV_WEIGHTS])
    assets = cache_dir() / "assets"
    for name in (OFFICIAL_FILENAME, SYNTHTALK_FILENAME):
        if (assets / name).is_file():
            return assets / name
    import vastbench.evalnets.assets_catalog  # noqa: F401  (registers the shipped SynthTalk SyncNet)
    from vastbench.assets import ASSETS, asset_path

    if ASSETS[SHIPPED_ASSET].path.is_file():
        return asset_path(SHIPPED_ASSET)  # a changed file is a one-line error, not different numbers
    raise VastbenchError(
        f"no SyncNet weights for LSE-D/LSE-C: the shipped SynthTalk SyncNet {ASSETS[SHIPPED_ASSET].path} is missing "
        f"(reinstall vastbench or run `vastbench assets train syncnet`); or get syncnet_v2.model from the "
        f"syncnet_python release and run `vastbench assets import FILE`, or set {ENV_WEIGHTS}=PATH")


_SHA: dict[tuple, str] = {}
_MODELS: dict[tuple, SyncNetModel] = {}


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def weights_sha256(path: Path) -> str:
    key = _file_key(path)
    if key not in _SHA:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        _SHA[key] = h.hexdigest()
    return _SHA[key]


def cached_model(path: Path, device: str | torch.device | None = None) -> SyncNetModel:
    """One loaded model per weights file and device, shared by LSE-D and LSE-C."""
    path = Path(path)
    if not path.is_file():
        load_syncnet(path)  # raises the one-line "not found" error
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    key = (*_file_key(path), str(device))
    if key not in _MODELS:
        _MODELS[key] = load_syncnet(path, device)
    return _MODELS[key]


def describe_weights(path: Path) -> tuple[str, str]:
    """``(kind, label)``: kind official / synthtalk / custom, label for tables and footnotes."""
    sha = weights_sha256(path)[:12]
    if path.name == OFFICIAL_FILENAME:
        return "official", "official SyncNet"
    stem = Path(SYNTHTALK_FILENAME).stem
    if path.name.startswith(stem):
        version = path.stem[len(stem):].lstrip("_")  # "v1" for the shipped file
        return "synthtalk", f"SynthTalk SyncNet{' ' + version if version else ''} (sha256 {sha}…)"
    return "custom", f"SyncNet weights {path.name} (sha256 {sha}…)"


# --------------------------------------------------------------------------- metrics
class _LSE(CaptureMetric):
    """Shared computation: LSE-D and LSE-C of a clip come from one SyncNet pass (``sample.cache``).

    ``crops="face"`` (the default) crops every clip in the official geometry from the generated
    clip's own landmarks, captured by the dataset's face capture (the shipped SynthTalk network, or
    MediaPipe on ingested data; shared with the other capture metrics through ``sample.cache``).  A
    clip where no face is found is a per-clip error.  ``crops="centre"`` skips face capture and
    takes the largest centred square of every frame (right only for centred face crops such as
    SynthTalk's).  Either way the value of a clip depends only on the clip and these arguments,
    never on which other metrics ran before.
    """

    needs = frozenset({AUDIO})  # the driving wav, used only when the clip has no audio track
    # 2: crops always follow ``crops``.  Version 1 used landmarks only when another capture metric
    # had run on the sample first, so its values depended on the order of the metrics.
    version = "2"

    def __init__(self, weights: str | Path | None = None, crops: Literal["face", "centre"] = "face",
                 audio_source: Literal["clip", "driving"] = "clip", crop_scale: float = CROP_SCALE,
                 device: str | None = None, weights_label: str | None = None):
        if audio_source not in ("clip", "driving"):
            raise VastbenchError(f"audio_source must be 'clip' or 'driving', got {audio_source!r}")
        if crops not in ("face", "centre"):
            raise VastbenchError(f"crops must be 'face' (from face-capture landmarks) or 'centre', got {crops!r}")
        self.weights = resolve_weights(weights)
        if not self.weights.is_file():
            load_syncnet(self.weights)  # the one-line "not found" error, before any clip is evaluated
        self.crops, self.audio_source, self.crop_scale, self.device = crops, audio_source, crop_scale, device
        self.weights_kind, default_label = describe_weights(self.weights)
        self.weights_label = weights_label or default_label

    @property
    def footnote(self) -> str:
        if self.crops == "face":
            crop = f"face crops in the official crop_video geometry from {self.capture_kind} face-capture landmarks"
        else:
            crop = "centred square crops (no face capture)"
        if self.weights_kind == "official":
            return f"LSE-D/LSE-C with the official SyncNet weights (syncnet_v2.model); {crop}."
        return (f"LSE-D/LSE-C with {self.weights_label}, not the official SyncNet: not comparable "
                f"to published LSE numbers; {crop}.")

    def describe(self) -> dict:
        d = super().describe() if self.crops == "face" else Metric.describe(self)
        return {**d, "weights": self.weights_label, "weights_kind": self.weights_kind,
                "weights_path": str(self.weights), "weights_sha256": weights_sha256(self.weights),
                "vshift": VSHIFT, "crop_scale": self.crop_scale, "crops": self.crops,
                "audio_source": self.audio_source, "footnote": self.footnote}

    def result(self, sample: EvalSample) -> LSEResult:
        key = ("lse", weights_sha256(self.weights), self.crops, self.capture_kind if self.crops == "face" else None,
               self.audio_source, self.crop_scale)
        if key not in sample.cache:
            landmarks = self.captured(sample, "generated")["landmarks2d"] if self.crops == "face" else None
            video = sample.generated_video
            audio = video.audio
            if self.audio_source == "driving" or audio is None or audio.size == 0:
                if sample.audio is None:
                    raise VastbenchError(f"{sample.generated}: no audio track and no driving audio to measure lip sync against")
                audio, _ = media.read_wav(sample.audio)
            sample.cache[key] = lse_result(video.frames, audio, landmarks=landmarks,
                                           model=cached_model(self.weights, self.device), crop_scale=self.crop_scale)
        return sample.cache[key]


class LSED(_LSE):
    """LSE-D: the minimum over offsets of the mean SyncNet distance (lower is better)."""

    name = "lse_d"
    higher_is_better = False
    label = "LSE-D"

    def __call__(self, sample: EvalSample) -> float:
        return self.result(sample).lse_d


class LSEC(_LSE):
    """LSE-C: median minus minimum of the mean-distance curve over offsets (higher is better)."""

    name = "lse_c"
    higher_is_better = True
    label = "LSE-C"

    def __call__(self, sample: EvalSample) -> float:
        return self.result(sample).lse_c
