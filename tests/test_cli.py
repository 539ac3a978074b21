"""The CLI as a user meets it: one-line errors, --debug tracebacks, validate, suites."""

from tests.helpers import run_cli


def test_validate_misspelled_key_is_one_line(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("include: smoke\nname: typo\nsytems: []\n")
    proc = run_cli("validate", str(bad))
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert err.count("\n") == 0, err
    assert str(bad) in err and "'sytems'" in err and "did you mean 'systems'" in err
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("include: smoke\nname: typo\nsytems: []\n")
    proc = run_cli("--debug", "validate", str(bad))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_validate_reports_the_plan():
    proc = run_cli("validate", "smoke", check=True)
    out = proc.stdout
    assert "suite smoke v1" in out and "systems (3)" in out and "nothing to train" in out
    assert "psnr (higher is better)" in out


def test_suites_lists_descriptions():
    out = run_cli("suites", check=True).stdout
    assert "smoke" in out and "fixture" in out


def test_run_errors_are_one_line(tmp_path):
    proc = run_cli("run", "--suite", "smoek")
    assert proc.returncode == 2 and "did you mean 'smoke'" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("run", "--resume", str(tmp_path))
    assert proc.returncode == 2 and "not a run directory" in proc.stderr
    proc = run_cli("run", "--suite", "smoke", "--set", "systems.0.args.bogus=1", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "has no argument 'bogus'" in proc.stderr
