"""Style encoder: a prompt's expression + pose sequence -> one style feature.

Any prompt length >= 1 s works, batched with padding masks.  There are no
absolute positions: style is a property of the whole prompt and must not depend
on where in the prompt a gesture happens (and prompts at inference are often
longer than any training window).  The convolutional front-end gives every frame
its local dynamics (velocity, rhythm) before attention mixes the whole prompt.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vastbench.vast.config import VastConfig
from vastbench.vast.layers import Transformer, padding_allowed


class StyleEncoder(nn.Module):
    def __init__(self, cfg: VastConfig):
        super().__init__()
        d = cfg.d_model
        self.conv1 = nn.Conv1d(cfg.out_dim, d, kernel_size=5, padding=2)
        self.conv2 = nn.Conv1d(d, d, kernel_size=5, padding=2)
        self.transformer = Transformer(d, cfg.n_heads, cfg.style_layers, cfg.ff_mult, cfg.dropout,
                                       cfg.attn_dropout)
        self.score = nn.Linear(d, 1)       # attention pooling: one weight per frame
        self.out = nn.Linear(d, cfg.style_dim)

    def forward(self, prompt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # prompt (B, Tp, D) normalized, zeros on padding; mask (B, Tp) -> (B, S)
        keep = mask.unsqueeze(1).to(prompt.dtype)                      # (B, 1, Tp)
        # Re-zero padding between convolutions, so the second sees the zero padding
        # a lone clip would see (batched == one at a time).
        h = F.gelu(self.conv1(prompt.transpose(1, 2))) * keep          # (B, d, Tp)
        h = F.gelu(self.conv2(h)).transpose(1, 2)                      # (B, Tp, d)
        h = self.transformer(h, padding_allowed(mask))                 # (B, Tp, d)
        logits = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))  # (B, Tp)
        w = torch.softmax(logits, dim=1).unsqueeze(-1)                 # (B, Tp, 1)
        return self.out((w * h).sum(1))                                # (B, S)
