import numpy as np
import pytest
from python_speech_features import mfcc as psf_mfcc

from vastbench.errors import VastbenchError
from vastbench.features import mfcc as M


def _speechlike(seed=0, n=24_000):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)
    x = env * sum(0.3 / k * np.sin(2 * np.pi * 130 * k * t) for k in range(1, 12)) + 0.02 * rng.standard_normal(n)
    return (x * 20000).astype(np.int16)


@pytest.mark.parametrize("signal", ["speech", "noise", "short", "silence_with_noise"])
def test_matches_python_speech_features(signal):
    rng = np.random.default_rng(1)
    x = {"speech": _speechlike(),
         "noise": (rng.standard_normal(16_000) * 3000).astype(np.int16),
         "short": (rng.standard_normal(300) * 3000).astype(np.int16),
         "silence_with_noise": (rng.standard_normal(8000) * 2).astype(np.int16)}[signal]
    ref = psf_mfcc(x, 16000)
    ours = M.mfcc(x)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_float_input_is_on_the_int16_scale():
    x = _speechlike()
    np.testing.assert_allclose(M.mfcc(x.astype(np.float32) / 32768.0), psf_mfcc(x, 16000), atol=1e-3)


@pytest.mark.parametrize("n_samples", [640 * 25, 640 * 25 + 1, 640 * 25 - 300, 1000])
def test_exactly_four_frames_per_video_frame(n_samples):
    x = _speechlike(n=n_samples)
    T = max(1, round(n_samples / 640))
    out = M.mfcc_for_video(x, T)
    assert out.shape == (4 * T, 13)
    # The aligned features agree with the plain ones where both see the same samples.
    plain = M.mfcc(M.fit_to_frames(x, T))
    np.testing.assert_allclose(out[: len(plain) - 1], plain[:-1], atol=1e-8)


def test_bad_input():
    with pytest.raises(VastbenchError, match="16 kHz"):
        M.mfcc(np.zeros(100), 8000)
    with pytest.raises(VastbenchError, match="non-empty mono"):
        M.mfcc(np.zeros(0))
