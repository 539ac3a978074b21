"""The networks of the Wav2Lip-style baseline: a lip-sync expert and the generator.

Both follow Wav2Lip (Prajwal et al., ACM MM 2020, ``models/syncnet.py`` and
``models/wav2lip.py``), scaled down and made size-generic:

- :class:`SyncExpert` -- the lower halves of five consecutive frames, stacked as
  15 channels, and the mel window of those five frames go through two conv
  towers to one embedding each; both are ReLU'd and L2-normalized, so their
  cosine similarity lies in [0, 1] and is read as the probability "in sync"
  (Wav2Lip's ``cosine_loss``: BCE of that similarity).
- :class:`Wav2LipGenerator` -- per frame, the target frame with its lower half
  zeroed and a reference frame of the same person (6 channels) go through a
  stride-2 conv encoder down to a 1 x 1 bottleneck; the mel window of the frame
  goes through an audio encoder to a vector; the decoder starts from the audio
  embedding concatenated with the face bottleneck and, at each scale, upsamples
  and concatenates the encoder's features of that scale (U-Net skips), ending in
  an RGB frame (Wav2Lip: a sigmoid over the whole crop; here the visible upper
  half passed through over a residual on the reference's lower half, see
  ``Wav2LipGenerator``).
- :class:`VisualDiscriminator` -- Wav2Lip's visual-quality discriminator: a
  stride-2 conv tower on the lower half of a frame -> a real/fake logit.

Differences from the paper's networks (sizes, not ideas): widths are a
``channels`` parameter instead of 32..512, residual blocks are fewer, and
normalization is GroupNorm instead of BatchNorm -- batches on two CPU cores are
small, and GroupNorm behaves the same in train and eval mode, so a reloaded
checkpoint gives the frames training saw.  The encoders stride down until the
feature map is at most 5 px and then use one "valid" conv to reach 1 x 1, so
the same code serves 80 px (quick) and 256 px (full) frames.

Frames are (B, 3, H, W) floats in [0, 1]; "lower half" is rows ``H // 2 ..``,
exactly Wav2Lip's mask (``window[:, :, H // 2:] = 0``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from vastbench.errors import VastbenchError

from baselines.wav2lip_style import audio as A

FORMAT = "baselines.wav2lip_style"
VERSION = 1


@dataclass(frozen=True)
class Wav2LipConfig:
    # ---- data
    size: int = 80                      # frames are size x size (no face detector: SynthTalk frames are face crops)
    n_mels: int = 40                    # mel bands (Wav2Lip: 80)
    # ---- sync expert
    expert_channels: int = 16           # widths c, 2c, 4c, 8c, ...
    expert_dim: int = 128               # embedding size (Wav2Lip: 512)
    expert_pool: int = 1                # average-pool the lower halves by this factor before the face tower
    expert_motion: bool = False         # subtract each window's temporal mean frame (see SyncExpert)
    expert_crop: tuple = (0.5, 1.0, 0.0, 1.0)   # rows y0..y1, columns x0..x1 (fractions of the frame) the expert
                                        # sees; Wav2Lip: the lower half (0.5, 1, 0, 1); y0 must be >= 0.5
    expert_windows_per_clip: int = 8    # K: a batch is expert_batch / K clips x K windows, all K x K pairs scored
    expert_steps: int = 2000
    expert_batch: int = 32              # 5-frame windows per step (expert_batch / K clips x K windows)
    expert_lr: float = 1e-3             # Wav2Lip: 1e-4 at batch 64 for ~200k steps; we have minutes
    expert_time_budget_s: float = 0.0   # > 0: stop at the first step past this many seconds
    # ---- generator
    channels: int = 16                  # encoder widths c, 2c, 4c, 8c, 8c, ...
    audio_dim: int = 128                # audio embedding injected at the bottleneck
    audio_skip_channels: int = 0        # > 0: also at every decoder scale, projected to this many channels
    res_blocks: int = 1                 # residual blocks after each encoder stage
    first_kernel: int = 7               # kernel of the first conv of every image tower (Wav2Lip: 7)
    steps: int = 3000
    batch_size: int = 4                 # 5-frame windows per step (x5 frames through the network)
    lr: float = 1e-3
    lr_final_ratio: float = 0.1         # cosine decay to lr * ratio at ``steps``
    mouth_weight: float = 0.0           # extra L1 weight inside the mouth box (0: Wav2Lip's plain L1)
    sync_weight: float = 0.03           # Wav2Lip's syncnet_wt (hq_wav2lip_train.py)
    sync_start: int = 0                 # steps of L1 only before the sync loss ramps in
    sync_ramp: int = 200                # steps over which the sync weight rises linearly to ``sync_weight``
    disc_weight: float = 0.0            # Wav2Lip's disc_wt (0.07); 0 turns the discriminator off
    disc_channels: int = 16
    disc_lr: float = 1e-4
    paste: tuple = ()                   # inference: y0, y1, x0, x1 (fractions), only this box of the output
                                        # (edges feathered) is pasted into the looped frame; () = whole output
    audio_from_expert: bool = False     # start the generator's audio encoder from the expert's audio tower
                                        # (same shapes needed: channels == expert_channels, audio_dim == expert_dim)
    time_budget_s: float = 0.0          # generator budget (seconds); > 0 stops there
    # ---- logging
    sample_every: int = 500
    ckpt_every: int = 500

    def __post_init__(self):
        def bad(msg: str):
            raise VastbenchError(f"wav2lip_style config: {msg}")

        if self.size < 16 or self.size % 2:
            bad(f"size {self.size} must be even and >= 16")
        for name in ("n_mels", "expert_channels", "expert_dim", "expert_batch", "channels", "audio_dim",
                     "batch_size", "disc_channels", "sample_every", "ckpt_every"):
            if getattr(self, name) < 1:
                bad(f"{name} must be positive, got {getattr(self, name)}")
        if self.first_kernel < 1 or self.first_kernel % 2 == 0:
            bad(f"first_kernel must be odd and positive, got {self.first_kernel}")
        for name in ("expert_steps", "steps", "res_blocks", "sync_start", "sync_ramp", "mouth_weight",
                     "audio_skip_channels"):
            if getattr(self, name) < 0:
                bad(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.expert_windows_per_clip < 2 or self.expert_batch % self.expert_windows_per_clip:
            bad(f"expert_batch ({self.expert_batch}) must be a multiple of expert_windows_per_clip "
                f"({self.expert_windows_per_clip}), which must be >= 2 (in-sync and off-sync pairs)")
        paste = tuple(float(v) for v in self.paste)
        object.__setattr__(self, "paste", paste)
        if paste and (len(paste) != 4 or not (0.0 <= paste[0] < paste[1] <= 1.0 and 0.0 <= paste[2] < paste[3] <= 1.0)):
            bad(f"paste {list(paste)} must be () or y0, y1, x0, x1 with 0 <= y0 < y1 <= 1 and 0 <= x0 < x1 <= 1")
        crop = tuple(float(v) for v in self.expert_crop)
        object.__setattr__(self, "expert_crop", crop)
        if len(crop) != 4 or not (0.5 <= crop[0] < crop[1] <= 1.0 and 0.0 <= crop[2] < crop[3] <= 1.0):
            bad(f"expert_crop {list(crop)} must be y0, y1, x0, x1 with 0.5 <= y0 < y1 <= 1 and 0 <= x0 < x1 <= 1 "
                f"(the expert sees only the masked, generated lower half)")
        (y0, y1), (x0, x1) = self.expert_rows(), self.expert_cols()
        if self.expert_pool < 1 or (y1 - y0) % self.expert_pool or (x1 - x0) % self.expert_pool:
            bad(f"expert_pool {self.expert_pool} must divide the expert's crop ({y1 - y0} x {x1 - x0} px)")
        if not 0.0 <= self.sync_weight + self.disc_weight < 1.0:
            bad(f"sync_weight + disc_weight must be in [0, 1) (the L1 weight is 1 minus both), got "
                f"{self.sync_weight} + {self.disc_weight}")

    def expert_rows(self) -> tuple[int, int]:
        """Pixel rows [y0, y1) of the expert's crop (y0 at least the masked half's first row)."""
        return max(self.size // 2, round(self.expert_crop[0] * self.size)), round(self.expert_crop[1] * self.size)

    def expert_cols(self) -> tuple[int, int]:
        return round(self.expert_crop[2] * self.size), round(self.expert_crop[3] * self.size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Wav2LipConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            from vastbench.registry import did_you_mean

            raise VastbenchError(f"unknown wav2lip_style config key '{unknown[0]}'{did_you_mean(unknown[0], known)}")
        return cls(**d)

    def replace(self, **overrides) -> "Wav2LipConfig":
        return Wav2LipConfig.from_dict({**self.to_dict(), **overrides})


# Presets.  "quick": SynthTalk quick (80 px) on two shared CPU cores; the expert and the generator each
# stop at their time budget (together at most 3 minutes of training; steps are an upper bound -- measured
# step times are in the README).  "full": one GPU, 256 px, real data; Wav2Lip's widths at half size.
PRESETS: dict[str, Wav2LipConfig] = {
    "quick": Wav2LipConfig(expert_channels=8, expert_pool=1, expert_motion=True, expert_crop=(0.5, 0.8, 0.2, 0.8),
                           channels=8, res_blocks=0, first_kernel=3, mouth_weight=4.0, audio_from_expert=True,
                           paste=(0.5, 0.85, 0.2, 0.8), expert_time_budget_s=45.0, time_budget_s=100.0),
    "full": Wav2LipConfig(size=256, n_mels=80, expert_channels=32, expert_dim=512, expert_pool=2,
                          expert_motion=True, expert_steps=100_000, expert_batch=64, expert_lr=1e-4, channels=32,
                          audio_dim=512, res_blocks=2, steps=200_000, batch_size=16, lr=1e-4, sync_start=5000,
                          sync_ramp=5000, disc_weight=0.07, disc_channels=32, sample_every=5000, ckpt_every=5000),
}


def make_config(preset: str = "quick", **overrides) -> Wav2LipConfig:
    if preset not in PRESETS:
        from vastbench.registry import did_you_mean

        raise VastbenchError(f"unknown wav2lip_style preset '{preset}'{did_you_mean(preset, PRESETS)}")
    return PRESETS[preset].replace(**overrides)


# ----------------------------------------------------------------------------- blocks
def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class Conv(nn.Module):
    """Conv + GroupNorm + ReLU, optionally residual (Wav2Lip's ``Conv2d(..., residual=True)``)."""

    def __init__(self, cin: int, cout: int, k: int | tuple = 3, stride: int | tuple = 1, padding: Any = 1,
                 residual: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding)
        self.norm = nn.GroupNorm(_groups(cout), cout)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        return F.relu(y + x if self.residual else y)


class Up(nn.Module):
    """Transposed conv + GroupNorm + ReLU (Wav2Lip's ``Conv2dTranspose``)."""

    def __init__(self, cin: int, cout: int, k: int | tuple, stride: int | tuple = 2, padding: Any = 1,
                 output_padding: Any = 1):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, k, stride, padding, output_padding)
        self.norm = nn.GroupNorm(_groups(cout), cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


def _stage_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """Feature-map sizes of a stride-2 tower (k 3, pad 1): halve (ceil) until both sides are <= 5."""
    sizes = [(h, w)]
    while max(sizes[-1]) > 5:
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def _widths(c: int, n: int, cap: int = 8) -> list[int]:
    return [c * min(2 ** i, cap) for i in range(n)]


class ImageEncoder(nn.Module):
    """(B, cin, H, W) -> features of every scale [(B, c_i, h_i, w_i)] ending with (B, out_dim, 1, 1)."""

    def __init__(self, cin: int, h: int, w: int, c: int, out_dim: int, res_blocks: int = 1, first_k: int = 7):
        super().__init__()
        self.sizes = _stage_sizes(h, w)
        self.widths = _widths(c, len(self.sizes))
        stages = [nn.Sequential(Conv(cin, self.widths[0], first_k, 1, first_k // 2),
                                *[Conv(self.widths[0], self.widths[0], residual=True) for _ in range(res_blocks)])]
        for i in range(1, len(self.sizes)):
            stages.append(nn.Sequential(Conv(self.widths[i - 1], self.widths[i], 3, 2, 1),
                                        *[Conv(self.widths[i], self.widths[i], residual=True)
                                          for _ in range(res_blocks)]))
        # A "valid" conv over the whole smallest map reaches 1 x 1; no normalization there (a 1 x 1 map has
        # nothing to normalize over), then a 1 x 1 conv to the output size.
        hidden = max(out_dim, self.widths[-1])
        stages.append(nn.Sequential(nn.Conv2d(self.widths[-1], hidden, self.sizes[-1]), nn.ReLU(),
                                    nn.Conv2d(hidden, out_dim, 1)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class AudioEncoder(nn.Module):
    """(B, 1, n_mels, 20) mel windows -> (B, dim, 1, 1)."""

    def __init__(self, n_mels: int, c: int, dim: int):
        super().__init__()
        self.tower = ImageEncoder(1, n_mels, A.MEL_STEPS, c, dim, res_blocks=1, first_k=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.tower(mel)[-1]


def _embed(x: torch.Tensor) -> torch.Tensor:
    """Wav2Lip's expert embeddings: ReLU (the towers end in ReLU) then L2-normalized."""
    return F.normalize(F.relu(x.flatten(1)), dim=1)


# ----------------------------------------------------------------------------- sync expert
class SyncExpert(nn.Module):
    """Lower halves of 5 frames (B, 5, 3, H, W) + mel (B, n_mels, 20) -> cosine similarity in [0, 1]."""

    def __init__(self, cfg: Wav2LipConfig):
        super().__init__()
        self.cfg = cfg
        (y0, y1), (x0, x1), k = cfg.expert_rows(), cfg.expert_cols(), cfg.expert_pool
        self.face = ImageEncoder(3 * A.WINDOW_FRAMES, (y1 - y0) // k, (x1 - x0) // k, cfg.expert_channels,
                                 cfg.expert_dim, res_blocks=cfg.res_blocks, first_k=cfg.first_kernel)
        self.audio = AudioEncoder(cfg.n_mels, cfg.expert_channels, cfg.expert_dim)

    def lower_half(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 5, 3, H, W) frames -> (B, 15, h / pool, w / pool) stacked crops of the lower halves.

        The crop is ``cfg.expert_crop`` (default: the whole lower half, as Wav2Lip; ``quick``: the
        mouth part of it, so the expert -- and the sync loss's gradient -- ignores neck and background).

        With ``expert_motion`` the window's mean frame is subtracted first: what stays is how the
        mouth moves within the window, which is what sync is about (identity, skin and background
        cancel).  Measured on SynthTalk quick: with it (and ``expert_pool`` 2) the expert leaves the
        chance plateau after ~200 steps instead of ~400 -- it matters when training has a minute.
        """
        B, T, C, H, W = frames.shape
        (y0, y1), (x0, x1) = self.cfg.expert_rows(), self.cfg.expert_cols()
        x = frames[..., y0:y1, x0:x1]
        if self.cfg.expert_motion:
            x = x - x.mean(1, keepdim=True)
        x = x.reshape(B, T * C, y1 - y0, x1 - x0)
        return F.avg_pool2d(x, self.cfg.expert_pool) if self.cfg.expert_pool > 1 else x

    def embed(self, faces: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 5, 3, H, W) frames and (B, n_mels, 20) mels -> unit embeddings (B, D) each."""
        return _embed(self.face(self.lower_half(faces))[-1]), _embed(self.audio(mel[:, None]))

    def forward(self, faces: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        v, a = self.embed(faces, mel)
        return (v * a).sum(1)                                          # (B,) cosine similarity


def cosine_bce(sim: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Wav2Lip's ``cosine_loss``: BCE of the cosine similarity (clamped away from 0 and 1 for the log)."""
    return F.binary_cross_entropy(sim.clamp(1e-6, 1 - 1e-6), y)


def pairwise_cosine_bce(v: torch.Tensor, a: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cosine BCE over all (video, audio) pairs of windows of the same clip; (loss, balanced accuracy).

    ``v``, ``a``: (G * K, D) unit embeddings of K windows of each of G clips; ``starts`` (G, K) their
    start frames.  Pairs with equal starts are in sync (label 1), pairs with different starts are not
    (label 0); the two classes are weighted equally, as Wav2Lip's batches are half and half.
    """
    G, K = starts.shape
    sim = torch.einsum("gkd,gjd->gkj", v.reshape(G, K, -1), a.reshape(G, K, -1)).clamp(1e-6, 1 - 1e-6)
    same = starts[:, :, None] == starts[:, None, :]
    pos, neg = sim[same], sim[~same]
    loss = -pos.log().mean() - (1 - neg).log().mean() if len(neg) else -pos.log().mean()
    acc = 0.5 * float((pos > 0.5).float().mean()) + (0.5 * float((neg < 0.5).float().mean()) if len(neg) else 0.5)
    return 0.5 * loss if len(neg) else loss, acc


# ----------------------------------------------------------------------------- generator
class Wav2LipGenerator(nn.Module):
    """(B, 6, H, W) masked target + reference in [0, 1], (B, n_mels, 20) mel -> (B, 3, H, W) frames.

    Output values are not squashed (see ``out``); clamp to [0, 1] to display.
    """

    def __init__(self, cfg: Wav2LipConfig):
        super().__init__()
        self.cfg = cfg
        s = cfg.size
        self.face = ImageEncoder(6, s, s, cfg.channels, cfg.audio_dim, res_blocks=cfg.res_blocks,
                                 first_k=cfg.first_kernel)
        self.audio = AudioEncoder(cfg.n_mels, cfg.channels, cfg.audio_dim)
        sizes, widths = self.face.sizes, self.face.widths
        hk, wk = sizes[-1]
        # Decoder: 1x1 -> the smallest map (kernel = its size), then x2 per scale; each stage's input is the
        # previous stage's output concatenated with the encoder features of that scale.
        k = cfg.audio_skip_channels
        ups = [Up(2 * cfg.audio_dim, widths[-1], (hk, wk), 1, 0, 0)]
        for i in range(len(sizes) - 1, 0, -1):
            h, w = sizes[i - 1]
            hh, ww = sizes[i]
            ups.append(Up(2 * widths[i] + k, widths[i - 1], 3, 2, 1, (h - 2 * hh + 1, w - 2 * ww + 1)))
        self.ups = nn.ModuleList(ups)
        # Optional audio at every decoder scale: the embedding projected to k channels, tiled over the map.
        self.audio_skips = nn.ModuleList([nn.Linear(cfg.audio_dim, k) for _ in ups[1:]]) if k else None
        # The raw input joins the last conv (Wav2Lip's skips stop at the first encoder stage).  The output
        # is the target's visible upper half over (reference lower half + predicted residual): training
        # starts from a whole, correctly coloured face instead of grey, which matters when it has two
        # minutes, and the upper half -- given -- comes out untouched.  (A zero-initialized residual
        # head was tried: it learned more slowly; jaw-opening correlation 0.07 vs 0.14 at 500 steps.)
        self.out = nn.Sequential(Conv(2 * widths[0] + 6, widths[0], 3, 1, 1), nn.Conv2d(widths[0], 3, 1))

    @staticmethod
    def inputs(target: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) target and reference -> (B, 6, H, W) with the target's lower half zeroed."""
        masked = target.clone()
        masked[..., target.shape[-2] // 2:, :] = 0.0
        return torch.cat([masked, reference], 1)

    def forward(self, x: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (6, self.cfg.size, self.cfg.size):
            raise VastbenchError(f"wav2lip_style generator takes (B, 6, {self.cfg.size}, {self.cfg.size}) inputs, "
                                 f"got {tuple(x.shape)}")
        feats = self.face(x)
        a = self.audio(mel[:, None])                                   # (B, audio_dim, 1, 1)
        y = torch.cat([a, feats[-1]], 1)                               # (B, 2 * audio_dim, 1, 1)
        for i, (up, skip) in enumerate(zip(self.ups, feats[-2::-1])):
            if i and self.audio_skips is not None:
                tiled = self.audio_skips[i - 1](a.flatten(1))[:, :, None, None].expand(-1, -1, *y.shape[2:])
                y = torch.cat([y, tiled], 1)
            y = torch.cat([up(y), skip], 1)
        h = x.shape[-2] // 2
        delta = self.out(torch.cat([y, x], 1))                          # (B, 3, H, W)
        return torch.cat([x[:, :3, :h], x[:, 3:, h:] + delta[:, :, h:]], 2)


# ----------------------------------------------------------------------------- discriminator
class VisualDiscriminator(nn.Module):
    """Wav2Lip's visual-quality discriminator on the lower half of single frames -> (B,) logits."""

    def __init__(self, cfg: Wav2LipConfig):
        super().__init__()
        self.tower = ImageEncoder(3, cfg.size - cfg.size // 2, cfg.size, cfg.disc_channels, 1, res_blocks=0,
                                  first_k=cfg.first_kernel)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.tower(frames[..., frames.shape[-2] // 2:, :])[-1].flatten()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
