"""The whole VAST architecture and its training recipe as one dataclass.

``VastConfig`` is what a checkpoint stores (``to_dict``) and what rebuilds the
model from the file alone (``from_dict``).  Ablations and presets are *data*:
named overrides of the base config, never code forks.

Shapes used across ``vastbench.vast``:
    B batch, T video frames (25 fps), 4T PPG frames (100 Hz), P phone classes,
    E expression channels, D = E + pose_dim target channels, Tp prompt frames,
    d ``d_model``, S ``style_dim``, Z ``latent_dim``, H ``ar_hidden``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from vastbench.errors import VastbenchError

DECODERS = ("hybrid", "nar", "ar")
RECON_LOSSES = ("l1", "gaussian")
KL_ESTIMATORS = ("mc", "closed")
SS_MODES = ("free", "parallel")


@dataclass(frozen=True)
class VastConfig:
    # ---- data contract (SynthTalk defaults; real data: E PCA coefficients)
    expr_dim: int = 11
    pose_dim: int = 6
    ppg_dim: int = 40
    ppg_per_frame: int = 4              # 100 Hz PPG / 25 fps video
    # Index groups into the expression channels.  Mouth channels drive the NAR
    # path and the mouth weight; upper-face channels are only reported apart.
    mouth_channels: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    upper_channels: tuple[int, ...] = (6, 7, 8, 9, 10)
    silence_index: int = 0              # PPG class of silence
    min_prompt_frames: int = 25         # 1 s at 25 fps

    # ---- architecture
    d_model: int = 64
    n_heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1                # residual and feed-forward dropout
    # Dropout on the attention weights.  Off: on a CPU its random numbers (one per query-key pair) were about
    # 20 ms of a 125 ms training step (docs/vast.md); the residual dropout stays.
    attn_dropout: float = 0.0
    style_layers: int = 2
    style_dim: int = 64                 # S: pooled style feature
    content_layers: int = 2
    content_window: int = 12            # frames each side a content frame attends to
    latent_dim: int = 16                # Z: style code
    ar_hidden: int = 128                # H
    ar_layers: int = 1

    # ---- ablation switches
    style: bool = True                  # False: no style input at all (the neutral avatar reference)
    enhancer: bool = True               # False: deterministic style code, no KL
    flow_steps: int = 4                 # K Householder steps; 0: diagonal Gaussian posterior
    decoder: str = "hybrid"             # "hybrid" | "nar" | "ar"
    # Prompt-statistics skip (our addition; the paper is silent): the prompt's mean and spread of every
    # channel except the speech articulators join the style code (z ++ mean ++ log spread), and the
    # decoder predicts those channels in the prompt's own units (output = mean + spread * decoder), an
    # AdaIN-like normalisation.  A level or an amplitude of a style never seen in training (a smile on
    # the other side, slower, wider head motion) then carries over instead of snapping to the nearest
    # training style.  Measured: docs/vast.md.
    stats_skip: bool = True
    articulators: tuple[int, ...] = (0, 1, 2, 5)   # jaw, round, stretch, press: their mean follows the words
    # The articulators' amplitude is style too (a reserved speaker opens the jaw less): with this on, their
    # prompt spread joins the code and scales their output (spread only, to a learned exponent: no mean).
    articulator_spread: bool = True
    # Exact statistics transfer (AdaIN on the output, over time): the decoder's output is standardized over the
    # generated frames, then every skip channel takes exactly the prompt's mean and spread.  Without it the
    # learned skip passes the prompt's statistics on only approximately, and for a style never seen in training
    # it falls back to the nearest training style.  The articulators are not forced (docs/vast.md).
    stats_match: bool = True

    # ---- loss (Eq. 7)
    recon: str = "l1"                   # "l1" | "gaussian" (learned per-channel scale)
    mouth_weight: float = 2.0
    velocity_weight: float = 1.0
    # Moment matching (our addition): per sequence and channel, |std(pred) - std(target)| and
    # |mean |velocity|(pred) - same(target)|.  Frame-wise L1 regresses motion that speech does not
    # predict (head sway, blinks, brow flicks) to a still median; this keeps its amplitude and
    # speed, which are style.  0 turns it off.  Measured: docs/vast.md.
    moment_weight: float = 1.0
    # beta after warm-up; 1 = the ELBO of Eq. 7 (the KL is spread over the frames x channels
    # the reconstruction averages over).  Below 1 because the unit-scale L1 likelihood is
    # flatter than the data's noise, which would otherwise over-weight the KL and collapse z.
    # Measured on SynthTalk quick (seen-style accuracy of outputs): 0.1 -> 0.28, 0.02 with full
    # scheduled sampling -> 0.41; smaller weights let the style code carry constant biases (smile, frown).
    kl_weight: float = 0.02
    kl_warmup_steps: int = 400
    kl_estimator: str = "mc"            # "mc" (Eq. 7 as written) | "closed"

    # ---- autoregressive training
    ss_start: int = 150                 # scheduled sampling: ramp the sampling prob ...
    ss_end: int = 700                   # ... linearly from 0 at ss_start to ss_max at ss_end
    # Fully free-running by the end: with 0.5 the AR path learned to copy constant offsets (a smile,
    # a frown) from the fed-back frame and lost them at inference, where it starts from the mean face.
    ss_max: float = 1.0
    # Where the sampled fed-back frames come from: "free" (a no-grad free-running pass, what inference feeds back)
    # or "parallel" (a teacher-forced pass; Duckworth et al. 2019).  Measured: with "parallel" the free-running
    # path at inference damped head motion to 24-50% of the truth's spread; with "free" 84-96%.
    ss_mode: str = "free"
    ar_input_noise: float = 0.3         # std of noise on the fed-back frame (normalized units)

    # ---- training recipe
    steps: int = 800                    # quick: 88-94 s on one thread (benchmarks/bench_vast_train.py)
    batch_size: int = 16
    lr: float = 2e-3
    lr_warmup: int = 100
    min_lr_ratio: float = 0.1           # cosine decay to lr * min_lr_ratio at `steps`
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    window_min: int = 48                # target window, frames
    window_max: int = 80
    prompt_max: int = 150               # prompt window, frames (min is min_prompt_frames)
    prompt_speech_dropout: float = 0.2  # train the "prompt without audio" path
    ckpt_every: int = 250
    eval_every: int = 250
    eval_batches: int = 4
    log_every: int = 50

    def __post_init__(self):
        # Dataclasses from JSON give lists; keep tuples so configs hash and compare.
        for name in ("mouth_channels", "upper_channels", "articulators"):
            object.__setattr__(self, name, tuple(int(i) for i in getattr(self, name)))
        self._validate()

    # ------------------------------------------------------------------ derived
    @property
    def out_dim(self) -> int:
        """D: expression + pose channels per frame."""
        return self.expr_dim + self.pose_dim

    @property
    def pose_channels(self) -> tuple[int, ...]:
        return tuple(range(self.expr_dim, self.out_dim))

    @property
    def skip_channels(self) -> tuple[int, ...]:
        """Channels whose prompt mean is carried straight to the output (empty without a style input)."""
        if not (self.style and self.stats_skip):
            return ()
        return tuple(c for c in range(self.out_dim) if c not in set(self.articulators))

    @property
    def spread_channels(self) -> tuple[int, ...]:
        """Channels whose prompt spread (only) scales the output: the articulators, with ``articulator_spread``."""
        if not (self.style and self.stats_skip and self.articulator_spread):
            return ()
        return self.articulators

    @property
    def code_dim(self) -> int:
        """What the decoder is conditioned on: zK (Z), the prompt's mean and log spread of each skip channel,
        the log spread of each spread channel."""
        return self.latent_dim + 2 * len(self.skip_channels) + len(self.spread_channels)

    @property
    def uses_ar(self) -> bool:
        return self.decoder in ("hybrid", "ar")

    # ------------------------------------------------------------------ (de)serialize
    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VastConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            from vastbench.registry import did_you_mean
            raise VastbenchError(f"unknown VAST config key '{unknown[0]}'{did_you_mean(unknown[0], known)}")
        # Checkpoints written before a switch existed were trained without it.
        for key, before in (("stats_skip", False), ("articulator_spread", False), ("stats_match", False),
                            ("ss_mode", "parallel"), ("attn_dropout", d.get("dropout", cls.dropout))):
            if key not in d:
                d = {**d, key: before}
        return cls(**d)

    def replace(self, **overrides) -> "VastConfig":
        return VastConfig.from_dict({**self.to_dict(), **overrides})

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        def bad(msg: str):
            raise VastbenchError(f"VAST config: {msg}")

        if self.decoder not in DECODERS:
            bad(f"decoder '{self.decoder}' is not one of {', '.join(DECODERS)}")
        if self.recon not in RECON_LOSSES:
            bad(f"recon '{self.recon}' is not one of {', '.join(RECON_LOSSES)}")
        if self.ss_mode not in SS_MODES:
            bad(f"ss_mode '{self.ss_mode}' is not one of {', '.join(SS_MODES)}")
        if self.kl_estimator not in KL_ESTIMATORS:
            bad(f"kl_estimator '{self.kl_estimator}' is not one of {', '.join(KL_ESTIMATORS)}")
        if self.flow_steps < 0:
            bad(f"flow_steps must be >= 0, got {self.flow_steps}")
        if self.d_model % self.n_heads:
            bad(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if any(i < 0 or i >= self.out_dim for i in self.articulators):
            bad(f"articulators {list(self.articulators)} must be indices in [0, out_dim={self.out_dim})")
        for name in ("mouth_channels", "upper_channels"):
            idx = getattr(self, name)
            if any(i < 0 or i >= self.expr_dim for i in idx) or len(set(idx)) != len(idx):
                bad(f"{name} {list(idx)} must be distinct indices in [0, expr_dim={self.expr_dim})")
        if self.decoder == "hybrid" and not self.mouth_channels:
            bad("the hybrid decoder needs mouth_channels (the NAR path predicts them); set them or use decoder='ar'")
        if not 0 <= self.silence_index < self.ppg_dim:
            bad(f"silence_index {self.silence_index} must be in [0, ppg_dim={self.ppg_dim})")
        if not 1 <= self.window_min <= self.window_max:
            bad(f"need 1 <= window_min <= window_max, got {self.window_min}, {self.window_max}")
        if self.prompt_max < self.min_prompt_frames:
            bad(f"prompt_max {self.prompt_max} must be >= min_prompt_frames {self.min_prompt_frames}")
        for name in ("expr_dim", "pose_dim", "ppg_dim", "ppg_per_frame", "d_model", "style_dim", "latent_dim",
                     "ar_hidden", "ar_layers", "style_layers", "content_layers", "batch_size", "steps"):
            if getattr(self, name) < (0 if name == "pose_dim" else 1):
                bad(f"{name} must be positive, got {getattr(self, name)}")


# Presets: "quick" trains on two CPU cores in about two minutes on ~130 clips of
# ~3 s; "full" is sized for one GPU.
PRESETS: dict[str, VastConfig] = {
    "quick": VastConfig(),
    "full": VastConfig(
        d_model=256, n_heads=8, ff_mult=4, style_layers=4, style_dim=256, content_layers=4,
        latent_dim=64, ar_hidden=512, ar_layers=2, flow_steps=8,
        steps=60_000, batch_size=64, lr=5e-4, lr_warmup=1000, kl_warmup_steps=10_000,
        ss_start=5_000, ss_end=30_000, window_max=100, prompt_max=250,
        ckpt_every=2_000, eval_every=1_000, eval_batches=16, log_every=100,
    ),
}

# Ablations of the paper, as overrides of whichever preset is the base.
ABLATION_OVERRIDES: dict[str, dict[str, Any]] = {
    "vast": {},
    "no_enhancer": {"enhancer": False},
    "no_flow": {"flow_steps": 0},
    "nar_only": {"decoder": "nar"},
    "ar_only": {"decoder": "ar"},
    # Not an ablation of the paper: the style-free reference ("neutral avatar") that VAST
    # sets out to vivify; the same decoder with a constant zero style code.
    "no_style": {"style": False, "enhancer": False},
}

ABLATIONS: dict[str, VastConfig] = {
    name: PRESETS["quick"].replace(**over) for name, over in ABLATION_OVERRIDES.items()
}


def dataset_overrides(manifest) -> dict[str, Any]:
    """The data-contract fields of ``VastConfig`` for a dataset: {} for SynthTalk (the defaults).

    On a dataset made by ``vastbench data ingest`` the expressions are the
    coefficients of its face model's PCA: ``expr_dim`` is their number, and the
    mouth / upper-face channel groups come from where each component moves the
    mesh (:meth:`~vastbench.data.ingest.geometry.FaceModel.channel_groups`).  The
    speech articulators (kept out of the prompt-statistics skip) are the mouth
    channels: a PCA component has no name that says "jaw" rather than "smile".
    """
    from vastbench.data.ingest.geometry import FaceModel, dataset_face_model

    path = dataset_face_model(manifest)
    if path is None:
        return {}
    model = FaceModel.load(path)
    mouth, upper = model.channel_groups()
    return {"expr_dim": model.n_components, "mouth_channels": mouth, "upper_channels": upper,
            "articulators": mouth}


def make_config(preset: str = "quick", ablation: str = "vast", **overrides) -> VastConfig:
    """A preset, then an ablation, then explicit overrides (e.g. ``expr_dim`` for real data)."""
    from vastbench.registry import did_you_mean

    if preset not in PRESETS:
        raise VastbenchError(f"unknown VAST preset '{preset}'{did_you_mean(preset, PRESETS)}")
    if ablation not in ABLATION_OVERRIDES:
        raise VastbenchError(f"unknown VAST ablation '{ablation}'{did_you_mean(ablation, ABLATION_OVERRIDES)}")
    return PRESETS[preset].replace(**{**ABLATION_OVERRIDES[ablation], **overrides})
