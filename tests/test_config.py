from pathlib import Path

import pytest

from vastbench.config import load_suite, stable_hash
from vastbench.errors import VastbenchError

REPO = Path(__file__).resolve().parents[1]


def write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_smoke_suite_loads_and_hash_is_stable():
    a, b = load_suite("smoke"), load_suite("smoke")
    assert a.name == "smoke" and a.version >= 1
    assert [s.label for s in a.systems] == ["ground_truth", "static", "shifted_audio"]
    assert a.config_hash() == b.config_hash()


def test_include_and_override_merge_deeply(tmp_path):
    write(tmp_path / "base.yaml", """
version: 1
name: base
dataset: {name: fixture, profile: tiny, seed: 3}
requests: {split: test, limit: 4}
systems: [{label: gt, generator: ground_truth}]
metrics: [psnr]
""")
    child = write(tmp_path / "child.yaml", """
include: base.yaml
name: child
requests: {limit: 2}
metrics: [psnr, ssim]
""")
    cfg = load_suite(child)
    assert cfg.name == "child"
    assert cfg.dataset.seed == 3            # inherited
    assert cfg.requests.limit == 2          # overridden
    assert cfg.requests.split == "test"     # merged, not replaced
    assert cfg.metrics == ["psnr", "ssim"]  # lists are replaced


def test_include_by_suite_name(tmp_path):
    child = write(tmp_path / "mine.yaml", "include: smoke\nname: mine\nversion: 2\n")
    cfg = load_suite(child)
    assert cfg.name == "mine" and cfg.version == 2 and len(cfg.systems) == 3


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    bad = write(tmp_path / "bad.yaml", "include: smoke\nname: bad\nmetrcs: [psnr]\n")
    with pytest.raises(VastbenchError) as e:
        load_suite(bad)
    msg = str(e.value)
    assert str(bad) in msg and "'metrcs'" in msg and "did you mean 'metrics'" in msg
    assert "\n" not in msg


def test_nested_unknown_key_points_at_the_file_that_has_it(tmp_path):
    write(tmp_path / "base.yaml", "include: smoke\nname: base\n")
    child = write(tmp_path / "child.yaml", "include: base.yaml\nrequests: {splt: val}\n")
    with pytest.raises(VastbenchError, match=r"child.yaml: unknown key 'requests.splt'; did you mean 'split'"):
        load_suite(child)


def test_set_overrides_are_validated():
    cfg = load_suite("smoke", ["requests.limit=2", "systems.2.args.shift_frames=-5", "statistics.ci=0.9"])
    assert cfg.requests.limit == 2 and cfg.systems[2].args["shift_frames"] == -5 and cfg.statistics.ci == 0.9
    with pytest.raises(VastbenchError, match=r"--set: unknown key 'requests.limt'; did you mean 'limit'"):
        load_suite("smoke", ["requests.limt=2"])
    with pytest.raises(VastbenchError, match="limit"):
        load_suite("smoke", ["requests.limit=0"])
    with pytest.raises(VastbenchError, match="key.path=value"):
        load_suite("smoke", ["requests.limit"])


def test_bad_values_and_files(tmp_path):
    with pytest.raises(VastbenchError, match="unknown suite 'smoek'; did you mean 'smoke'"):
        load_suite("smoek")
    dup = write(tmp_path / "dup.yaml", "include: smoke\nsystems: [{label: a, generator: static}, {label: a, generator: static}]\n")
    with pytest.raises(VastbenchError, match="duplicate system labels"):
        load_suite(dup)
    broken = write(tmp_path / "broken.yaml", "name: [unclosed\n")
    with pytest.raises(VastbenchError, match="invalid YAML"):
        load_suite(broken)
    cyc = write(tmp_path / "cyc.yaml", "include: cyc.yaml\n")
    with pytest.raises(VastbenchError, match="cycle"):
        load_suite(cyc)


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_the_wheel_ships_the_bundled_suites_and_weights(tmp_path):
    """`vastbench run --suite ablation` must work from an installed wheel, not only from a checkout."""
    import subprocess
    import sys
    import zipfile

    from vastbench.config import STUDIES_DIR, list_suites

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("vastbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    suites = sorted(STUDIES_DIR.glob("*.yaml"))
    assert {"ablation", "comparison", "smoke"} <= {p.stem for p in suites}
    assert {f"vastbench/studies/{p.name}" for p in suites} <= names
    assert {n for n in names if n.startswith("vastbench/weights/") and n.endswith(".pt")}
    assert {name for name, _ in list_suites()} >= {p.stem for p in suites}


def test_metrics_take_arguments_and_each_is_listed_once(tmp_path):
    from vastbench.metrics.base import build_metric

    child = write(tmp_path / "args.yaml", """
include: smoke
name: args
metrics: [psnr, {name: lse_d, args: {crops: centre}}]
""")
    cfg = load_suite(child)
    assert cfg.metric_specs() == [("psnr", {}), ("lse_d", {"crops": "centre"})]
    assert load_suite("smoke").model_dump(mode="json")["metrics"] == ["psnr", "ssim"]   # plain names stay names
    lse = build_metric(*cfg.metric_specs()[1])
    assert lse.crops == "centre" and lse.describe()["args"] == {"crops": "centre"}
    assert lse.version.startswith("2+") and build_metric("lse_d").version == "2"    # cached values never mix
    from vastbench.data.manifest import Manifest

    lse.bind_dataset(Manifest([], tmp_path / "manifest.jsonl"))    # SynthTalk capture: the version stays
    assert lse.version.startswith("2+") and lse.version == lse.base_version()
    assert "args" not in build_metric("psnr").describe()
    with pytest.raises(VastbenchError) as e:
        build_metric("lse_d", {"crop": "centre"})
    assert "metric lse_d" in str(e.value) and "crops" in str(e.value) and "\n" not in str(e.value)
    dup = write(tmp_path / "dup.yaml", "include: smoke\nname: dup\nmetrics: [psnr, {name: psnr}]\n")
    with pytest.raises(VastbenchError, match="metric psnr is listed twice"):
        load_suite(dup)
