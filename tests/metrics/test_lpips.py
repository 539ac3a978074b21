"""LPIPS: standard only with the real trunk weights, a labelled LPIPS* otherwise,
and per-clip values equal to the ``lpips`` package called frame by frame."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vastbench.errors import VastbenchError
from vastbench.metrics import lpips_metric as LM

# torchvision's deprecation of `pretrained=`, raised inside lpips by the reference constructions
pytestmark = pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache (offline: no AlexNet weights), whatever the machine has."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(LM.ENV_ALLOW_UNTRAINED, raising=False)
    monkeypatch.setattr(LM, "_warned", False)
    torch.set_num_threads(1)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from vastbench import media
    from vastbench.data.requests import Request
    from vastbench.metrics.base import EvalSample

    d = tmp_path_factory.mktemp("lpips")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    ref = np.stack([np.stack([(xx * 4 + t * 9) % 256, (yy * 4) % 256, ((xx + yy) * 2 + t * 20) % 256], -1)
                    for t in range(5)]).astype(np.uint8)
    gen = np.clip(ref + rng.normal(0, 25, ref.shape), 0, 255).astype(np.uint8)
    req = Request("r0", "id0", "c0", "c0", "c0", 0)
    return EvalSample(request=req, generated=media.write_video(d / "gen.mp4", gen),
                      reference=media.write_video(d / "ref.mp4", ref))


def _frame_by_frame(model, sample):
    gen, ref = sample.paired_frames()
    vals = []
    with torch.no_grad():
        for g, r in zip(gen, ref):
            g, r = (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255.0 for x in (g, r))
            vals.append(float(model(g, r, normalize=True)))
    return float(np.mean(vals))


def test_refuses_without_the_backbone_and_warns_once(hub, caplog):
    with caplog.at_level(logging.WARNING, logger=LM.__name__):
        for _ in range(2):
            with pytest.raises(VastbenchError, match=f"AlexNet weights at .*{LM.ENV_ALLOW_UNTRAINED}=1"):
                LM.LPIPS()
    assert sum("AlexNet ImageNet weights not found" in r.message for r in caplog.records) == 1


def test_untrained_substitute_is_never_labelled_lpips(hub, monkeypatch, sample):
    monkeypatch.setenv(LM.ENV_ALLOW_UNTRAINED, "1")
    m = LM.LPIPS()
    assert (m.name, m.label, m.footnote) == ("lpips_star", "LPIPS*", LM.UNTRAINED_FOOTNOTE)
    assert "not comparable to published LPIPS" in m.footnote and "untrained" in m.describe()["backbone"]
    assert LM.LPIPSAllowUntrained().name == "lpips_star"
    assert LM.LPIPS.name == "lpips" and LM.LPIPS.label == "LPIPS"  # the class itself is untouched
    value = m(sample)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(LM.UNTRAINED_SEED)
        import lpips

        ref_model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False).eval()
    assert value == pytest.approx(_frame_by_frame(ref_model, sample), rel=1e-5)
    assert value > 0
    assert LM.LPIPSAllowUntrained()(sample) == value  # seeded: repeatable


def test_standard_lpips_when_the_backbone_is_cached(hub, sample):
    import lpips
    from torchvision.models import alexnet

    hub.mkdir(parents=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)  # stand-in weights with the real file's name and layout
        torch.save(alexnet(weights=None).state_dict(), hub / "alexnet-owt-7be5be79.pth")
    m = LM.LPIPS()
    assert (m.name, m.label, m.footnote) == ("lpips", "LPIPS", None)
    assert m.describe()["backbone"].startswith("ImageNet AlexNet")
    ref_model = lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()  # the package's own standard path
    value = m(sample)
    assert value == pytest.approx(_frame_by_frame(ref_model, sample), rel=1e-5)
    assert LM.LPIPSAllowUntrained().name == "lpips"  # with the trunk present, the standard metric
    untrained = LM.lpips_frames(*sample.paired_frames(), LM.build_lpips(trained_backbone=False)).mean()
    assert value != pytest.approx(untrained)  # the cached trunk weights were really used
    same = LM.lpips_frames(*[sample.paired_frames()[1]] * 2, m.model())
    np.testing.assert_allclose(same, 0.0, atol=1e-7)
