"""Hybrid expression decoder: speech content (NAR) + style dynamics (AR).

Content path (non-autoregressive): the PPG around each video frame -> two
convolutions (the second folds the 4 PPG frames of each video frame into one,
so frame t sees PPG frames 4t-4 .. 4t+7) -> transformer layers that attend
+-``content_window`` frames.  The band keeps the path length-invariant: trained
on 2-3 s windows, it behaves the same on a 20 s clip.  The style code is added
to its input so that a style's mouth amplitude can show without the AR path.

Autoregressive path: a GRU over time fed the previous output frame, the content
features and the style code; it predicts the whole frame (expression + pose).

Combination (``decoder``):
    "hybrid": mouth channels = NAR mouth + AR residual; the rest from the AR path
    "nar":    every channel from the NAR head (no recurrence)
    "ar":     every channel from the AR path (no NAR base)

Training runs the GRU teacher-forced over the whole window (one fused call),
with scheduled sampling done in two passes: a no-grad pass predicts every
frame, then a fraction of the fed-back frames is replaced by those predictions
and the pass is repeated with gradients.  The no-grad pass is free-running
(``ss_mode="free"``, what inference feeds back) or teacher-forced
(``"parallel"``, Duckworth et al., 2019, "parallel scheduled sampling").
Inference is free-running, one frame at a time, any length.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from vastbench.vast.config import VastConfig
from vastbench.vast.layers import Transformer, band_allowed


class ContentEncoder(nn.Module):
    def __init__(self, cfg: VastConfig):
        super().__init__()
        d, k = cfg.d_model, cfg.ppg_per_frame
        self.front = nn.Sequential(
            nn.Conv1d(cfg.ppg_dim, d, kernel_size=9, padding=4), nn.GELU(),
            nn.Conv1d(d, d, kernel_size=k, stride=k), nn.GELU(),      # 100 Hz -> 25 fps
        )
        self.style = nn.Linear(cfg.code_dim, d)
        self.transformer = Transformer(d, cfg.n_heads, cfg.content_layers, cfg.ff_mult, cfg.dropout,
                                       cfg.attn_dropout)
        self.window = cfg.content_window

    def forward(self, ppg: torch.Tensor, mask: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # ppg (B, 4T, P) zeros on padding; mask (B, T); z (B, Z) -> (B, T, d)
        c = self.front(ppg.transpose(1, 2)).transpose(1, 2)          # (B, T, d)
        c = c + self.style(z).unsqueeze(1)
        return self.transformer(c, band_allowed(mask, self.window))


class HybridDecoder(nn.Module):
    def __init__(self, cfg: VastConfig):
        super().__init__()
        self.cfg = cfg
        d, D, Z, H = cfg.d_model, cfg.out_dim, cfg.code_dim, cfg.ar_hidden
        self.content = ContentEncoder(cfg)
        self.register_buffer("mouth", torch.tensor(cfg.mouth_channels, dtype=torch.long), persistent=False)
        n_nar = {"hybrid": len(cfg.mouth_channels), "nar": D, "ar": 0}[cfg.decoder]
        self.nar_head = nn.Linear(d, n_nar) if n_nar else None
        if cfg.uses_ar:
            # The GRU input is W_prev y_{t-1} + W_ctx [c_t, z]; split so the context
            # half is computed once for all frames, outside the free-running loop.
            self.ar_prev = nn.Linear(D, H, bias=False)
            self.ar_ctx = nn.Linear(d + Z, H)
            self.gru = nn.GRU(H, H, num_layers=cfg.ar_layers, batch_first=True)
            self.h0 = nn.Linear(Z, cfg.ar_layers * H)
            self.ar_out = nn.Linear(H + d, D)

    # ------------------------------------------------------------------ pieces
    def nar_base(self, c: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, T, D): the NAR prediction, zeros where the NAR path has no say."""
        B, T, _ = c.shape
        if self.cfg.decoder == "nar":
            return self.nar_head(c)
        base = c.new_zeros(B, T, self.cfg.out_dim)
        if self.cfg.decoder == "hybrid":
            base = base.index_copy(2, self.mouth, self.nar_head(c))
        return base

    def _context(self, c: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # (B, T, d), (B, Z) -> (B, T, H)
        return self.ar_ctx(torch.cat([c, z.unsqueeze(1).expand(-1, c.shape[1], -1)], dim=-1))

    def _hidden0(self, z: torch.Tensor) -> torch.Tensor:
        # (B, Z) -> (L, B, H): the style sets the GRU's starting state
        L, H = self.cfg.ar_layers, self.cfg.ar_hidden
        return torch.tanh(self.h0(z)).view(-1, L, H).transpose(0, 1).contiguous()

    def _teacher_forced(self, c, ctx, base, h0, prev):
        # prev (B, T, D): the frame fed back at each step -> (B, T, D)
        o, _ = self.gru(self.ar_prev(prev) + ctx, h0)                  # (B, T, H)
        return self.ar_out(torch.cat([o, c], dim=-1)) + base

    def _free_running(self, c, ctx, base, hidden, pin=lambda y: y):
        # (B, T, d), (B, T, H), (B, T, D), (L, B, H) -> (B, T, D), each frame fed the previous output.
        # ar_out(o ++ c) = W_o o + (W_c c + b): the part that does not depend on the loop is computed for all
        # frames at once.
        H = self.cfg.ar_hidden
        w_out_o, w_out_c = self.ar_out.weight[:, :H], self.ar_out.weight[:, H:]
        fixed = torch.nn.functional.linear(c, w_out_c, self.ar_out.bias) + base                  # (B, T, D)
        prev = base.new_zeros(base.shape[0], base.shape[2])             # (B, D) start frame: the mean face
        frames = []
        for t in range(c.shape[1]):
            o, hidden = self.gru((self.ar_prev(prev) + ctx[:, t]).unsqueeze(1), hidden)   # (B, 1, H)
            prev = pin(o[:, 0] @ w_out_o.T + fixed[:, t])                                 # (B, D)
            frames.append(prev)
        return torch.stack(frames, dim=1)

    # ------------------------------------------------------------------ training
    def forward(self, ppg: torch.Tensor, mask: torch.Tensor, z: torch.Tensor, target: torch.Tensor,
                ss_prob: float = 0.0, noise: float = 0.0) -> torch.Tensor:
        """Teacher-forced (with scheduled sampling) prediction of target (B, T, D), normalized units."""
        c = self.content(ppg, mask, z)                                  # (B, T, d)
        base = self.nar_base(c)                                         # (B, T, D)
        if not self.cfg.uses_ar:
            return base
        ctx, h0 = self._context(c, z), self._hidden0(z)
        prev = torch.cat([target.new_zeros(target[:, :1].shape), target[:, :-1]], dim=1)   # (B, T, D)
        if ss_prob > 0:
            with torch.no_grad():
                if self.cfg.ss_mode == "free":
                    first = self._free_running(c, ctx, base, h0)
                else:
                    first = self._teacher_forced(c, ctx, base, h0, prev)
            use_pred = torch.rand(prev.shape[:2] + (1,), device=prev.device) < ss_prob
            use_pred[:, 0] = False                                      # frame 0 is fed the start frame
            shifted = torch.cat([first[:, :1], first[:, :-1]], dim=1)
            prev = torch.where(use_pred, shifted, prev)
        if noise > 0:
            prev = prev + noise * torch.randn_like(prev)
        return self._teacher_forced(c, ctx, base, h0, prev)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(self, ppg: torch.Tensor, mask: torch.Tensor, z: torch.Tensor,
                 hold: torch.Tensor | None = None, hold_values: torch.Tensor | None = None) -> torch.Tensor:
        """Free-running: (B, 4T, P), (B, T), (B, Z) -> (B, T, D) normalized.

        ``hold`` (B, D) bool with ``hold_values`` (D,) or (B, D): channels pinned to a value in
        every frame (the silence rule: a silent request keeps its mouth at rest).
        The pinned values are also what is fed back, so the AR path stays consistent.
        """
        c = self.content(ppg, mask, z)
        base = self.nar_base(c)
        def pin(y):  # y (B, D) or (B, T, D); hold_values (D,) or (B, D)
            if hold is None:
                return y
            if y.dim() == 2:
                return torch.where(hold, hold_values, y)
            return torch.where(hold.unsqueeze(1), hold_values.unsqueeze(-2) if hold_values.dim() == 2 else hold_values, y)

        if not self.cfg.uses_ar:
            return pin(base)
        return self._free_running(c, self._context(c, z), base, self._hidden0(z), pin)
