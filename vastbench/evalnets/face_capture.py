"""The frozen face-capture network: video frames -> expression, pose, 2-D landmarks.

Video-only systems (baselines and external methods produce frames, not
expression coefficients) are measured through this network, and so are the
ground-truth and prompt videos, so every system's expressions come from the same
capture and comparisons are fair.  It is a small CNN trained on frames of
SynthTalk train clips against the blendshape weights, head pose and landmarks
stored beside them; it is frozen and shipped with its sha256
(``face_capture_v1.pt``, asset ``face-capture``).  On a dataset made by
``vastbench data ingest`` metrics capture with MediaPipe and the dataset's face
model instead (:func:`capture_for`, :class:`vastbench.data.ingest.capture.MediaPipeCapture`).

Per frame it predicts

- ``expression`` (11 SynthTalk blendshape weights),
- ``pose`` (6: rotation + translation, as SynthTalk stores it),
- ``landmarks2d`` (68 x 2, iBUG order, pixel coordinates of the input frame),
- ``face_prob``: the probability that a face is in view, learned from SynthTalk
  frames against synthetic backgrounds (gradients, flat colours, noise, crops of
  the backdrop), so a video with no face is an error, not numbers.

Frames of any size are resized (bilinear, antialiased) to the network's square
input (``CaptureConfig.input_size``); landmarks are scaled back to the frame's
pixel grid.  Non-square frames are squashed, which suits centred face crops only.
Frames without a face inside a clip that mostly has one are filled by linear
interpolation from their neighbours; a clip where fewer than ``min_face_fraction``
of the frames show a face raises :class:`VastbenchError` ("no face found").
Optional temporal smoothing (``smooth``: a centred moving average over that many
frames) is off by default, so captured dynamics are the network's own.

Training (``python -m vastbench.evalnets.train_evalnets face_capture``) is seeded;
the weights are bit-reproducible only with the same torch version, thread count
and device.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)

N_EXPRESSION = 11
N_POSE = 6
N_LANDMARKS = 68
ASSET_NAME = "face-capture"
# Expression channels grouped by face region (SynthTalk blendshape order).
EXPRESSION_GROUPS = {
    "mouth": [0, 1, 2, 3, 4, 5],   # jaw_open, lip_round, lip_stretch, smile_left, smile_right, lip_press
    "brows": [6, 7],               # brow_raise, brow_frown
    "eyes": [8, 9],                # blink_left, blink_right
    "cheek": [10],
}


@dataclass
class CaptureConfig:
    input_size: int = 64        # frames are resized to input_size x input_size
    width: int = 16             # channels of the first stage; stages use 1, 2, 4, 4 x width
    hidden: int = 256
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    negative_fraction: float = 0.1   # share of each batch that is face-free background
    seed: int = 0


class CaptureNet(nn.Module):
    """(B, 3, S, S) images in [0, 1] -> (B, 11 + 6 + 136 + 1) standardized targets + face logit."""

    def __init__(self, cfg: CaptureConfig):
        super().__init__()
        w = cfg.width
        chans = [3, w, 2 * w, 4 * w, 4 * w]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if i > 0:  # a second conv per stage, except at full resolution where it costs most
                layers += [nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        side = -(-cfg.input_size // 16)
        # Flatten rather than pool: landmark positions need the spatial layout.
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * side * side, cfg.hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(0.3), nn.Linear(cfg.hidden, N_EXPRESSION + N_POSE + 2 * N_LANDMARKS + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))   # (B, 154)


def to_input(frames: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, size, size) float in [0, 1]."""
    x = torch.as_tensor(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def _fill_gaps(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linear interpolation over time of the frames where ``ok`` is False; values (T, ...)."""
    if ok.all():
        return values
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    out = np.stack([np.interp(t, t[ok], flat[ok, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape(values.shape).astype(values.dtype)


def _moving_average(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(x) < 2:
        return x
    pad = k // 2
    xp = np.concatenate([np.repeat(x[:1], pad, 0), x, np.repeat(x[-1:], k - 1 - pad, 0)])
    c = np.cumsum(np.concatenate([np.zeros_like(x[:1]), xp]), axis=0)
    return ((c[k:] - c[:-k]) / k).astype(x.dtype)


class FaceCapture:
    """A loaded, frozen capture network (eval mode, CPU by default)."""

    def __init__(self, net: CaptureNet, cfg: CaptureConfig, stats: dict[str, np.ndarray], meta: dict | None = None,
                 device: str = "cpu"):
        self.net = net.to(device).eval()
        self.cfg = cfg
        self.device = device
        self.mean = torch.as_tensor(stats["mean"], dtype=torch.float32)
        self.std = torch.as_tensor(stats["std"], dtype=torch.float32)
        self.meta = meta or {}
        self.sha256: str | None = None

    # ------------------------------------------------------------------ io
    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> "FaceCapture":
        """The shipped network (sha256-verified), or a checkpoint at ``path``."""
        from vastbench.rundir import sha256_file

        if path is None:
            import vastbench.evalnets.assets_catalog  # noqa: F401  (registers the asset)
            from vastbench.assets import asset_path

            path = asset_path(ASSET_NAME)
        path = Path(path)
        if not path.exists():
            raise VastbenchError(f"face-capture weights not found at {path}; "
                                 "reproduce them with `python -m vastbench.evalnets.train_evalnets face_capture`")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = CaptureConfig(**ckpt["config"])
        net = CaptureNet(cfg)
        net.load_state_dict(ckpt["state_dict"])
        out = cls(net, cfg, ckpt["stats"], ckpt.get("meta"), device)
        out.sha256 = sha256_file(path)
        return out

    def save(self, path: str | Path) -> None:
        from vastbench.media import atomic_path

        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        ckpt = {"config": asdict(self.cfg), "state_dict": state,
                "stats": {"mean": self.mean.numpy(), "std": self.std.numpy()}, "meta": self.meta}
        with atomic_path(path) as tmp:
            torch.save(ckpt, tmp)

    def describe(self) -> dict:
        return {"name": ASSET_NAME, "sha256": self.sha256, "config": asdict(self.cfg), **self.meta.get("describe", {})}

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, frames: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Raw per-frame predictions, no face check: expression, pose, landmarks2d, face_prob."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VastbenchError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
        if len(frames) == 0:
            raise VastbenchError("the video has no frames; nothing to capture")
        h, w = frames.shape[1:3]
        outs = []
        for s in range(0, len(frames), batch_size):
            x = to_input(frames[s:s + batch_size], self.cfg.input_size).to(self.device)
            outs.append(self.net(x).float().cpu())
        y = torch.cat(outs)                                             # (T, 154)
        reg = y[:, :-1] * self.std + self.mean
        e, p = N_EXPRESSION, N_EXPRESSION + N_POSE
        lm = reg[:, p:].reshape(-1, N_LANDMARKS, 2).numpy() * np.array([w, h], np.float32)  # normalized -> pixels
        return {"expression": reg[:, :e].numpy(), "pose": reg[:, e:p].numpy(), "landmarks2d": lm,
                "face_prob": torch.sigmoid(y[:, -1]).numpy()}

    def capture(self, frames: np.ndarray, smooth: int = 0, min_face_fraction: float = 0.5,
                what: str = "the video") -> dict[str, np.ndarray]:
        """(T, H, W, 3) uint8 RGB -> dict(expression (T, 11), pose (T, 6), landmarks2d (T, 68, 2), face_prob (T,))."""
        out = self.predict(frames)
        ok = out["face_prob"] >= 0.5
        if ok.mean() < min_face_fraction:
            raise VastbenchError(
                f"no face found in {what}: {int(ok.sum())} of {len(ok)} frames show a face "
                f"(the capture needs at least {min_face_fraction:.0%}); check that the video shows a centred face")
        for k in ("expression", "pose", "landmarks2d"):
            out[k] = _moving_average(_fill_gaps(out[k], ok), smooth)
        return out


@lru_cache(maxsize=2)
def load_shipped(device: str = "cpu") -> FaceCapture:
    """The shipped capture network, loaded once per process."""
    return FaceCapture.load(device=device)


class ShippedCapture:
    """The face capture of metrics on SynthTalk: the shipped network (expressions: 11 blendshape weights).

    :class:`vastbench.data.ingest.capture.MediaPipeCapture` is the same interface for
    an ingested dataset; :func:`capture_for` picks one for a dataset.
    """

    kind = "synthtalk"
    footnote = None

    def __init__(self, net: FaceCapture | None = None):
        self._net = net

    @property
    def net(self) -> FaceCapture:
        return self._net or load_shipped()

    def describe(self) -> dict:
        return {"face_capture": self.net.sha256}

    def capture(self, sample: Any, role: str, path: Path) -> dict[str, np.ndarray]:
        from vastbench import media

        if role == "generated":
            frames = sample.generated_video.frames
        elif role == "reference":
            frames = sample.reference_video.frames
        else:
            video = sample.cache.get("prompt_video") or media.read_video(path, with_audio=False)
            frames = video.frames
        return self.net.capture(frames, what=str(path))


SHIPPED = ShippedCapture()
_FOR_DATASET: dict[tuple, Any] = {}


def capture_for(manifest: Any = None) -> Any:
    """The face capture for metrics on a dataset: MediaPipe with its face model when the dataset was
    ingested (``face_model.npz`` beside the manifest), else the shipped SynthTalk network."""
    from vastbench.data.ingest.geometry import dataset_face_model

    path = dataset_face_model(manifest) if manifest is not None else None
    if path is None:
        return SHIPPED
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(manifest.path))
    if key not in _FOR_DATASET:
        from vastbench.data.ingest.capture import MediaPipeCapture

        _FOR_DATASET[key] = MediaPipeCapture(path, manifest)
    return _FOR_DATASET[key]


def capture_sample(sample: Any, role: str, capture: Any = None) -> dict[str, np.ndarray]:
    """Captured expressions of one of an ``EvalSample``'s videos, computed once per sample.

    ``role`` is ``generated``, ``reference`` or ``prompt``; ``capture`` is the dataset's
    capture (:func:`capture_for`; a :class:`FaceCapture` network also works), by default
    the shipped network.  Results live in ``sample.cache[f"{role}_capture"]`` (with the
    capture's kind appended when it is not the shipped one).
    """
    if capture is None:
        capture = SHIPPED
    elif isinstance(capture, FaceCapture):
        capture = ShippedCapture(capture)
    key = f"{role}_capture" if capture.kind == ShippedCapture.kind else f"{role}_capture_{capture.kind}"
    if key in sample.cache:
        return sample.cache[key]
    if role == "generated":
        path = sample.generated
    elif role == "reference":
        if sample.reference is None:
            sample.reference_video  # raises the one-line "needs a ground-truth video"
        path = sample.reference
    elif role == "prompt":
        if sample.prompt is None:
            raise VastbenchError(f"request {sample.request.request_id}: this metric needs the style prompt video and the request has none")
        path = sample.prompt
    else:
        raise ValueError(f"unknown role {role!r}")
    out = capture.capture(sample, role, Path(path))
    sample.cache[key] = out
    return out


# ====================================================================== training
def _background_frames(rng: np.random.Generator, n: int, size: int, faces: np.ndarray) -> np.ndarray:
    """``n`` face-free (size, size, 3) uint8 frames: gradients, flat colours, noise, backdrop crops."""
    out = np.empty((n, size, size, 3), np.uint8)
    t = (np.arange(size) + 0.5) / size
    xx, yy = np.meshgrid(t, t)
    for i in range(n):
        kind = rng.integers(5)
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if kind == 0:
            img = np.broadcast_to(a, (size, size, 3))
        elif kind == 1:
            k = [yy, xx, 0.5 * (xx + yy), np.clip(np.hypot(xx - 0.5, yy - 0.35) / 0.75, 0, 1)][rng.integers(4)]
            img = a * (1 - k[..., None]) + b * k[..., None]
        elif kind == 2:
            low = rng.uniform(0, 255, (4, 4, 3))
            img = np.kron(low, np.ones((size // 4 + 1, size // 4 + 1, 1)))[:size, :size]
        elif kind == 3:
            img = np.broadcast_to(a, (size, size, 3)) + rng.normal(0, rng.uniform(2, 40), (size, size, 3))
        else:  # a top corner of a real frame (backdrop, maybe hair), blown up
            f = faces[rng.integers(len(faces))]
            c = max(4, size // 6)
            x0 = 0 if rng.random() < 0.5 else size - c
            patch = f[:c, x0:x0 + c]
            img = np.kron(patch, np.ones((size // c + 1, size // c + 1, 1)))[:size, :size]
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


# iBUG-68 index of each landmark's mirror image, and expression channels swapped by a horizontal flip.
_MIRROR = np.array(list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
                   + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
                   + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])
_MIRROR_EXPR = np.array([0, 1, 2, 4, 3, 5, 6, 7, 9, 8, 10])


def _flip_targets(y: torch.Tensor) -> torch.Tensor:
    """Targets (B, 153) of horizontally flipped frames (pose is left as is: masked out of the loss)."""
    e, p = N_EXPRESSION, N_EXPRESSION + N_POSE
    lm = y[:, p:].reshape(-1, N_LANDMARKS, 2)[:, _MIRROR].clone()
    lm[..., 0] = 1.0 - lm[..., 0]
    return torch.cat([y[:, :e][:, _MIRROR_EXPR], y[:, e:p], lm.reshape(len(y), -1)], 1)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Colour jitter (per-channel gain, offset, occasional channel swap), noise, mild blur: (B, 3, S, S) in [0, 1]."""
    b = x.shape[0]
    gain = 1 + 0.25 * (torch.rand(b, 3, 1, 1, generator=gen) - 0.5) * 2
    offset = 0.08 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 2
    x = x * gain + offset
    swap = torch.rand(b, generator=gen) < 0.2   # new skin/hair/backdrop colours: unseen identities
    if swap.any():
        perm = torch.randperm(3, generator=gen)
        x[swap] = x[swap][:, perm]
    blur = torch.rand(b, generator=gen) < 0.2
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        k2 = (k[:, None] * k[None, :]).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    x = x + 0.02 * torch.rand(b, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen)
    return x.clamp_(0, 1)


def load_frames(clips: list, size: int) -> tuple[torch.Tensor, np.ndarray]:
    """Frames (N, 3, size, size) uint8 and targets (N, 153): expression, pose, landmarks / frame size."""
    from vastbench import media

    xs, ys = [], []
    for clip in clips:
        frames = media.read_video(clip.path("video"), with_audio=False).frames
        z = np.load(clip.path("features"))
        n = min(len(frames), len(z["expression"]))
        h, w = frames.shape[1:3]
        lm = z["landmarks2d"][:n] / np.array([w, h], np.float32)
        ys.append(np.concatenate([z["expression"][:n], z["pose"][:n], lm.reshape(n, -1)], axis=1))
        xs.append((to_input(frames[:n], size) * 255).round().to(torch.uint8))
    return torch.cat(xs), np.concatenate(ys).astype(np.float32)


def train(train_clips: list, cfg: CaptureConfig) -> FaceCapture:
    """Fit the capture network on the frames of ``train_clips`` (SynthTalk clips with ground truth)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    x_all, y_all = load_frames(train_clips, cfg.input_size)
    mean = y_all.mean(0)
    std = np.maximum(y_all.std(0), 1e-3)
    y_raw = torch.as_tensor(y_all)
    mean_t, std_t = torch.as_tensor(mean), torch.as_tensor(std)
    faces_hwc = x_all.permute(0, 2, 3, 1).numpy()
    n_neg_pool = max(256, len(x_all) // 8)
    neg_pool = torch.as_tensor(_background_frames(rng, n_neg_pool, cfg.input_size, faces_hwc)).permute(0, 3, 1, 2)
    log.info("face capture: %d frames loaded in %.1fs", len(x_all), time.time() - t0)

    net = CaptureNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=5e-4)
    n_neg = max(1, int(round(cfg.batch_size * cfg.negative_fraction)))
    n_pos = cfg.batch_size - n_neg
    steps_per_epoch = len(x_all) // n_pos
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15)
    e, p = N_EXPRESSION, N_EXPRESSION + N_POSE
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.randperm(len(x_all), generator=gen)
        tot = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * n_pos:(i + 1) * n_pos]
            nidx = torch.randint(len(neg_pool), (n_neg,), generator=gen)
            x = torch.cat([x_all[idx], neg_pool[nidx]]).float().div_(255.0)
            y = y_raw[idx]
            # Mirror half the faces: twice the left/right variety (smirks, winks) of 8 identities.
            flip = torch.rand(n_pos, generator=gen) < 0.5
            x[:n_pos][flip] = x[:n_pos][flip].flip(-1)
            y = torch.where(flip[:, None], _flip_targets(y), y)
            y = (y - mean_t) / std_t
            x = _augment(x, gen)
            out = net(x)
            pos = out[:n_pos]
            keep = (~flip).float()
            pose_loss = ((pos[:, e:p] - y[:, e:p]) ** 2).mean(1).mul(keep).sum() / keep.sum().clamp_min(1)
            loss = (F.mse_loss(pos[:, :e], y[:, :e]) + 0.5 * pose_loss + F.mse_loss(pos[:, p:-1], y[:, p:]))
            face_target = torch.cat([torch.ones(n_pos), torch.zeros(n_neg)])
            loss = loss + 0.2 * F.binary_cross_entropy_with_logits(out[:, -1], face_target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        msg = f"face capture epoch {epoch + 1}/{cfg.epochs}: loss {tot / steps_per_epoch:.4f} ({time.time() - t0:.0f}s)"
        log.info(msg)
    fc = FaceCapture(net, cfg, {"mean": mean, "std": std})
    fc.meta = {"train_clips": len(train_clips), "train_frames": int(len(x_all)), "train_seconds": round(time.time() - t0, 1),
               "torch": torch.__version__, "threads": torch.get_num_threads()}
    return fc


def evaluate(fc: FaceCapture, clips: list) -> dict[str, float]:
    """Accuracy against ground truth: MAE per expression group, pose MAE, landmark error (px), jaw_open r."""
    from vastbench import media

    errs: dict[str, list] = {g: [] for g in EXPRESSION_GROUPS}
    pose_err, lm_err, jaw_t, jaw_p, face_p = [], [], [], [], []
    for clip in clips:
        frames = media.read_video(clip.path("video"), with_audio=False).frames
        z = np.load(clip.path("features"))
        n = min(len(frames), len(z["expression"]))
        out = fc.predict(frames[:n])
        d = np.abs(out["expression"] - z["expression"][:n])
        for g, idx in EXPRESSION_GROUPS.items():
            errs[g].append(d[:, idx].mean(1))
        pose_err.append(np.abs(out["pose"] - z["pose"][:n]).mean(1))
        lm_err.append(np.linalg.norm(out["landmarks2d"] - z["landmarks2d"][:n], axis=-1).mean(1))
        jaw_t.append(z["expression"][:n, 0])
        jaw_p.append(out["expression"][:, 0])
        face_p.append(out["face_prob"])
    res = {f"mae_{g}": float(np.concatenate(v).mean()) for g, v in errs.items()}
    res["mae_pose"] = float(np.concatenate(pose_err).mean())
    res["landmark_px"] = float(np.concatenate(lm_err).mean())
    res["jaw_open_r"] = float(np.corrcoef(np.concatenate(jaw_t), np.concatenate(jaw_p))[0, 1])
    res["face_detected"] = float((np.concatenate(face_p) >= 0.5).mean())
    res["clips"] = len(clips)
    return res
