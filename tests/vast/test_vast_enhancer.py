"""Variational style enhancer: KL estimators, posterior mean, the deterministic ablation."""

import pytest
import torch

from vast_fixtures import tiny_config
from vastbench.vast.enhancer import VariationalStyleEnhancer, build_style_head, kl_closed_form


def _enhancer(K):
    torch.manual_seed(0)
    cfg = tiny_config(flow_steps=K)
    enh = VariationalStyleEnhancer(cfg).eval()
    return cfg, enh, torch.randn(2, cfg.style_dim)


@pytest.mark.parametrize("K", [0, 4])
def test_monte_carlo_kl_converges_to_closed_form(K):
    # K = 0 is the textbook case.  For K > 0 the same holds: orthogonal maps leave
    # N(0, I) invariant, so E[log q0(z0) - log p(zK)] is still the diagonal KL.
    cfg, enh, style = _enhancer(K)
    n = 20_000
    eps = torch.randn(n, 2, cfg.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        code = enh(style, None, None, sample=True, eps=eps)
    mc = code.kl.double()                                            # (n, B)
    se = mc.std(0) / n ** 0.5
    closed = kl_closed_form(code.mu, code.logvar).double()
    assert torch.all((mc.mean(0) - closed).abs() < 4 * se + 1e-3), (mc.mean(0), closed)
    torch.testing.assert_close(code.kl_closed.double(), closed)
    assert code.log_det.abs().max() < 1e-5


def test_posterior_mean_is_deterministic_and_flowed():
    cfg, enh, style = _enhancer(3)
    with torch.no_grad():
        a = enh(style, None, None, sample=False)
        b = enh(style, None, None, sample=False)
        h = enh.posterior(style, enh.speech(None, None, 2))[2]
    assert torch.equal(a.z, b.z)
    H = enh.flow.matrices(h)                                         # (B, K, Z, Z)
    z = a.mu.unsqueeze(-1)
    for k in range(3):
        z = H[:, k] @ z
    torch.testing.assert_close(a.z, z.squeeze(-1), atol=1e-5, rtol=1e-5)


def test_speech_summary_changes_the_posterior():
    cfg, enh, style = _enhancer(2)
    ppg = torch.softmax(torch.randn(2, 40, cfg.ppg_dim), -1)
    mask = torch.ones(2, 40, dtype=torch.bool)
    with torch.no_grad():
        without = enh(style, None, None, sample=False).mu
        with_speech = enh(style, ppg, mask, sample=False).mu
        masked_out = enh(style, ppg, mask, sample=False, has_speech=torch.tensor([False, True])).mu
    assert not torch.allclose(without, with_speech)
    torch.testing.assert_close(masked_out[0], without[0])


def test_no_enhancer_is_deterministic_without_kl():
    cfg = tiny_config(enhancer=False)
    head = build_style_head(cfg)
    code = head(torch.randn(3, cfg.style_dim), None, None, sample=True)
    assert code.z.shape == (3, cfg.latent_dim)
    assert torch.equal(code.kl, torch.zeros(3))
