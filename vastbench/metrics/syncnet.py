"""SyncNet, with the architecture of syncnet_python (Chung & Zisserman, 2016).

The module names and ``nn.Sequential`` indices are those of syncnet_python's
``SyncNetModel.S`` (``netcnnaud``, ``netfcaud``, ``netcnnlip``, ``netfclip``), so
the official ``syncnet_v2.model`` state dict loads unchanged, key for key.  The
same layout holds the frozen SynthTalk SyncNet that vastbench trains for its
synthetic data, so one loader serves both.

Inputs, as the official ``SyncNetInstance.evaluate`` feeds them:

- audio: MFCC windows ``(B, 1, 13, 20)`` — 13 coefficients x 20 frames at 100 Hz
  (0.2 s, five video frames), on python_speech_features' scale (int16 samples);
- video: ``(B, 3, 5, 224, 224)`` — five consecutive 224x224 face crops, **BGR**
  channel order (frames read by ``cv2.imread``), raw 0-255 floats, no
  normalisation.

Both towers end in a 1024-d embedding; the distance between them is the
Euclidean distance of ``torch.nn.functional.pairwise_distance``.

(The lip tower could run on a whole clip ``(1, 3, T, 224, 224)`` at once — only
its first layer looks across time — but on CPU that was slower than a batch of
windows: 2.1 s vs 1.3 s for 26 windows on one thread.  Callers batch windows.)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vastbench.errors import VastbenchError


EMBED_DIM = 1024
IMAGE_SIZE = 224
WINDOW_FRAMES = 5      # video frames per window
MFCC_WINDOW = 20       # MFCC frames per window (4 per video frame)
MFCC_DIM = 13


def _conv2d_bn(cin: int, cout: int, kernel, padding=(1, 1)) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel_size=kernel, stride=(1, 1), padding=padding),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _conv3d_bn(cin: int, cout: int, kernel, stride=(1, 1, 1), padding=(0, 1, 1)) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, kernel_size=kernel, stride=stride, padding=padding),
            nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


def _fc_head(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNetModel(nn.Module):
    """syncnet_python's ``S`` network; state-dict compatible with ``syncnet_v2.model``."""

    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        # Audio tower: (B, 1, 13, 20) MFCC -> (B, 512, 1, 1).  Indices match the official Sequential.
        self.netcnnaud = nn.Sequential(
            *_conv2d_bn(1, 64, (3, 3)),                                   # 0-2
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),              # 3
            *_conv2d_bn(64, 192, (3, 3)),                                 # 4-6
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),              # 7   -> (11, 9)
            *_conv2d_bn(192, 384, (3, 3)),                                # 8-10
            *_conv2d_bn(384, 256, (3, 3)),                                # 11-13
            *_conv2d_bn(256, 256, (3, 3)),                                # 14-16
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),              # 17  -> (5, 4)
            nn.Conv2d(256, 512, kernel_size=(5, 4), padding=(0, 0)),      # 18  -> (1, 1)
            nn.BatchNorm2d(512),                                          # 19
            nn.ReLU(),                                                    # 20
        )
        self.netfcaud = _fc_head(embed_dim)
        self.netfclip = _fc_head(embed_dim)
        # Lip tower: (B, 3, 5, 224, 224) BGR 0-255 -> (B, 512, 1, 1, 1).
        self.netcnnlip = nn.Sequential(
            *_conv3d_bn(3, 96, (5, 7, 7), stride=(1, 2, 2), padding=0),   # 0-2  -> (1, 109, 109)
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),        # 3    -> 54
            *_conv3d_bn(96, 256, (1, 5, 5), stride=(1, 2, 2)),            # 4-6  -> 26
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # 7 -> 13
            *_conv3d_bn(256, 256, (1, 3, 3)),                             # 8-10
            *_conv3d_bn(256, 256, (1, 3, 3)),                             # 11-13
            *_conv3d_bn(256, 256, (1, 3, 3)),                             # 14-16
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),        # 17   -> 6
            *_conv3d_bn(256, 512, (1, 6, 6), padding=0),                  # 18-20 -> 1
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 13, 20) MFCC windows -> (B, D) audio embeddings."""
        mid = self.netcnnaud(x)                       # (B, 512, 1, 1)
        return self.netfcaud(mid.flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 5, 224, 224) BGR windows -> (B, D) video embeddings."""
        mid = self.netcnnlip(x)                       # (B, 512, 1, 1, 1)
        return self.netfclip(mid.flatten(1))

    def embed_lip(self, x: torch.Tensor) -> torch.Tensor:
        """``forward_lip`` for frozen eval-mode inference, about twice as fast on a CPU.

        The same function of the same weights (to float rounding, ~1e-6 relative),
        computed by :class:`FoldedLipTower`.  Falls back to ``forward_lip`` in
        training mode, where batch norm must see batch statistics.
        """
        if self.training:
            return self.forward_lip(x)
        with torch.no_grad():
            return self.netfclip(folded_lip_tower(self)(x))


class FoldedLipTower(nn.Module):
    """``netcnnlip`` in eval mode rewritten as 2-D convolutions with batch norm folded in, channels-last.

    Why by hand: only the first layer looks across time (kernel depth 5 on a
    5-frame window, output depth 1), so the whole tower is 2-D: the first
    Conv3d is a Conv2d over the 15 stacked (channel, frame) planes, the rest are
    Conv2d with their depth-1 kernels.  Folding each BatchNorm3d's running
    statistics into the preceding convolution and running channels-last lets
    oneDNN pick its fast kernels; PyTorch's own fusion utilities keep the 3-D
    modules (and channels-last 3-D is slower here).  Measured on the 2-core CPU:
    0.59 s vs 0.79 s for 16 windows, and 2x the one-window-per-pass loop.
    """

    # (conv index, batch-norm index, followed by max pool index or None) in the official Sequential
    _BLOCKS = ((0, 1, 3), (4, 5, 7), (8, 9, None), (11, 12, None), (14, 15, 17), (18, 19, None))

    def __init__(self, lip: nn.Sequential):
        super().__init__()
        layers: list[nn.Module] = []
        for ci, bi, pi in self._BLOCKS:
            conv, bn = lip[ci], lip[bi]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)                       # (O,)
            w = conv.weight * scale.reshape(-1, 1, 1, 1, 1)                                # (O, I, t, kh, kw)
            b = (conv.bias - bn.running_mean) * scale + bn.bias
            # (O, I, t, kh, kw) -> (O, I * t, kh, kw): input planes ordered channel-major, as x.reshape does.
            w2 = w.reshape(w.shape[0], -1, w.shape[-2], w.shape[-1])
            c = nn.Conv2d(w2.shape[1], w2.shape[0], tuple(w2.shape[-2:]), stride=conv.stride[1:],
                          padding=conv.padding[1:])
            c.weight.data.copy_(w2)
            c.bias.data.copy_(b)
            layers += [c, nn.ReLU(inplace=True)]
            if pi is not None:
                p = lip[pi]
                pad = p.padding if isinstance(p.padding, int) else p.padding[1:]
                layers.append(nn.MaxPool2d(p.kernel_size[1:], p.stride[1:], pad))
        self.net = nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)
        for q in self.parameters():
            q.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 5, H, W) -> (B, 512) = ``netcnnlip(x).flatten(1)``."""
        b, c, t, h, w = x.shape
        planes = x.reshape(b, c * t, h, w).contiguous(memory_format=torch.channels_last)
        return self.net(planes).flatten(1)


def lip_tower_flops(size: int = IMAGE_SIZE) -> int:
    """Multiply-adds x 2 of the lip tower's convolutions for one 5-frame window (3.1 GFLOP at 224 px).

    The benchmark divides it by time to show how close to the CPU's peak each
    LSE implementation runs, which bounds what batching can gain.
    """
    tower = FoldedLipTower(SyncNetModel().eval().netcnnlip)
    total = 0

    def hook(mod: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += 2 * out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in tower.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        tower(torch.zeros(1, 3, WINDOW_FRAMES, size, size))
    for h in handles:
        h.remove()
    return total


def _weights_stamp(module: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place (optimizer steps, loads)."""
    return tuple((t.data_ptr(), t._version, t.device.type) for t in (*module.parameters(), *module.buffers()))


def folded_lip_tower(model: SyncNetModel) -> FoldedLipTower:
    """The model's :class:`FoldedLipTower`, rebuilt only when its lip-tower weights change."""
    stamp = _weights_stamp(model.netcnnlip)
    cached = model.__dict__.get("_folded_lip")
    if cached is None or cached[0] != stamp:
        with torch.no_grad():
            tower = FoldedLipTower(model.netcnnlip).to(next(model.parameters()).device)
        model.__dict__["_folded_lip"] = cached = (stamp, tower)
    return cached[1]


# --------------------------------------------------------------------------- weights
def official_keys() -> list[str]:
    """The state-dict keys of the official file (``num_batches_tracked`` optional)."""
    return [k for k in SyncNetModel().state_dict() if not k.endswith("num_batches_tracked")]


def _state_dict_from_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        # Plain tensors only: the official file is a state dict saved by torch.save,
        # so the safe loader reads it and nothing in it is executed.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        raise VastbenchError(
            f"{path}: not a SyncNet state dict readable without executing code ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:120]}); use syncnet_v2.model from the syncnet_python release "
            f"or a checkpoint saved as {{'state_dict': ..., 'meta': ...}}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # a vastbench checkpoint: {"state_dict", "meta"}
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VastbenchError(f"{path}: expected a SyncNet state dict (name -> tensor), got {type(obj).__name__}")
    # Checkpoints saved from nn.DataParallel carry a 'module.' prefix.
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_syncnet(path: str | Path, device: str | torch.device = "cpu") -> SyncNetModel:
    """Load SyncNet weights in the official layout (``syncnet_v2.model`` or the SynthTalk asset), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise VastbenchError(
            f"official SyncNet weights not found at {path}; get syncnet_v2.model from the syncnet_python "
            f"release and run `vastbench assets import FILE`")
    state = _state_dict_from_file(path)
    model = SyncNetModel()
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    if unexpected or missing:
        raise VastbenchError(
            f"{path}: not in the syncnet_python layout (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            f"use syncnet_v2.model or a state dict of vastbench.metrics.syncnet.SyncNetModel")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        raise VastbenchError(f"{path}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                             f"expected {tuple(expected[bad[0]].shape)}; not a syncnet_python SyncNet")
    model.load_state_dict(state, strict=False)  # strict except for num_batches_tracked (checked above)
    return model.eval().to(device)


def save_random_official_layout(path: str | Path, seed: int = 0) -> Path:
    """Write a randomly initialised SyncNet as a plain state dict with the official keys (for tests).

    Batch-norm statistics and affine parameters are randomised too, so that a
    loader that skipped them would be caught.  ``num_batches_tracked`` is left out,
    as in files written by old PyTorch versions.  The global RNG is untouched.
    """
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SyncNetModel()
        g = torch.Generator().manual_seed(seed + 1)
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.data.copy_(0.8 + 0.4 * torch.rand(n, generator=g))
                m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
