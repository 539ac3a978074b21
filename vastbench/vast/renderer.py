"""The personalized conditional-GAN renderer (supplementary section 2, DESIGN 6).

One network per target identity.  Input per frame: the condition (eroded
background + mesh image, ``conditioning.py``) and the 4 PPG frames of that
video frame; output: the frame.  Shapes: B batch, T frames, H = W = size,
c = ``base_channels``, bottleneck (H/8, W/8).

    condition (B,T,6,H,W) --enc1--> (c,H/2) --enc2--> (2c,H/4) --enc3--> (4c,H/8)   three stride-2 convs
    PPG (B,T,4,40) --flatten--> MLP --> (P,) tiled to (P,H/8,W/8)
    [enc3 ; PPG] --fusion: four 3x3 convs--> (4c,H/8)                              audio-image fusion
    --ConvLSTM over T--> (L,H/8)                                                  time
    [fused ; LSTM] --up1: transposed conv--> (2c,H/4) ++ enc2                       decoder: two transposed convs
                   --up2: transposed conv--> (c,H/2) ++ enc1
                   --bilinear x2 ++ condition --up3: 3x3 conv--> (c,H) ++ condition --> 3x3 convs --> tanh (3,H,W)

Choices where the supplementary is silent:

* **Restoring the resolution.**  Three stride-2 convs divide the size by 8;
  two transposed convs multiply it by 4.  A third upsampling stage (bilinear
  x2 + conv, which does not checkerboard) restores the input size, and U-Net
  skips from the encoder (and from the condition itself at full resolution)
  carry what the bottleneck cannot: the exact pixels of the background, and
  the fine mesh geometry of lips and teeth (at 80 px the mouth is ~12 px wide,
  1.5 bottleneck cells).
* **The LSTM and space.**  A ConvLSTM (3x3 gate convolutions, weights shared
  over locations) at the bottleneck.  A global LSTM on a flattened bottleneck
  would tie the network to one frame size and need ~H*W*C^2/64 weights; a
  per-location LSTM (1x1 gates) cannot follow content that moves between
  cells when the head turns.  With 3x3 gates the state moves with the head
  by one cell per frame, and the module runs on any size and any T.  Its
  output is concatenated with the fused features so the decoder keeps a
  per-frame path (the state starts at zero on the first frame).
* **PPG** enters as a vector tiled over the bottleneck, after an MLP on the
  flattened 4 x 40 posteriors of the frame.  ``use_ppg=False`` (the ablation)
  drops the MLP and fuses image features alone, same widths otherwise.
* **Losses.** L1, weighted ``1 + mouth_weight`` inside the dilated mouth
  mask (landmarks 48-59 of the target geometry), and LSGAN (least squares:
  stable with a small discriminator and few steps, no saturating logs).
  ``l1_weight`` 100 vs adversarial 1 follows pix2pix.
* **Discriminator.** PatchGAN on (condition, frame) pairs per frame, 70x70
  receptive field at 256 px (3 stride-2 layers + 2 stride-1), narrower and
  shallower at small sizes via ``disc_layers``.

Long clips: :meth:`Renderer.forward` returns the LSTM state and takes it back,
so a clip runs in chunks with the same result as in one piece.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from vastbench.errors import VastbenchError

GAN_LOSSES = ("lsgan", "hinge")
FORMAT = "vastbench.renderer"
VERSION = 1


@dataclass(frozen=True)
class RendererConfig:
    # ---- data
    size: int = 80                    # H = W; a multiple of 8
    ppg_dim: int = 40                 # P phone classes
    ppg_per_frame: int = 4            # 100 Hz PPG / 25 fps video
    # ---- generator
    base_channels: int = 16           # c: encoder widths c, 2c, 4c
    ppg_hidden: int = 64              # MLP hidden width
    ppg_channels: int = 16            # PPG vector tiled into the bottleneck
    lstm_channels: int = 32           # ConvLSTM hidden channels
    lstm_kernel: int = 3
    use_ppg: bool = True              # False: the "no PPG in renderer" ablation
    # ---- discriminator
    disc_channels: int = 16
    disc_layers: int = 2              # stride-2 layers of the PatchGAN
    # ---- losses
    l1_weight: float = 100.0
    mouth_weight: float = 4.0         # extra L1 weight inside the mouth mask
    adv_weight: float = 1.0
    gan_loss: str = "lsgan"           # "lsgan" | "hinge"
    adv_start: int = 750              # steps of L1 only before the adversarial term starts
    # ---- recipe
    seq_len: int = 16                 # training sequence length (frames)
    batch_size: int = 1
    steps: int = 900
    lr_g: float = 1.5e-3
    lr_d: float = 5e-4
    lr_final_ratio: float = 0.1       # cosine decay to lr * ratio at ``steps``
    sample_every: int = 300           # sample grid PNG every N steps
    ckpt_every: int = 300
    time_budget_s: float = 0.0        # > 0: stop at the first step past this many seconds (quick preset)

    def __post_init__(self):
        def bad(msg: str):
            raise VastbenchError(f"renderer config: {msg}")

        if self.size < 16 or self.size % 8:
            bad(f"size {self.size} must be a multiple of 8 and >= 16 (three stride-2 convs)")
        if self.gan_loss not in GAN_LOSSES:
            bad(f"gan_loss '{self.gan_loss}' is not one of {', '.join(GAN_LOSSES)}")
        for name in ("ppg_dim", "ppg_per_frame", "base_channels", "ppg_hidden", "ppg_channels", "lstm_channels",
                     "disc_channels", "disc_layers", "seq_len", "batch_size", "steps"):
            if getattr(self, name) < 1:
                bad(f"{name} must be positive, got {getattr(self, name)}")
        if self.lstm_kernel % 2 != 1:
            bad(f"lstm_kernel {self.lstm_kernel} must be odd")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RendererConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            from vastbench.registry import did_you_mean
            raise VastbenchError(f"unknown renderer config key '{unknown[0]}'{did_you_mean(unknown[0], known)}")
        return cls(**d)

    def replace(self, **overrides) -> "RendererConfig":
        return RendererConfig.from_dict({**self.to_dict(), **overrides})


# Presets: "quick" trains 900 steps at 80 px, about 200 s on one idle CPU core (a fixed step
# count, so suites are reproducible: a time budget would make weights depend on machine load);
# "full" is sized for one GPU at 256 px.
PRESETS: dict[str, RendererConfig] = {
    "quick": RendererConfig(),
    "full": RendererConfig(size=256, base_channels=48, ppg_hidden=128, ppg_channels=32, lstm_channels=128,
                           disc_channels=64, disc_layers=3, batch_size=4, steps=20000, lr_g=2e-4, lr_d=2e-4,
                           sample_every=1000, ckpt_every=1000, adv_start=500),
}


def make_config(preset: str = "quick", **overrides) -> RendererConfig:
    if preset not in PRESETS:
        from vastbench.registry import did_you_mean
        raise VastbenchError(f"unknown renderer preset '{preset}'{did_you_mean(preset, PRESETS)}")
    return PRESETS[preset].replace(**overrides)


# ----------------------------------------------------------------------------- blocks
def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2 if stride == 1 else 1),
                         nn.GroupNorm(_groups(cout), cout), nn.LeakyReLU(0.2, inplace=True))


def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class ConvLSTMCell(nn.Module):
    """LSTM whose gates are 3x3 convolutions: one set of weights for every location."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(cin + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state                                                  # (B, L, h, w) each
        i, f, o, g = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(g)  # +1: remember by default
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


LSTMState = tuple[torch.Tensor, torch.Tensor]


class Renderer(nn.Module):
    """condition (B, T, 6, H, W) + PPG (B, T, 4, P) -> frames (B, T, 3, H, W) in [-1, 1]."""

    def __init__(self, cfg: RendererConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.base_channels
        self.enc1 = _conv(6, c, 4, 2)            # H/2
        self.enc2 = _conv(c, 2 * c, 4, 2)        # H/4
        self.enc3 = _conv(2 * c, 4 * c, 4, 2)    # H/8: the bottleneck
        p = cfg.ppg_channels if cfg.use_ppg else 0
        if cfg.use_ppg:
            self.ppg_mlp = nn.Sequential(
                nn.Linear(cfg.ppg_per_frame * cfg.ppg_dim, cfg.ppg_hidden), nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(cfg.ppg_hidden, cfg.ppg_hidden), nn.LeakyReLU(0.2, inplace=True),
                nn.Linear(cfg.ppg_hidden, p))
        self.fusion = nn.Sequential(*(_conv(4 * c + (p if k == 0 else 0), 4 * c) for k in range(4)))
        self.lstm = ConvLSTMCell(4 * c, cfg.lstm_channels, cfg.lstm_kernel)
        self.up1 = nn.Sequential(nn.ConvTranspose2d(4 * c + cfg.lstm_channels, 2 * c, 4, 2, 1),
                                 nn.GroupNorm(_groups(2 * c), 2 * c), nn.LeakyReLU(0.2, inplace=True))
        self.up2 = nn.Sequential(nn.ConvTranspose2d(4 * c, c, 4, 2, 1),
                                 nn.GroupNorm(_groups(c), c), nn.LeakyReLU(0.2, inplace=True))
        self.up3 = _conv(c + 6, c)               # after a bilinear x2, with the condition at full resolution
        self.out = nn.Sequential(_conv(c + 6, c), nn.Conv2d(c, 3, 3, padding=1), nn.Tanh())

    def init_state(self, batch: int, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> LSTMState:
        s = self.cfg.size // 8
        p = next(self.parameters())
        z = torch.zeros(batch, self.cfg.lstm_channels, s, s, device=device or p.device, dtype=dtype or p.dtype)
        return z, z.clone()

    def forward(self, cond: torch.Tensor, ppg: torch.Tensor | None = None,
                state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """cond (B, T, 6, H, W) in [-1, 1], ppg (B, T, 4, P) or None -> (frames (B, T, 3, H, W), state).

        Pass the returned state to the next call to continue a clip in chunks.
        """
        cfg = self.cfg
        if cond.dim() != 5 or cond.shape[2] != 6:
            raise VastbenchError(f"renderer: condition must be (B, T, 6, H, W), got {tuple(cond.shape)}")
        B, T, _, H, W = cond.shape
        if H != cfg.size or W != cfg.size:
            raise VastbenchError(f"renderer trained for {cfg.size}x{cfg.size} frames got {W}x{H}; "
                                 f"resize the input or train a renderer at this size")
        x = cond.reshape(B * T, 6, H, W)
        e1 = self.enc1(x)                                              # (BT, c, H/2, W/2)
        e2 = self.enc2(e1)                                             # (BT, 2c, H/4, W/4)
        e3 = self.enc3(e2)                                             # (BT, 4c, H/8, W/8)
        if cfg.use_ppg:
            if ppg is None or tuple(ppg.shape) != (B, T, cfg.ppg_per_frame, cfg.ppg_dim):
                got = None if ppg is None else tuple(ppg.shape)
                raise VastbenchError(f"renderer: PPG must be (B, T, {cfg.ppg_per_frame}, {cfg.ppg_dim}) = "
                                     f"{(B, T, cfg.ppg_per_frame, cfg.ppg_dim)}, got {got}")
            a = self.ppg_mlp(ppg.reshape(B * T, -1).to(e3.dtype))      # (BT, p)
            e3 = torch.cat([e3, a[:, :, None, None].expand(-1, -1, *e3.shape[-2:])], 1)
        fused = self.fusion(e3)                                        # (BT, 4c, h, w)
        seq = fused.reshape(B, T, *fused.shape[1:])
        h, c = self.init_state(B, fused.device, fused.dtype) if state is None else state
        outs = []
        for t in range(T):
            h, c = self.lstm(seq[:, t], (h, c))
            outs.append(h)
        lstm = torch.stack(outs, 1).reshape(B * T, -1, *fused.shape[-2:])  # (BT, L, h, w)
        d = self.up1(torch.cat([fused, lstm], 1))                      # (BT, 2c, H/4, W/4)
        d = self.up2(torch.cat([d, e2], 1))                            # (BT, c, H/2, W/2)
        d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
        d = self.up3(torch.cat([d, x], 1))                             # (BT, c, H, W)
        y = self.out(torch.cat([d, x], 1))                             # (BT, 3, H, W)
        return y.reshape(B, T, 3, H, W), (h, c)


class PatchDiscriminator(nn.Module):
    """PatchGAN on (condition, frame) pairs: (N, 9, H, W) -> (N, 1, h', w') realness scores."""

    def __init__(self, cfg: RendererConfig):
        super().__init__()
        ch, layers, cin = cfg.disc_channels, [], 9
        for k in range(cfg.disc_layers):
            cout = ch * 2 ** k
            layers += [nn.Conv2d(cin, cout, 4, 2, 1)]
            if k:
                layers += [nn.GroupNorm(_groups(cout), cout)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        layers += [nn.Conv2d(cin, 2 * cin, 4, 1, 1), nn.GroupNorm(_groups(2 * cin), 2 * cin),
                   nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(2 * cin, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, cond: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([cond, frame], 1))


# ----------------------------------------------------------------------------- losses
def weighted_l1(pred: torch.Tensor, target: torch.Tensor, mouth: torch.Tensor | None, mouth_weight: float) -> torch.Tensor:
    """Mean L1 with weight 1 + mouth_weight inside ``mouth`` (..., H, W) in [0, 1], normalized by the weights."""
    err = (pred - target).abs().mean(dim=-3)                           # (..., H, W)
    if mouth is None or mouth_weight == 0:
        return err.mean()
    w = 1.0 + mouth_weight * mouth.to(err.dtype)
    return (err * w).sum() / w.sum()


def gan_loss(scores: torch.Tensor, real: bool, kind: str, for_discriminator: bool = True) -> torch.Tensor:
    """LSGAN: (s - 1)^2 / s^2; hinge: relu(1 - s) / relu(1 + s) for D, -s for G."""
    if kind == "lsgan":
        return ((scores - (1.0 if real else 0.0)) ** 2).mean()
    if not for_discriminator:
        return -scores.mean()
    return F.relu(1.0 - scores).mean() if real else F.relu(1.0 + scores).mean()


def generator_loss(model: Renderer, disc: PatchDiscriminator | None, batch: dict[str, torch.Tensor],
                   adversarial: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """batch: cond (B,T,6,H,W), ppg (B,T,4,P), frames (B,T,3,H,W), mouth (B,T,H,W) -> (loss, parts, fake)."""
    cfg = model.cfg
    fake, _ = model(batch["cond"], batch.get("ppg"))
    l1 = weighted_l1(fake, batch["frames"], batch.get("mouth"), cfg.mouth_weight)
    parts = {"l1": l1.detach()}
    loss = cfg.l1_weight * l1
    if adversarial and disc is not None:
        adv = gan_loss(disc(_flat(batch["cond"]), _flat(fake)), True, cfg.gan_loss, for_discriminator=False)
        loss = loss + cfg.adv_weight * adv
        parts["adv_g"] = adv.detach()
    parts["loss_g"] = loss.detach()
    return loss, parts, fake


def discriminator_loss(disc: PatchDiscriminator, batch: dict[str, torch.Tensor], fake: torch.Tensor,
                       kind: str) -> torch.Tensor:
    cond = _flat(batch["cond"])
    real = gan_loss(disc(cond, _flat(batch["frames"])), True, kind)
    fake = gan_loss(disc(cond, _flat(fake.detach())), False, kind)
    return 0.5 * (real + fake)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, *x.shape[2:])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
