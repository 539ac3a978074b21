"""The built-in PPG recognizer: features, targets, the frozen asset, accuracy, cache."""

from __future__ import annotations

import numpy as np
import pytest

from vastbench.features import ppg
from vastbench.features.cache import FeatureCache
from vastbench.features.phones import PHONES


def test_log_mel_is_aligned_and_finite_on_odd_input():
    rng = np.random.default_rng(0)
    for n_samples, T in ((640 * 10, 10), (640 * 10 + 77, 10), (500, 1)):
        feat = ppg.log_mel(rng.standard_normal(n_samples).astype(np.float32) * 0.1, T)
        assert feat.shape == (4 * T, ppg.N_MELS) and np.isfinite(feat).all()
    silent = ppg.log_mel(np.zeros(6400, np.float32), 10)
    assert np.isfinite(silent).all()
    clipped = ppg.log_mel(np.clip(rng.standard_normal(6400) * 5, -1, 1).astype(np.float32), 10)
    assert np.isfinite(clipped).all()


def test_frame_targets_follow_the_alignment():
    phones = np.array(["sil", "aa", "b", "sil"])
    starts = np.array([0.0, 0.05, 0.12, 0.2])
    ends = np.array([0.05, 0.12, 0.2, 0.4])
    y = ppg.frame_targets(phones, starts, ends, 10)  # 40 frames, centres 12.5 ms + 10 ms i
    idx = {p: i for i, p in enumerate(PHONES)}
    assert y.shape == (40,)
    assert y[0] == idx["sil"] and y[4] == idx["aa"] and y[10] == idx["aa"] and y[11] == idx["b"] and y[30] == idx["sil"]


def _recognizer():
    import vastbench.features.assets_catalog  # noqa: F401
    from vastbench.assets import ASSETS

    if not ASSETS["ppg-synthtalk"].path.exists():
        pytest.fail("the frozen PPG asset is missing from the package (vastbench/weights/ppg_synthtalk_v1.pt)")
    return ppg.PPGRecognizer.load()


def test_frozen_asset_is_pinned_and_gives_posteriors():
    from vastbench.assets import ASSETS

    rec = _recognizer()
    assert ASSETS["ppg-synthtalk"].sha256 == rec.sha256
    post = rec.posteriors(np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1, 25)
    assert post.shape == (100, len(PHONES))
    np.testing.assert_allclose(post.sum(1), 1.0, atol=1e-5)


def test_extraction_is_cached_by_audio_content(tmp_path):
    rec = _recognizer()
    cache = FeatureCache(tmp_path)
    audio = np.random.default_rng(2).standard_normal(6400).astype(np.float32) * 0.1
    a = rec.extract(audio, 10, cache)
    files = list(tmp_path.rglob("*.npy"))
    assert len(files) == 1
    b = rec.extract(audio.copy(), 10, cache)
    np.testing.assert_array_equal(a, b)
    assert list(tmp_path.rglob("*.npy")) == files
    rec.extract(audio * 0.5, 10, cache)
    assert len(list(tmp_path.rglob("*.npy"))) == 2


@pytest.mark.slow
def test_accuracy_on_unseen_speakers(synthtalk_quick):
    res = ppg.evaluate_recognizer(_recognizer(), synthtalk_quick)
    print(f"PPG frame accuracy on unseen speakers: {res['frame_accuracy']:.3f}")
    assert res["frame_accuracy"] >= 0.80


def test_posteriors_do_not_depend_on_the_process_thread_count():
    """A matmul's rounding depends on how many threads split it; extraction pins one thread, so a dataset
    built by a 1-thread process and by a 2-thread process has bit-identical features (and restores the
    caller's thread count)."""
    import torch

    rec = _recognizer()
    audio = np.random.default_rng(3).standard_normal(16000 * 3).astype(np.float32) * 0.1
    before = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 4):
            torch.set_num_threads(n)
            outs.append(rec.posteriors(audio, 75))
            assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(before)
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)
