import pytest

from vastbench.errors import VastbenchError
from vastbench.registry import GENERATORS, METRICS, Registry


def test_lazy_entries_resolve_to_classes():
    reg = Registry("thing")
    reg.register("od", "collections:OrderedDict")
    from collections import OrderedDict

    assert reg.get("od") is OrderedDict
    assert "od" in reg and reg.names() == ["od"]


def test_decorator_and_duplicates():
    reg = Registry("thing")

    @reg.register("x")
    class X:
        pass

    assert reg.get("x") is X
    with pytest.raises(VastbenchError, match="duplicate thing name 'x'"):
        reg.register("x", X)
    with pytest.raises(VastbenchError, match="module:attr"):
        reg.register("y", "no_colon_here")


def test_unknown_name_suggests():
    with pytest.raises(VastbenchError, match="unknown generator 'ground_truht'; did you mean 'ground_truth'"):
        GENERATORS.get("ground_truht")
    with pytest.raises(VastbenchError, match="unknown metric 'zzzz'; valid: "):
        METRICS.get("zzzz")


def test_builtin_entries_load():
    for name in ("ground_truth", "static", "shifted_audio"):
        assert GENERATORS.get(name).name == name
    for name in ("psnr", "ssim"):
        assert METRICS.get(name).name == name
