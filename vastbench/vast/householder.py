"""Householder flow (Tomczak & Welling, 2016): K volume-preserving reflections z0 -> zK.

    v_1 = Linear(h)              h: the posterior encoder's last hidden state
    v_{k+1} = Linear_k(v_k)      each reflection vector from the previous one
    H_k = I - 2 v_k v_kᵀ / ‖v_k‖²
    z_k = H_k z_{k-1}

Each H_k is orthogonal and symmetric, so |det H_k| = 1 and the log-det terms of
Eq. 6/7 vanish.  We still compute them (matrix determinant lemma:
det(I - 2 v vᵀ/‖v‖²) = 1 - 2 vᵀv/‖v‖²) so that the loss is Eq. 7 as written and a
test can check them against ``torch.linalg.slogdet`` of the explicit matrices.
Reflections are applied as vector updates; the Z x Z matrices are only built by
``matrices`` (for tests and analysis).
"""

from __future__ import annotations

import torch
import torch.nn as nn

_EPS = 1e-12   # guards ‖v‖² = 0 (H is undefined there; a zero v is measure-zero in practice)


class HouseholderFlow(nn.Module):
    def __init__(self, hidden_dim: int, latent_dim: int, steps: int):
        super().__init__()
        self.steps = steps
        self.first = nn.Linear(hidden_dim, latent_dim) if steps > 0 else None
        self.next = nn.ModuleList(nn.Linear(latent_dim, latent_dim) for _ in range(max(steps - 1, 0)))

    def vectors(self, h: torch.Tensor) -> list[torch.Tensor]:
        """(B, hidden) -> K reflection vectors, each (B, Z)."""
        if self.steps == 0:
            return []
        vs = [self.first(h)]
        for lin in self.next:
            vs.append(lin(vs[-1]))
        return vs

    def forward(self, z0: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z0 (B, Z) or (N, B, Z) samples; h (B, hidden) -> (zK like z0, sum_k log|det H_k| (B,))."""
        z = z0
        log_det = torch.zeros(h.shape[0], device=h.device, dtype=z0.dtype)
        for v in self.vectors(h):
            sq = (v * v).sum(-1, keepdim=True).clamp_min(_EPS)          # (B, 1)
            z = z - 2.0 * v * (z * v).sum(-1, keepdim=True) / sq         # (.., B, Z)
            log_det = log_det + torch.log(torch.abs(1.0 - 2.0 * (v * v).sum(-1) / sq.squeeze(-1)))
        return z, log_det

    def matrices(self, h: torch.Tensor) -> torch.Tensor:
        """(B, hidden) -> (B, K, Z, Z): the explicit H_k, in order of application."""
        mats = []
        for v in self.vectors(h):
            eye = torch.eye(v.shape[-1], device=v.device, dtype=v.dtype)
            outer = v.unsqueeze(-1) * v.unsqueeze(-2)                    # (B, Z, Z)
            sq = (v * v).sum(-1).clamp_min(_EPS)[:, None, None]
            mats.append(eye - 2.0 * outer / sq)
        if not mats:
            return h.new_zeros(h.shape[0], 0, 0, 0)
        return torch.stack(mats, dim=1)
