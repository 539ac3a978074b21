"""Householder flow: orthogonal, norm-preserving, volume-preserving reflections."""

import torch

from vastbench.vast.householder import HouseholderFlow


def _flow(K=5, hidden=12, Z=7):
    torch.manual_seed(0)
    return HouseholderFlow(hidden, Z, K), torch.randn(4, hidden), torch.randn(4, Z)


def test_each_reflection_is_orthogonal_and_symmetric():
    flow, h, _ = _flow()
    H = flow.matrices(h).double()                                   # (B, K, Z, Z)
    eye = torch.eye(H.shape[-1], dtype=H.dtype).expand_as(H)
    assert H.shape == (4, 5, 7, 7)
    torch.testing.assert_close(H.transpose(-1, -2) @ H, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(H, H.transpose(-1, -2))


def test_log_det_is_zero_and_matches_slogdet():
    flow, h, z0 = _flow()
    sign, logabs = torch.linalg.slogdet(flow.matrices(h).double())  # (B, K)
    assert torch.allclose(logabs, torch.zeros_like(logabs), atol=1e-5)
    assert torch.all(sign == -1)                                    # a reflection flips orientation
    _, log_det = flow(z0, h)
    torch.testing.assert_close(log_det.double(), logabs.sum(1), atol=1e-5, rtol=0)


def test_flow_preserves_norms_and_equals_the_matrix_product():
    flow, h, z0 = _flow()
    zK, _ = flow(z0, h)
    torch.testing.assert_close(zK.norm(dim=-1), z0.norm(dim=-1), atol=1e-5, rtol=1e-5)
    z = z0.unsqueeze(-1)
    for k in range(flow.steps):                                     # z_k = H_k z_{k-1}
        z = flow.matrices(h)[:, k] @ z
    torch.testing.assert_close(zK, z.squeeze(-1), atol=1e-5, rtol=1e-5)


def test_each_vector_comes_from_the_previous_one():
    flow, h, _ = _flow(K=3)
    v = flow.vectors(h)
    torch.testing.assert_close(v[0], flow.first(h))
    torch.testing.assert_close(v[2], flow.next[1](flow.next[0](v[0])))


def test_zero_steps_is_the_identity():
    flow, h, z0 = _flow(K=0)
    zK, log_det = flow(z0, h)
    assert torch.equal(zK, z0) and torch.equal(log_det, torch.zeros(4))
    assert flow.matrices(h).shape[1] == 0


def test_flow_broadcasts_over_sample_dimension():
    flow, h, _ = _flow()
    z = torch.randn(10, 4, 7)
    zK, _ = flow(z, h)
    one, _ = flow(z[3], h)
    torch.testing.assert_close(zK[3], one)
