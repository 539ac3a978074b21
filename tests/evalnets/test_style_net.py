"""The frozen style network: unit embeddings, any length >= 1 s, clear errors, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from vastbench.errors import VastbenchError
from vastbench.evalnets import style_net as snm


@pytest.fixture(scope="module")
def tiny():
    cfg = snm.StyleNetConfig(hidden=8, dim=4)
    ridge = {"x_mean": np.zeros(71), "x_std": np.ones(71), "coef": np.zeros((71, 13)), "intercept": np.zeros(13),
             "y_mean": np.arange(13.0), "y_std": np.ones(13), "alpha": 1.0, "param_names": [f"p{i}" for i in range(13)]}
    return snm.StyleNet(snm.StyleEncoder(cfg), cfg, {"mean": np.zeros(17), "std": np.ones(17)}, ridge)


def _seq(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 11)).astype(np.float32), rng.normal(0, 0.05, (n, 6)).astype(np.float32)


def test_embeddings_are_unit_norm_any_length(tiny):
    embs = tiny.embed_many([_seq(25), _seq(40, 1), _seq(200, 2)])
    np.testing.assert_allclose(np.linalg.norm(embs, axis=1), 1.0, atol=1e-5)
    # Batching sequences of other lengths does not change a sequence's embedding.
    np.testing.assert_allclose(embs[0], tiny.embed(*_seq(25)), atol=1e-5)


def test_short_sequence_is_a_clear_error(tiny):
    with pytest.raises(VastbenchError, match="at least 25 frames"):
        tiny.embed(*_seq(3))
    with pytest.raises(VastbenchError, match="at least 25 frames"):
        tiny.style_params(*_seq(3))
    with pytest.raises(VastbenchError, match=r"\(T, 11\)"):
        tiny.embed(np.zeros((30, 5)), np.zeros((30, 6)))


def test_style_param_error_closed_form(tiny):
    e, p = _seq(30)
    # Zero coefficients: the prediction is the training mean, so the error is RMS(mean - truth) / std.
    assert tiny.style_param_error(e, p, np.arange(13.0)) == pytest.approx(0.0)
    assert tiny.style_param_error(e, p, np.arange(13.0) + 2) == pytest.approx(2.0)


def test_save_load_roundtrip(tiny, tmp_path):
    tiny.save(tmp_path / "s.pt")
    back = snm.StyleNet.load(tmp_path / "s.pt")
    np.testing.assert_allclose(back.embed(*_seq(50)), tiny.embed(*_seq(50)), atol=1e-6)


def test_shipped_weights_are_pinned():
    import vastbench.evalnets.assets_catalog  # noqa: F401
    from vastbench.assets import ASSETS

    assert ASSETS["style-net"].sha256 is not None
    net = snm.load_shipped()
    e, p = _seq(60)
    emb = net.embed(e, p)
    assert emb @ emb == pytest.approx(1.0, abs=1e-5)
