"""Variational style enhancer (supplementary section 1, Eq. 7).

Posterior q(z0 | X, A) = N(mu, diag(exp(logvar))) from the prompt's style feature
(X) and a pooled summary of the prompt's own speech (A: its PPG), the pair the
supplementary conditions on.  Knowing what was said lets the posterior tell
"mouth wide because of the phone" from "mouth wide because of the style".  A
prompt without audio uses a learned "no speech" summary, which training keeps
alive by dropping the prompt's speech at random (``prompt_speech_dropout``).

z0 -> zK by K Householder reflections; the prior is p(zK) = N(0, I); the KL of
Eq. 7 is estimated by Monte Carlo on the sample:
    KL ≈ log q0(z0) - sum_k log|det H_k| - log p(zK).
Because every H_k is orthogonal and N(0, I) is rotation invariant,
log p(zK) = log p(z0), so this estimator has the closed-form diagonal KL as its
expectation for *any* K; the flow changes what the decoder sees (zK has a full
covariance, H diag(σ²) Hᵀ), not the KL.  ``kl_estimator="closed"`` uses the
closed form (lower variance, same expectation).

The ablation without the enhancer (``enhancer=False``) is ``DeterministicStyle``:
the style feature projected to Z, no sampling, no KL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from vastbench.vast.config import VastConfig
from vastbench.vast.householder import HouseholderFlow
from vastbench.vast.layers import masked_mean

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class StyleCode:
    """What the style path hands the decoder, plus what the loss needs."""

    z: torch.Tensor                      # (B, Z) zK: the code the decoder sees
    kl: torch.Tensor                     # (B,) KL estimate used by the loss (zeros without enhancer)
    kl_closed: torch.Tensor              # (B,) closed-form KL(q0 || N(0, I))
    log_det: torch.Tensor                # (B,) sum_k log|det H_k| (≈ 0 for Householder)
    mu: torch.Tensor | None = None       # (B, Z) posterior mean of z0
    logvar: torch.Tensor | None = None   # (B, Z)
    z0: torch.Tensor | None = None       # (B, Z)


def kl_closed_form(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over Z: (..., Z) -> (...)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def kl_monte_carlo(eps: torch.Tensor, logvar: torch.Tensor, zK: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    """log q0(z0) - sum log|det| - log p(zK), with z0 = mu + exp(logvar/2) * eps: (..., Z) -> (...)."""
    log_q0 = -0.5 * (logvar + eps.pow(2) + _LOG_2PI).sum(-1)
    log_p = -0.5 * (zK.pow(2) + _LOG_2PI).sum(-1)
    return log_q0 - log_det - log_p


class SpeechSummary(nn.Module):
    """(B, 4Tp, P) prompt PPG -> (B, d): pooled phone content of the prompt."""

    def __init__(self, cfg: VastConfig):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(cfg.ppg_dim, cfg.d_model), nn.GELU(), nn.Linear(cfg.d_model, cfg.d_model))
        self.null = nn.Parameter(torch.zeros(cfg.d_model))   # "prompt has no audio"
        self.drop_prob = cfg.prompt_speech_dropout

    def forward(self, ppg: torch.Tensor | None, mask: torch.Tensor | None, batch: int,
                has_speech: torch.Tensor | None = None) -> torch.Tensor:
        """``has_speech`` (B,) bool marks prompts that came with audio (None: all of them)."""
        null = self.null.expand(batch, -1)                                  # (B, d)
        if ppg is None:
            return null
        pooled = masked_mean(self.proj(ppg), mask)                          # (B, d)
        keep = torch.ones(batch, 1, dtype=torch.bool, device=pooled.device) if has_speech is None \
            else has_speech.view(batch, 1)
        if self.training and self.drop_prob > 0:
            keep = keep & (torch.rand(batch, 1, device=pooled.device) >= self.drop_prob)
        return torch.where(keep, pooled, null)


class VariationalStyleEnhancer(nn.Module):
    def __init__(self, cfg: VastConfig):
        super().__init__()
        d, Z = cfg.d_model, cfg.latent_dim
        self.cfg = cfg
        self.speech = SpeechSummary(cfg)
        self.encoder = nn.Sequential(nn.Linear(cfg.style_dim + d, d), nn.GELU(), nn.Linear(d, d), nn.GELU())
        self.mu = nn.Linear(d, Z)
        self.logvar = nn.Linear(d, Z)
        self.flow = HouseholderFlow(d, Z, cfg.flow_steps)

    def posterior(self, style: torch.Tensor, speech: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # style (B, S), speech (B, d) -> mu (B, Z), logvar (B, Z), h (B, d): h also feeds the flow
        h = self.encoder(torch.cat([style, speech], dim=-1))
        # Clamp keeps exp(logvar) finite early in training (and in bf16 neighbours).
        return self.mu(h), self.logvar(h).clamp(-10.0, 6.0), h

    def forward(self, style: torch.Tensor, prompt_ppg: torch.Tensor | None, ppg_mask: torch.Tensor | None,
                sample: bool, eps: torch.Tensor | None = None, has_speech: torch.Tensor | None = None) -> StyleCode:
        """style (B, S) -> StyleCode.  ``sample``: z0 = mu + σ·eps (eps (B, Z) or (N, B, Z); drawn if None);
        otherwise z0 = mu, the posterior mean (the flow is linear in z, so zK = H mu is the mean of zK)."""
        with torch.autocast(device_type=style.device.type, enabled=False):   # KL terms in fp32
            style = style.float()
            ppg = None if prompt_ppg is None else prompt_ppg.float()
            speech = self.speech(ppg, ppg_mask, style.shape[0], has_speech)                # (B, d)
            mu, logvar, h = self.posterior(style, speech)
            if sample and eps is None:
                eps = torch.randn_like(mu)
            z0 = mu + (0.5 * logvar).exp() * eps if sample else mu             # (B, Z) or (N, B, Z)
            zK, log_det = self.flow(z0, h)
            closed = kl_closed_form(mu, logvar)                              # (B,)
            if sample and self.cfg.kl_estimator == "mc":
                kl = kl_monte_carlo(eps, logvar, zK, log_det)
            else:
                kl = closed - log_det
        return StyleCode(z=zK, kl=kl, kl_closed=closed, log_det=log_det, mu=mu, logvar=logvar, z0=z0)


class DeterministicStyle(nn.Module):
    """Ablation "no_enhancer": the style feature projected to a code, no sampling, no KL."""

    def __init__(self, cfg: VastConfig):
        super().__init__()
        self.proj = nn.Linear(cfg.style_dim, cfg.latent_dim)

    def forward(self, style: torch.Tensor, prompt_ppg: torch.Tensor | None, ppg_mask: torch.Tensor | None,
                sample: bool, eps: torch.Tensor | None = None, has_speech: torch.Tensor | None = None) -> StyleCode:
        z = self.proj(style)                                                 # (B, Z)
        zeros = z.new_zeros(z.shape[0])
        return StyleCode(z=z, kl=zeros, kl_closed=zeros, log_det=zeros)


def build_style_head(cfg: VastConfig) -> nn.Module:
    return VariationalStyleEnhancer(cfg) if cfg.enhancer else DeterministicStyle(cfg)
