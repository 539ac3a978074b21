"""``vastbench mos`` commands through typer (registered on a scratch app until main wires them)."""

from __future__ import annotations

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tests.mos.conftest import ADMIN_PASSWORD
from vastbench.cli import mos as mos_cli
from vastbench.errors import VastbenchError


@pytest.fixture(scope="module")
def cli():
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    mos_cli.register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(map(str, args)))


def test_create_add_revoke_export_status(cli, mos_run, tmp_path):
    study = tmp_path / "study"
    r = cli("mos", "create", "--run", mos_run, "--out", study, "--judges", 3, "--ratings-per-clip", 1,
            "--systems", "static", "--systems", "ground_truth", "--admin-password", ADMIN_PASSWORD)
    assert r.exit_code == 0, r.output
    assert "links.csv" in r.output and "admin password" not in r.output
    r = cli("mos", "add-judge", study, "--base-url", "https://x.org")
    assert r.exit_code == 0 and "j04: https://x.org/?t=" in r.output
    assert cli("mos", "revoke", study, "j02", "--reason", "test").exit_code == 0
    r = cli("mos", "status", study)
    assert r.exit_code == 0 and "j04" in r.output
    r = cli("mos", "export", study, "--out", tmp_path / "exp")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "exp" / "key.csv").exists()
    assert list(pd.read_csv(tmp_path / "exp" / "ratings.csv").columns)[:4] == ["study", "judge", "clip", "system"]


def test_generated_password_is_printed_once(cli, mos_run, tmp_path):
    r = cli("mos", "create", "--run", mos_run, "--out", tmp_path / "s", "--judges", 2, "--ratings-per-clip", 1)
    assert r.exit_code == 0 and "admin password (shown once" in r.output


def test_bad_inputs_are_one_line_errors(cli, mos_run, tmp_path):
    r = cli("mos", "create", "--run", tmp_path / "nope")
    assert isinstance(r.exception, VastbenchError) and "not a run directory" in str(r.exception)
    r = cli("mos", "export", tmp_path)
    assert isinstance(r.exception, VastbenchError) and "not a MOS study directory" in str(r.exception)
    r = cli("mos", "revoke", tmp_path / "s", "j01")
    assert isinstance(r.exception, VastbenchError)


def test_serve_refuses_missing_or_corrupt_clips(cli, mos_run, tmp_path):
    from vastbench.mos.design import StudyDir
    from vastbench.mos.serve import ServeConfig, preflight

    cli("mos", "create", "--run", mos_run, "--out", tmp_path / "s", "--judges", 2, "--ratings-per-clip", 1,
        "--admin-password", "x")
    sd = StudyDir(tmp_path / "s")
    assert preflight(ServeConfig(sd.root))["judges"] == 2
    files = sorted(sd.clips_dir.iterdir())
    files[0].unlink()
    files[1].write_bytes(b"garbage")
    with pytest.raises(VastbenchError, match=r"2 clip\(s\) unusable: .*is (missing|corrupt)"):
        preflight(ServeConfig(sd.root))
    r = cli("mos", "serve", sd.root, "--port", 1)
    assert isinstance(r.exception, VastbenchError) and "unusable" in str(r.exception)
    with pytest.raises(VastbenchError, match="cannot reach database"):
        preflight(ServeConfig(sd.root, db_url="postgresql+psycopg://u:p@127.0.0.1:9/x"))


def test_clip_paths_never_leave_the_study(tmp_path):
    from vastbench.mos.design import StudyDir

    sd = StudyDir(tmp_path)
    (tmp_path / "clips").mkdir()
    for bad in ("../study.json", "/etc/passwd", "..%2f..%2fx.mp4", "abc.mp4", "0" * 20 + ".mp4/../../x"):
        with pytest.raises(VastbenchError, match="refusing"):
            sd.clip_path(bad)
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    link = tmp_path / "clips" / ("a" * 20 + ".mp4")
    link.symlink_to(outside)
    with pytest.raises(VastbenchError, match="outside"):
        sd.clip_path(link.name)
    assert sd.clip_path("0" * 20 + ".mp4").parent == (tmp_path / "clips").resolve()
