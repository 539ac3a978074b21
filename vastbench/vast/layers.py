"""Small building blocks shared by the VAST modules: masks, pooling, a transformer.

Mask convention everywhere in ``vastbench.vast``: a boolean ``mask`` is True on
valid frames and False on padding.  Padded frames hold zeros, so convolutions
see the same zero padding at the end of a short clip whether it is alone or in
a batch; attention never lets a valid frame look at padding.  Together these
make batched outputs equal to one-at-a-time outputs.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on valid frames."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, C), (B, T) -> (B, C): mean over valid frames."""
    w = mask.to(x.dtype).unsqueeze(-1)                      # (B, T, 1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


def upsample_mask(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, T) video-frame mask -> (B, factor*T) mask at the PPG rate."""
    return mask.repeat_interleave(factor, dim=1)


class SelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        # x (B, T, d); allowed (B, 1, T, T) bool: query t may attend key s.
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, h, T, dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, d))


class Block(nn.Module):
    """Pre-norm transformer block (as in nanoGPT).  ``attn_dropout``: dropout on the attention weights
    (default: ``dropout``)."""

    def __init__(self, d: int, n_heads: int, ff_mult: int, dropout: float, attn_dropout: float | None = None):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = SelfAttention(d, n_heads, dropout if attn_dropout is None else attn_dropout)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, ff_mult * d), nn.GELU(), nn.Linear(ff_mult * d, d), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), allowed))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """A stack of blocks + final LayerNorm; attention restricted by ``allowed``."""

    def __init__(self, d: int, n_heads: int, n_layers: int, ff_mult: int, dropout: float,
                 attn_dropout: float | None = None):
        super().__init__()
        self.blocks = nn.ModuleList(Block(d, n_heads, ff_mult, dropout, attn_dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, allowed)
        return self.ln_f(x)


def padding_allowed(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, 1, T, T): every query attends every valid key."""
    return mask[:, None, None, :].expand(-1, 1, mask.shape[1], -1)


def band_allowed(mask: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T) -> (B, 1, T, T): attend valid keys within +-window frames.

    A padded query attends the padded keys of its band (itself at least), so no
    row is empty (an empty row is NaN, and 0 * NaN would leak into valid frames).
    """
    T = mask.shape[1]
    pos = torch.arange(T, device=mask.device)
    band = (pos[:, None] - pos[None, :]).abs() <= window                 # (T, T)
    key_ok = mask[:, None, :] | ~mask[:, :, None]                        # (B, T, T)
    return (band[None] & key_ok).unsqueeze(1)
