"""VAST: style encoder -> variational style enhancer -> hybrid expression decoder.

Everything outside the model is in data units (blendshape weights, radians,
whatever the data uses); inside, every channel is standardized with the train
set's mean and std, which the model keeps as buffers so a checkpoint carries
them.  The loss is computed in standardized units, so no channel dominates by
its scale.

Batch layout (``forward`` / ``loss``; masks are True on valid frames):
    x            (B, T, D)     target expression + pose
    mask         (B, T)
    ppg          (B, 4T, P)    driving speech (the target's)
    prompt       (B, Tp, D)    style prompt (another clip of the same style)
    prompt_mask  (B, Tp)
    prompt_ppg   (B, 4Tp, P)   the prompt's own speech (optional)
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from vastbench.errors import VastbenchError
from vastbench.vast.config import VastConfig
from vastbench.vast.decoder import HybridDecoder
from vastbench.vast.enhancer import StyleCode, build_style_head
from vastbench.vast.inputs import check_ppg, check_prompt, check_prompt_ppg, is_silent, pad_stack
from vastbench.vast.layers import upsample_mask
from vastbench.vast.style_encoder import StyleEncoder

log = logging.getLogger(__name__)

# Bumped whenever the same config builds a different network (cache keys of trained models include it).
# 2: the prompt-statistics skip (VastConfig.stats_skip).
# 3: articulator spread, exact statistics transfer, free-running scheduled sampling.
# 4: the articulators' spread is no longer forced by the exact transfer (learned exponent).
# 5: the exact transfer measures the output's spread by its mean absolute deviation.
MODEL_VERSION = 5


class VastModel(nn.Module):
    def __init__(self, cfg: VastConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.out_dim
        self.style_encoder = StyleEncoder(cfg)
        self.enhancer = build_style_head(cfg)
        self.decoder = HybridDecoder(cfg)
        if cfg.recon == "gaussian":
            self.log_scale = nn.Parameter(torch.zeros(D))     # per-channel σ of p(X | zK, A)
        self.register_buffer("x_mean", torch.zeros(D))
        self.register_buffer("x_std", torch.ones(D))
        self.register_buffer("rest", torch.zeros(D))          # standardized rest face (silence rule)
        self.register_buffer("skip_idx", torch.tensor(cfg.skip_channels, dtype=torch.long), persistent=False)
        if cfg.skip_channels and not cfg.stats_match:
            # How much of the prompt's mean each skip channel passes on, and the exponent of its spread
            # (learned; both start at 1: the output starts as the prompt's mean and spread).
            self.skip_gain = nn.Parameter(torch.ones(len(cfg.skip_channels)))
            self.skip_spread = nn.Parameter(torch.ones(len(cfg.skip_channels)))
        self.register_buffer("spread_idx", torch.tensor(cfg.spread_channels, dtype=torch.long), persistent=False)
        if cfg.spread_channels:
            self.art_spread = nn.Parameter(torch.ones(len(cfg.spread_channels)))
        matched = torch.zeros(D, dtype=torch.bool)         # channels standardized by match_stats
        matched[list(cfg.skip_channels)] = True
        self.register_buffer("matched", matched, persistent=False)
        weights = torch.ones(D)
        weights[list(cfg.mouth_channels)] = cfg.mouth_weight
        self.register_buffer("channel_weight", weights, persistent=False)

    # ------------------------------------------------------------------ units
    def set_normalizer(self, mean: Any, std: Any, rest: Any | None = None) -> None:
        """Train-set statistics, (D,) each; ``rest`` in data units (mean face over silent frames)."""
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=self.x_mean.device)  # noqa: E731
        self.x_mean.copy_(t(mean))
        # A constant channel (std 0) would divide by zero; 1e-4 keeps it at 0 after standardizing.
        self.x_std.copy_(t(std).clamp_min(1e-4))
        self.rest.copy_(self.normalize(t(rest)) if rest is not None else torch.zeros_like(self.rest))

    def normalize(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        z = (x - self.x_mean) / self.x_std
        return z if mask is None else torch.where(mask.unsqueeze(-1), z, torch.zeros_like(z))

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.x_std + self.x_mean

    @property
    def device(self) -> torch.device:
        return self.x_mean.device

    # ------------------------------------------------------------------ style
    def encode_style(self, prompt: torch.Tensor, prompt_mask: torch.Tensor, prompt_ppg: torch.Tensor | None = None,
                     sample: bool = False, eps: torch.Tensor | None = None,
                     has_speech: torch.Tensor | None = None) -> StyleCode:
        """prompt (B, Tp, D) data units -> StyleCode (z: (B, Z))."""
        if not self.cfg.style:  # the neutral reference: the prompt is ignored
            zero = prompt.new_zeros(prompt.shape[0])
            return StyleCode(z=prompt.new_zeros(prompt.shape[0], self.cfg.latent_dim), kl=zero, kl_closed=zero,
                             log_det=zero)
        feat = self.style_encoder(self.normalize(prompt, prompt_mask), prompt_mask)          # (B, S)
        ppg_mask = upsample_mask(prompt_mask, self.cfg.ppg_per_frame) if prompt_ppg is not None else None
        return self.enhancer(feat, prompt_ppg, ppg_mask, sample, eps, has_speech)

    SPREAD_FLOOR = 0.1   # standardized units: a channel that is still in the prompt is not blown up

    def with_prompt_stats(self, z: torch.Tensor, prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        """zK (B, Z) ++ the prompt's mean (B, M) and log spread (B, M) of the skip channels, standardized:
        the code the decoder is conditioned on (C = Z + 2M)."""
        if not self.cfg.skip_channels:
            return z
        keep = prompt_mask.unsqueeze(-1).to(z.dtype)                                          # (B, Tp, 1)
        n = keep.sum(1).clamp_min(1.0)                                                         # (B, 1)
        standardized = self.normalize(prompt, prompt_mask).to(z.dtype)                        # (B, Tp, D)

        def stats(idx):
            norm = standardized[..., idx]                                                      # (B, Tp, M)
            mean = (norm * keep).sum(1) / n                                                    # (B, M)
            var = (((norm - mean.unsqueeze(1)) ** 2) * keep).sum(1) / n
            return mean, 0.5 * torch.log(var.clamp_min(self.SPREAD_FLOOR ** 2))               # (B, M) each

        mean, log_spread = stats(self.skip_idx)
        parts = [z, mean, log_spread]
        if self.cfg.spread_channels:
            parts.append(stats(self.spread_idx)[1])                                            # (B, A)
        return torch.cat(parts, dim=-1)

    def affine(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C) -> offset, scale (B, D) each, standardized: data = offset + scale * decoder units.

        Skip channels: offset = gain * prompt mean, scale = prompt spread ** exponent; elsewhere 0 and 1,
        so without the skip the decoder works in the plain standardized units."""
        B, D, Z = code.shape[0], self.cfg.out_dim, self.cfg.latent_dim
        off, scale = code.new_zeros(B, D), code.new_ones(B, D)
        if not self.cfg.skip_channels:
            return off, scale
        M = len(self.cfg.skip_channels)
        mean, log_spread = code[:, Z:Z + M], code[:, Z + M:Z + 2 * M]
        exact = self.cfg.stats_match  # exact transfer: gain and exponent 1, not learned (articulators: learned)
        off = off.index_copy(1, self.skip_idx, mean if exact else mean * self.skip_gain.to(code.dtype))
        scale = scale.index_copy(1, self.skip_idx,
                                 torch.exp(log_spread if exact else log_spread * self.skip_spread.to(code.dtype)))
        if self.cfg.spread_channels:
            art = code[:, Z + 2 * M:Z + 2 * M + len(self.cfg.spread_channels)]
            scale = scale.index_copy(1, self.spread_idx, torch.exp(art * self.art_spread.to(code.dtype)))
        return off, scale

    MATCH_FLOOR = 0.05   # decoder units: a (nearly) still output channel is amplified at most 20x
    MAD_TO_STD = 1.2533  # sqrt(pi / 2): mean absolute deviation -> std, for a Gaussian

    def match_stats(self, local: torch.Tensor, mask: torch.Tensor, hold: torch.Tensor | None = None) -> torch.Tensor:
        """``stats_match``: (B, T, D) decoder units -> the same, with every skip channel standardized over the valid
        frames of its sequence (mean 0, spread 1, the spread from the mean absolute deviation); the articulators,
        channels pinned by ``hold`` (B, D) and padding are left as they are.  After ``affine`` a skip channel then
        has exactly the prompt's mean and spread (AdaIN over time, Huang & Belongie 2017).  The articulators' spread
        is not forced: how far the jaw opens depends on the words as well as the style (measured: forcing it cost
        lip sync, docs/vast.md)."""
        if not (self.cfg.stats_match and self.cfg.skip_channels):
            return local
        valid = mask.unsqueeze(-1).to(local.dtype)                                             # (B, T, 1)
        n = valid.sum(1, keepdim=True).clamp_min(1.0)                                          # (B, 1, 1)
        mu = (local * valid).sum(1, keepdim=True) / n                                          # (B, 1, D)
        # The output's spread is measured as sqrt(pi / 2) * mean |x - mu| (the std of a Gaussian), not as its std:
        # with the std, L1 training found it cheapest to put the spread it is forced to have into one spike (a
        # spike adds to the std quadratically, to the L1 error only linearly) -- a jump in the first two frames
        # of every clip (|z| 5.9).  With the mean deviation a spike buys no spread for free (|z| 2.6).
        sd = (self.MAD_TO_STD * ((local - mu).abs() * valid).sum(1, keepdim=True) / n).clamp_min(self.MATCH_FLOOR)
        out = torch.where(self.matched.view(1, 1, -1), (local - mu) / sd, local)
        keep = ~mask.unsqueeze(-1)
        if hold is not None:
            keep = keep | hold.unsqueeze(1)
        return torch.where(keep, local, out)

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict, ss_prob: float = 0.0,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """-> pred (B, T, D) in data units, aux (standardized pred/target, StyleCode).

        The style code is a posterior sample in training mode or when ``generator`` is given
        (seeded noise, for validation); otherwise the posterior mean.
        """
        x, mask = batch["x"], batch["mask"]
        sample = self.cfg.enhancer and (self.training or generator is not None)
        eps = None
        if sample and generator is not None:
            eps = torch.randn(x.shape[0], self.cfg.latent_dim, generator=generator).to(x.device)
        style = self.encode_style(batch["prompt"], batch["prompt_mask"], batch.get("prompt_ppg"),
                                  sample=sample, eps=eps)
        target = self.normalize(x, mask)                                                       # (B, T, D)
        code = self.with_prompt_stats(style.z.to(target.dtype), batch["prompt"], batch["prompt_mask"])  # (B, C)
        off, scale = (a.unsqueeze(1) for a in self.affine(code))                               # (B, 1, D) each
        # The decoder models the target in the prompt's own units (centred on its mean, in its spread).
        local = torch.where(mask.unsqueeze(-1), (target - off) / scale, torch.zeros_like(target))
        noise = self.cfg.ar_input_noise if self.training else 0.0
        pred = self.decoder(batch["ppg"], mask, code, local, ss_prob, noise)                   # (B, T, D)
        pred = self.match_stats(pred, mask) * scale + off
        return self.denormalize(pred), {"pred": pred, "target": target, "style": style}

    def beta(self, step: int) -> float:
        """Linear KL warm-up: 0 -> kl_weight over kl_warmup_steps."""
        w = self.cfg.kl_warmup_steps
        return self.cfg.kl_weight * (min(1.0, step / w) if w > 0 else 1.0)

    def ss_prob(self, step: int) -> float:
        """Scheduled-sampling probability at ``step`` (0 before ss_start, ss_max after ss_end)."""
        c = self.cfg
        if not c.uses_ar or c.ss_max <= 0 or step <= c.ss_start:
            return 0.0
        return c.ss_max * min(1.0, (step - c.ss_start) / max(c.ss_end - c.ss_start, 1))

    def loss(self, batch: dict, step: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Eq. 7 (negated, per frame): recon(X | zK, A) + velocity + beta(step) * KL, plus the moment term.
        'loss' carries grad."""
        ss = self.ss_prob(step) if self.training else 0.0
        _, aux = self.forward(batch, ss_prob=ss, generator=generator)
        pred, target, style = aux["pred"].float(), aux["target"], aux["style"]
        valid = batch["mask"].unsqueeze(-1).float()                                            # (B, T, 1)
        err = self._recon_error(pred, target)                                                 # (B, T, D)
        recon = self._weighted_mean(err, valid)
        dv = (pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])                 # (B, T-1, D)
        velocity = self._weighted_mean(dv.abs(), valid[:, 1:] * valid[:, :-1])
        kl = style.kl.mean()                                                                   # nats / sequence
        # Spread the KL over the frames x channels the reconstruction averages over, so
        # kl_weight = 1 is Eq. 7's ELBO (unit-scale likelihood in standardized units).
        kl_per_element = style.kl.sum() / (valid.sum().clamp_min(1.0) * pred.shape[-1])
        beta = self.beta(step)
        moments = self._moment_error(pred, target, valid) if self.cfg.moment_weight > 0 else recon.new_zeros(())
        out = {"loss": recon + self.cfg.velocity_weight * velocity + beta * kl_per_element
               + self.cfg.moment_weight * moments}
        logged = {"recon": recon, "velocity": velocity, "moments": moments, "kl": kl, "kl_closed": style.kl_closed.mean(),
                  "log_det": style.log_det.mean(), **self._group_errors(err, valid)}
        out.update({k: v.detach() for k, v in logged.items()})
        out["beta"] = torch.tensor(beta)
        out["ss_prob"] = torch.tensor(ss)
        return out

    def _recon_error(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.cfg.recon == "l1":
            return (pred - target).abs()
        # Gaussian NLL with a learned per-channel scale (constant 0.5 log 2π dropped).
        return 0.5 * ((pred - target) / self.log_scale.exp()).pow(2) + self.log_scale

    @staticmethod
    def _moment_error(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean over sequences and channels of |spread difference| + |speed difference| (standardized)."""
        def moments(x):  # (B, T, D) -> spread, speed (B, D)
            n = valid.sum(1).clamp_min(2.0)                                                    # (B, 1)
            mu = (x * valid).sum(1) / n
            spread = ((((x - mu.unsqueeze(1)) ** 2) * valid).sum(1) / n + 1e-6).sqrt()
            pair = valid[:, 1:] * valid[:, :-1]
            speed = ((x[:, 1:] - x[:, :-1]).abs() * pair).sum(1) / pair.sum(1).clamp_min(1.0)
            return spread, speed

        (sp, vp), (st, vt) = moments(pred), moments(target)
        return ((sp - st).abs() + (vp - vt).abs()).mean()

    def _weighted_mean(self, err: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # err (B, T, D), valid (B, T, 1) -> scalar: mean over valid frames, channel-weighted
        w = self.channel_weight
        return (err * valid * w).sum() / (valid.sum().clamp_min(1.0) * w.sum())

    def _group_errors(self, err: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        groups = {"mouth": self.cfg.mouth_channels, "upper": self.cfg.upper_channels, "pose": self.cfg.pose_channels}
        out = {}
        for name, idx in groups.items():
            if idx:
                e = err[..., list(idx)]
                out[f"recon_{name}"] = (e * valid).sum() / (valid.sum().clamp_min(1.0) * len(idx))
        return out

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(self, prompt_X: Any, prompt_mask: Any, ppg: Any, seed: int | None = None, sample: bool = False,
                 *, prompt_ppg: Any = None, style: torch.Tensor | None = None) -> np.ndarray:
        """One request: prompt (Tp, D) [+ (Tp,) mask], driving PPG (4T, P) -> (T, D) float32, data units.

        ``sample=False``: the posterior mean styles the output (deterministic).
        ``sample=True``: a posterior sample, reproducible with ``seed``.
        ``style``: a code (Z,) from ``style_code``/``interpolate`` used instead of the prompt.
        """
        return self.generate_batch([prompt_X], [ppg], seeds=[seed], sample=sample, prompt_masks=[prompt_mask],
                                   prompt_ppgs=[prompt_ppg], styles=[style])[0]

    @torch.no_grad()
    def generate_batch(self, prompts: Sequence[Any], ppgs: Sequence[Any], seeds: Sequence[int | None] | None = None,
                       sample: bool = False, prompt_masks: Sequence[Any] | None = None,
                       prompt_ppgs: Sequence[Any] | None = None,
                       styles: Sequence[torch.Tensor | None] | None = None) -> list[np.ndarray]:
        """Several requests at once (padded, masked): the same outputs as one at a time, [(T_i, D)]."""
        n = len(ppgs)
        seeds, prompt_masks, prompt_ppgs, styles = (_per_request(a, n, name) for a, name in (
            (seeds, "seeds"), (prompt_masks, "prompt_masks"), (prompt_ppgs, "prompt_ppgs"), (styles, "styles")))
        was_training = self.training
        self.eval()
        try:
            z = self._codes(prompts, prompt_masks, prompt_ppgs, styles, seeds, sample)          # (B, Z)
            drives = [check_ppg(p, self.cfg, f"request {i}: driving PPG") for i, p in enumerate(ppgs)]
            ppg, ppg_mask = pad_stack(drives)                                                   # (B, 4T, P)
            mask = ppg_mask[:, :: self.cfg.ppg_per_frame]                                        # (B, T)
            hold = self._silence_hold(drives)                                                    # (B, D)
            off, scale = self.affine(z)                                                          # (B, D) each
            out = self.decoder.generate(ppg.to(self.device), mask.to(self.device), z, hold.to(self.device),
                                        (self.rest - off) / scale)
            out = self.match_stats(out, mask.to(self.device), hold.to(self.device))
            out = out * scale.unsqueeze(1) + off.unsqueeze(1)
            out = self.denormalize(out).float().cpu()
        finally:
            self.train(was_training)
        return [out[i, : len(d) // self.cfg.ppg_per_frame].numpy() for i, d in enumerate(drives)]

    def _silence_hold(self, drives: list[torch.Tensor]) -> torch.Tensor:
        silent = torch.tensor([is_silent(d, self.cfg) for d in drives])
        for i in silent.nonzero().flatten().tolist():
            log.warning("request %d: the driving PPG is silence in every frame; generating a listening face "
                        "(mouth at rest, upper face and head still styled)", i)
        mouth = torch.zeros(self.cfg.out_dim, dtype=torch.bool)
        mouth[list(self.cfg.mouth_channels)] = True
        return silent[:, None] & mouth[None, :]

    def _codes(self, prompts, prompt_masks, prompt_ppgs, styles, seeds, sample) -> torch.Tensor:
        """Style codes (B, C): given ones as they are, the rest encoded from their prompts in one batch."""
        Z = self.cfg.code_dim
        codes: list[torch.Tensor | None] = [None if s is None else torch.as_tensor(s, dtype=torch.float32).flatten()
                                            for s in styles]
        for i, c in enumerate(codes):
            if c is not None and c.numel() != Z:
                raise VastbenchError(f"request {i}: style code has {c.numel()} values, this model's codes have {Z}; "
                                     f"make it with this model's style_code()")
        todo = [i for i, c in enumerate(codes) if c is None]
        if todo:
            if len(prompts) != len(styles):
                raise VastbenchError(f"{len(prompts)} prompts for {len(styles)} requests; give one prompt per request")
            enc = self._encode_prompts([prompts[i] for i in todo], [prompt_masks[i] for i in todo],
                                       [prompt_ppgs[i] for i in todo], [seeds[i] for i in todo], sample, todo)
            for j, i in enumerate(todo):
                codes[i] = enc[j]
        return torch.stack([c.to(self.device) for c in codes])

    def _encode_prompts(self, prompts, masks, prompt_ppgs, seeds, sample, ids) -> torch.Tensor:
        checked = [check_prompt(p, m, self.cfg, f"request {i}: style prompt") for p, m, i in zip(prompts, masks, ids)]
        prompt, pmask = pad_stack([x for x, _ in checked])                                    # (B, Tp, D)
        speech, has = None, None
        if any(p is not None for p in prompt_ppgs):
            k, P = self.cfg.ppg_per_frame, self.cfg.ppg_dim
            rows = [x.new_zeros(k * len(x), P) if p is None else
                    check_prompt_ppg(p, keep, self.cfg, f"request {i}: prompt PPG")
                    for (x, keep), p, i in zip(checked, prompt_ppgs, ids)]
            speech = pad_stack(rows)[0].to(self.device)                                       # (B, 4Tp, P)
            has = torch.tensor([p is not None for p in prompt_ppgs], device=self.device)
        eps = None
        if sample and self.cfg.enhancer:
            eps = torch.stack([_noise(s, self.cfg.latent_dim) for s in seeds]).to(self.device)
        prompt, pmask = prompt.to(self.device), pmask.to(self.device)
        code = self.encode_style(prompt, pmask, speech, sample=sample, eps=eps, has_speech=has)
        return self.with_prompt_stats(code.z.float(), prompt, pmask)

    @torch.no_grad()
    def style_code(self, prompt_X: Any, prompt_mask: Any = None, prompt_ppg: Any = None,
                   seed: int | None = None, sample: bool = False) -> torch.Tensor:
        """A prompt's style code (C,): zK (posterior mean unless ``sample``) ++ the prompt's channel statistics."""
        was_training = self.training
        self.eval()
        try:
            return self._encode_prompts([prompt_X], [prompt_mask], [prompt_ppg], [seed], sample, [0])[0].cpu()
        finally:
            self.train(was_training)

    @torch.no_grad()
    def interpolate(self, prompt_a: Any, prompt_b: Any, alpha: float, *, mask_a: Any = None, mask_b: Any = None,
                    ppg_a: Any = None, ppg_b: Any = None) -> torch.Tensor:
        """(1 - alpha) * code(a) + alpha * code(b), (Z,), from posterior means; pass it to
        ``generate(..., style=code)``.  alpha outside [0, 1] extrapolates (exaggerates a style)."""
        za, zb = self.style_code(prompt_a, mask_a, ppg_a), self.style_code(prompt_b, mask_b, ppg_b)
        return torch.lerp(za, zb, float(alpha))

    def describe(self) -> dict:
        return {"config": self.cfg.to_dict(), "parameters": count_parameters(self),
                "parameters_by_module": parameter_table(self)}


# ---------------------------------------------------------------------- helpers
def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module) -> dict[str, int]:
    """Parameters per top-level module (style_encoder, enhancer, decoder, ...)."""
    table = {name: count_parameters(child) for name, child in model.named_children()}
    direct = sum(p.numel() for name, p in model.named_parameters(recurse=False))
    if direct:
        table["(model)"] = direct
    return table


def _per_request(values: Sequence | None, n: int, name: str) -> list:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise VastbenchError(f"{name} has {len(values)} entries for {n} requests; give one per request (or None)")
    return values


def _noise(seed: int | None, dim: int) -> torch.Tensor:
    """eps ~ N(0, I) (dim,), drawn on the CPU from ``seed`` so a seed gives the same style on any device."""
    if seed is None:
        return torch.randn(dim)
    return torch.randn(dim, generator=torch.Generator().manual_seed(int(seed)))

