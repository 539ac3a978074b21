"""The frozen, independent style network: expression + pose sequence -> unit style embedding.

``style_sim`` compares the speaking style of a generated clip with its style
prompt through this network.  It is independent of VAST (never VAST's style
encoder, which would grade its own homework): a small dilated 1-D conv encoder
over standardized expression (11) + pose (6) per frame, attention-weighted
mean-and-std pooling over time, a linear projection to ``dim`` and L2
normalisation.  It is trained on random windows (1-3 s) of ground-truth SynthTalk
train clips with a normalized-softmax (cosine classifier) loss on the style
labels, so cosine similarity between embeddings is the natural comparison.
Gaussian noise on the inputs during training stands in for the errors of the
face capture, through which generated videos are measured.

It embeds any sequence of at least ``MIN_FRAMES`` (25 = 1 s at 25 fps); shorter
ones are a :class:`VastbenchError`.

The same file (``style_net_v1.pt``, asset ``style-net``) ships a ridge regressor
from :func:`vastbench.evalnets.style_stats.window_features` (whole clip as one
window) to the 13 SynthTalk style parameters, fitted on the same ground-truth +
captured train sequences when the network is trained; ``style_param_err`` uses it.  Shipping it (rather
than refitting at load) keeps the metric frozen and dataset-free at evaluation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vastbench.errors import VastbenchError

log = logging.getLogger(__name__)

ASSET_NAME = "style-net"
MIN_FRAMES = 25   # 1 s at 25 fps
N_IN = 17         # 11 expression + 6 pose


@dataclass
class StyleNetConfig:
    hidden: int = 64
    dim: int = 64
    min_window: int = MIN_FRAMES
    max_window: int = 75
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    scale: float = 16.0         # cosine-classifier temperature
    noise: float = 0.5          # std of input noise, in standardized units, on half the windows
    ridge_alpha: float = 1.0
    seed: int = 0


class StyleEncoder(nn.Module):
    """(B, T, 17) standardized frames (+ mask (B, T)) -> (B, dim) unit-norm embeddings."""

    def __init__(self, cfg: StyleNetConfig):
        super().__init__()
        h = cfg.hidden
        self.convs = nn.ModuleList([nn.Conv1d(N_IN, h, 5, padding=2)] +
                                   [nn.Conv1d(h, h, 5, padding=2 * d, dilation=d) for d in (2, 4)])
        self.norms = nn.ModuleList([nn.GroupNorm(1, h) for _ in range(3)])
        self.score = nn.Conv1d(h, 1, 1)
        self.proj = nn.Linear(2 * h, cfg.dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        hdn = x.transpose(1, 2)                                           # (B, 17, T)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            y = F.gelu(norm(conv(hdn)))
            hdn = y if i == 0 else hdn + y
        logits = self.score(hdn).squeeze(1)                               # (B, T)
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        a = torch.softmax(logits, dim=1).unsqueeze(1)                     # (B, 1, T)
        mean = (hdn * a).sum(-1)                                          # (B, h)
        std = ((hdn - mean.unsqueeze(-1)).pow(2) * a).sum(-1).clamp_min(1e-6).sqrt()
        return F.normalize(self.proj(torch.cat([mean, std], 1)), dim=1)   # (B, dim)


def _check_sequence(expression: np.ndarray, pose: np.ndarray, what: str) -> np.ndarray:
    e, p = np.asarray(expression, np.float32), np.asarray(pose, np.float32)
    if e.ndim != 2 or e.shape[1] != 11 or p.ndim != 2 or p.shape[1] != 6 or len(e) != len(p):
        raise VastbenchError(f"{what}: style needs expression (T, 11) and pose (T, 6), got {e.shape} and {p.shape}")
    if len(e) < MIN_FRAMES:
        raise VastbenchError(f"{what}: {len(e)} frames is too short for a style embedding; "
                             f"it needs at least {MIN_FRAMES} frames (1 s at 25 fps)")
    return np.concatenate([e, p], axis=1)


class StyleNet:
    """A loaded, frozen style network plus the shipped style-parameter regressor."""

    def __init__(self, encoder: StyleEncoder, cfg: StyleNetConfig, stats: dict, ridge: dict, meta: dict | None = None):
        self.encoder = encoder.eval()
        self.cfg = cfg
        self.mean = np.asarray(stats["mean"], np.float32)
        self.std = np.asarray(stats["std"], np.float32)
        self.ridge = ridge   # x_mean, x_std, coef, intercept, y_mean, y_std (arrays), alpha, param_names
        self.meta = meta or {}
        self.sha256: str | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "StyleNet":
        from vastbench.rundir import sha256_file

        if path is None:
            import vastbench.evalnets.assets_catalog  # noqa: F401
            from vastbench.assets import asset_path

            path = asset_path(ASSET_NAME)
        path = Path(path)
        if not path.exists():
            raise VastbenchError(f"style-net weights not found at {path}; "
                                 "reproduce them with `python -m vastbench.evalnets.train_evalnets style_net`")
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = StyleNetConfig(**ckpt["config"])
        enc = StyleEncoder(cfg)
        enc.load_state_dict(ckpt["state_dict"])
        out = cls(enc, cfg, ckpt["stats"], ckpt["ridge"], ckpt.get("meta"))
        out.sha256 = sha256_file(path)
        return out

    def save(self, path: str | Path) -> None:
        from vastbench.media import atomic_path

        ckpt = {"config": asdict(self.cfg), "state_dict": {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()},
                "stats": {"mean": self.mean, "std": self.std}, "ridge": self.ridge, "meta": self.meta}
        with atomic_path(path) as tmp:
            torch.save(ckpt, tmp)

    def describe(self) -> dict:
        return {"name": ASSET_NAME, "sha256": self.sha256, "config": asdict(self.cfg), **self.meta.get("describe", {})}

    # ------------------------------------------------------------------ embeddings
    @torch.no_grad()
    def embed_many(self, sequences: list[tuple[np.ndarray, np.ndarray]], what: str = "clip") -> np.ndarray:
        """[(expression (T, 11), pose (T, 6))] of any lengths >= 25 -> (N, dim) unit vectors.

        Sequences of equal length share a batch; padding would leak into the
        per-sequence normalization, so unequal lengths are never padded together."""
        xs = [((_check_sequence(e, p, what) - self.mean) / self.std).astype(np.float32) for e, p in sequences]
        out = np.zeros((len(xs), self.cfg.dim), np.float32)
        for n in sorted({len(x) for x in xs}):
            idx = [i for i, x in enumerate(xs) if len(x) == n]
            out[idx] = self.encoder(torch.from_numpy(np.stack([xs[i] for i in idx]))).numpy()
        return out

    def embed(self, expression: np.ndarray, pose: np.ndarray, what: str = "clip") -> np.ndarray:
        """One sequence -> (dim,) unit-norm style embedding."""
        return self.embed_many([(expression, pose)], what)[0]

    # ------------------------------------------------------------------ style parameters
    def style_params(self, expression: np.ndarray, pose: np.ndarray, what: str = "clip") -> np.ndarray:
        """Style parameters (13,) regressed from the clip's expression statistics."""
        from vastbench.evalnets.style_stats import window_features

        _check_sequence(expression, pose, what)
        f = (window_features(np.asarray(expression), np.asarray(pose)) - self.ridge["x_mean"]) / self.ridge["x_std"]
        z = f @ self.ridge["coef"] + self.ridge["intercept"]
        return z * self.ridge["y_std"] + self.ridge["y_mean"]

    def style_param_error(self, expression: np.ndarray, pose: np.ndarray, true_params: np.ndarray,
                          what: str = "clip") -> float:
        """RMS over the 13 parameters of (regressed - true), each in units of its spread over training styles."""
        pred = self.style_params(expression, pose, what)
        true = np.asarray(true_params, np.float64)
        if true.shape != pred.shape:
            raise VastbenchError(f"{what}: true style parameters have shape {true.shape}, expected {pred.shape}")
        return float(np.sqrt(np.mean(((pred - true) / self.ridge["y_std"]) ** 2)))


@lru_cache(maxsize=1)
def load_shipped() -> StyleNet:
    return StyleNet.load()


# ====================================================================== training
def _clip_arrays(clips: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    out = []
    for c in clips:
        z = np.load(c.path("features"))
        out.append((z["expression"].astype(np.float32), z["pose"].astype(np.float32), z["style_params"].astype(np.float64), c.style))
    return out


def fit_ridge(data: list, alpha: float) -> dict:
    """Ridge from window features (whole clip) to standardized style parameters, in closed form."""
    from vastbench.evalnets.style_stats import window_features

    X = np.stack([window_features(e, p) for e, p, _, _ in data])
    Y = np.stack([sp for _, _, sp, _ in data])
    x_mean, x_std = X.mean(0), np.maximum(X.std(0), 1e-6)
    y_mean, y_std = Y.mean(0), np.maximum(Y.std(0), 1e-6)
    Xs, Ys = (X - x_mean) / x_std, (Y - y_mean) / y_std
    coef = np.linalg.solve(Xs.T @ Xs + alpha * len(Xs) * np.eye(Xs.shape[1]) / 100, Xs.T @ Ys)
    return {"x_mean": x_mean, "x_std": x_std, "y_mean": y_mean, "y_std": y_std, "coef": coef,
            "intercept": np.zeros(Y.shape[1]), "alpha": float(alpha)}


def train(train_clips: list, cfg: StyleNetConfig) -> StyleNet:
    """Fit the encoder (normalized softmax over style labels) and the style-parameter ridge on train clips.

    Each train clip enters twice: its ground-truth expressions and the same video as the shipped
    face capture sees it (when the capture weights are present), because the metrics embed
    captured sequences and the capture's errors on style cues (smile, brows) are not Gaussian."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    data = _clip_arrays(train_clips)
    captured = _captured(train_clips)
    if captured is not None:
        data = data + [(e, p, sp, st) for (e, p), (_, _, sp, st) in zip(captured, data)]
    log.info("style net: %d training sequences (%s captured) in %.0fs", len(data), "with" if captured else "without", time.time() - t0)
    classes = sorted({s for *_, s in data})
    seqs = [np.concatenate([e, p], 1) for e, p, _, _ in data]
    allx = np.concatenate(seqs)
    mean, std = allx.mean(0), np.maximum(allx.std(0), 1e-3)
    seqs_t = [torch.from_numpy((s - mean) / std) for s in seqs]
    labels = torch.tensor([classes.index(s) for *_, s in data])

    enc = StyleEncoder(cfg)
    weight = nn.Parameter(torch.randn(len(classes), cfg.dim, generator=gen) * 0.1)
    params = list(enc.parameters()) + [weight]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    tot = 0.0
    for step in range(cfg.steps):
        enc.train()
        idx = torch.randint(len(seqs_t), (cfg.batch_size,), generator=gen)
        length = int(torch.randint(cfg.min_window, cfg.max_window + 1, (1,), generator=gen))
        batch, mask = torch.zeros(cfg.batch_size, length, N_IN), torch.zeros(cfg.batch_size, length, dtype=torch.bool)
        for b, i in enumerate(idx.tolist()):
            s = seqs_t[i]
            n = min(length, len(s))
            start = int(torch.randint(0, len(s) - n + 1, (1,), generator=gen))
            batch[b, :n] = s[start:start + n]
            mask[b, :n] = True
        noisy = torch.rand(cfg.batch_size, 1, 1, generator=gen) < 0.5
        batch = batch + noisy * cfg.noise * torch.randn(batch.shape, generator=gen) * mask.unsqueeze(-1)
        emb = enc(batch, mask)
        logits = cfg.scale * emb @ F.normalize(weight, dim=1).T
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        tot += loss.item()
        if (step + 1) % 500 == 0:
            log.info("style net step %d/%d: loss %.4f (%.0fs)", step + 1, cfg.steps, tot / 500, time.time() - t0)
            tot = 0.0
    ridge = fit_ridge(data, cfg.ridge_alpha)
    ridge["param_names"] = [str(x) for x in np.load(train_clips[0].path("features"))["style_param_names"]]
    net = StyleNet(enc, cfg, {"mean": mean, "std": std}, ridge)
    net.meta = {"classes": classes, "train_clips": len(train_clips), "trained_on_captured": captured is not None,
                "torch": torch.__version__, "threads": torch.get_num_threads()}
    return net


def _captured(clips: list) -> list | None:
    """(expression, pose) of clips as the shipped face capture sees them; None without the capture weights."""
    from vastbench import media
    from vastbench.evalnets.face_capture import FaceCapture

    try:
        fc = FaceCapture.load()
    except VastbenchError:
        return None
    out = []
    for c in clips:
        cap = fc.capture(media.read_video(c.path("video"), with_audio=False).frames)
        out.append((cap["expression"], cap["pose"]))
    return out


def evaluate(net: StyleNet, manifest, with_capture: bool = True) -> dict:
    """Nearest-centroid style accuracy, unseen-style clustering and style-parameter error, on GT and captured input."""
    from sklearn.metrics import silhouette_score

    train = _clip_arrays(manifest.split("train"))
    emb_train = net.embed_many([(e, p) for e, p, _, _ in train])
    styles = sorted({s for *_, s in train})
    centroids = np.stack([F.normalize(torch.from_numpy(emb_train[[s == st for *_, s in train]].mean(0)), dim=0).numpy()
                          for st in styles])
    res: dict = {}
    sources = {"gt": None}
    if with_capture:
        sources["captured"] = "captured"
    for src in sources:
        for split in ("test", "test_unseen_identity", "test_unseen_style"):
            clips = manifest.split(split)
            arr = _clip_arrays(clips)
            seqs = [(e, p) for e, p, _, _ in arr]
            if src == "captured":
                seqs = _captured(clips)
                if seqs is None:
                    break
            emb = net.embed_many(seqs)
            labels = np.array([s for *_, s in arr])
            r: dict = {}
            if split != "test_unseen_style":
                pred = np.array(styles)[np.argmax(emb @ centroids.T, 1)]
                r["nearest_centroid_acc"] = float((pred == labels).mean())
            else:
                sim = emb @ emb.T
                np.fill_diagonal(sim, -np.inf)
                r["loo_1nn_acc"] = float((labels[np.argmax(sim, 1)] == labels).mean())
                r["silhouette_cosine"] = float(silhouette_score(emb, labels, metric="cosine"))
                same = np.equal.outer(labels, labels)
                np.fill_diagonal(same, False)
                simf = emb @ emb.T
                r["mean_cos_same"] = float(simf[same].mean())
                r["mean_cos_diff"] = float(simf[~np.equal.outer(labels, labels)].mean())
            errs = [net.style_param_error(e, p, sp) for (e, p), (_, _, sp, _) in zip(seqs, arr)]
            r["style_param_rmse"] = float(np.mean(errs))
            res[f"{src}/{split}"] = r
    res["style_param_rmse_predict_mean/test"] = float(np.mean(
        [np.sqrt(np.mean(((net.ridge["y_mean"] - sp) / net.ridge["y_std"]) ** 2)) for _, _, sp, _ in _clip_arrays(manifest.split("test"))]))
    return res
