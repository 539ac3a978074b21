"""StyleTalk-style expression model: deterministic style code + style-aware adaptive decoder.

Follows StyleTalk (Ma et al., AAAI 2023, "StyleTalk: One-shot Talking Head
Generation with Controllable Speaking Styles") at small scale:

* **Style encoder**: a transformer over the prompt's expression sequence with
  attention pooling -> one style vector.  It is VAST's :class:`StyleEncoder`
  (the same design), followed by a *deterministic* projection to the style code
  (VAST's ``enhancer=False`` head): no variational enhancer, no flow, no KL.
* **Style-aware decoder**: non-autoregressive.  PPG -> 25 fps content features
  (VAST's content front-end), then transformer blocks whose feed-forward layers
  are *style-conditioned dynamic layers*: K expert weight sets, aggregated per
  request with softmax attention weights computed from the style code
  (``W(s) = sum_k pi_k(s) W_k``, as StyleTalk's style-aware adaptive transformer
  and CondConv do), so the style changes the decoder's weights, not only its
  input.  One linear head predicts every channel (expression + pose).

Differences from the paper: the triplet style loss and the lip-sync
discriminator of StyleTalk are not used; the inputs are SynthTalk expression
parameters + pose instead of 3DMM coefficients; sizes are the ``quick`` preset's.
The training loop, data, normalisation and Eq. 7 reconstruction + velocity
losses are VAST's (``vastbench.vast.train.train`` with ``model_cls``), with the KL
term absent because the code is deterministic, so the comparison with VAST
isolates the variational enhancer and the hybrid decoder.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vastbench.vast.config import VastConfig
from vastbench.vast.decoder import ContentEncoder
from vastbench.vast.layers import SelfAttention, band_allowed
from vastbench.vast.model import VastModel

EXPERTS = 4            # K weight sets per dynamic layer (StyleTalk uses a handful)
TEMPERATURE = 1.0      # softmax temperature of the expert attention


class DynamicFFN(nn.Module):
    """Feed-forward layer whose weights are a style-weighted mixture of K experts."""

    def __init__(self, d: int, hidden: int, z_dim: int, experts: int = EXPERTS):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(experts, d, hidden) * d ** -0.5)
        self.b1 = nn.Parameter(torch.zeros(experts, hidden))
        self.w2 = nn.Parameter(torch.randn(experts, hidden, d) * hidden ** -0.5)
        self.b2 = nn.Parameter(torch.zeros(experts, d))
        self.attn = nn.Linear(z_dim, experts)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # x (B, T, d), z (B, Z) -> (B, T, d)
        pi = torch.softmax(self.attn(z) / TEMPERATURE, dim=-1)                 # (B, K)
        w1 = torch.einsum("bk,kdh->bdh", pi, self.w1)                           # (B, d, H)
        w2 = torch.einsum("bk,khd->bhd", pi, self.w2)                           # (B, H, d)
        h = F.gelu(torch.bmm(x, w1) + (pi @ self.b1).unsqueeze(1))             # (B, T, H)
        return torch.bmm(h, w2) + (pi @ self.b2).unsqueeze(1)


class StyleAwareBlock(nn.Module):
    def __init__(self, cfg: VastConfig):
        super().__init__()
        d = cfg.d_model
        self.ln1 = nn.LayerNorm(d)
        self.attn = SelfAttention(d, cfg.n_heads, cfg.attn_dropout)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = DynamicFFN(d, cfg.ff_mult * d, cfg.code_dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), allowed))
        return x + self.drop(self.ffn(self.ln2(x), z))


class StyleAwareDecoder(nn.Module):
    """PPG (B, 4T, P) + style code (B, Z) -> expression + pose (B, T, D), normalized units.

    Same call signatures as VAST's :class:`HybridDecoder` (``forward`` for training,
    ``generate`` for inference), so :class:`VastModel`'s loss and batching apply unchanged.
    """

    def __init__(self, cfg: VastConfig):
        super().__init__()
        self.cfg = cfg
        self.content = ContentEncoder(cfg)          # PPG -> (B, T, d), style added to its input
        self.blocks = nn.ModuleList(StyleAwareBlock(cfg) for _ in range(cfg.content_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.out_dim)

    def _predict(self, ppg: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.content(ppg, mask, z)                                         # (B, T, d)
        allowed = band_allowed(mask, self.cfg.content_window)
        for block in self.blocks:
            h = block(h, allowed, z)
        return self.head(self.ln_f(h))                                         # (B, T, D)

    def forward(self, ppg, mask, z, target, ss_prob: float = 0.0, noise: float = 0.0) -> torch.Tensor:
        return self._predict(ppg, mask, z)           # non-autoregressive: no teacher forcing

    @torch.no_grad()
    def generate(self, ppg, mask, z, hold=None, hold_values=None) -> torch.Tensor:
        y = self._predict(ppg, mask, z)
        if hold is not None:
            y = torch.where(hold.unsqueeze(1), hold_values.unsqueeze(-2) if hold_values.dim() == 2 else hold_values, y)
        return y


class StyleTalkModel(VastModel):
    """VAST's style encoder + a deterministic style code + the style-aware decoder."""

    def __init__(self, cfg: VastConfig):
        if cfg.enhancer or not cfg.style:
            from vastbench.errors import VastbenchError

            raise VastbenchError("the StyleTalk-style model takes a deterministic style code: enhancer=False, style=True")
        super().__init__(cfg)
        self.decoder = StyleAwareDecoder(cfg)


def make_config(preset: str = "quick", **overrides) -> VastConfig:
    """VAST's preset with the deterministic style head and a non-autoregressive decoder."""
    from vastbench.vast.config import make_config as vast_config

    # No prompt-statistics skip: StyleTalk has none, and the comparison with VAST should show it.
    return vast_config(preset, "no_enhancer", decoder="nar", **{"stats_skip": False, **overrides})
