"""Shared fixtures: every test runs with its own cache and run roots (never ~/.cache)."""

from __future__ import annotations

import os

import pytest

from pathlib import Path

from tests.helpers import CHROMIUM, CHROMIUM_ARGS, REPO, run_cli  # noqa: F401  (re-exported for older imports)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("vastbench_cache")
    old = {k: os.environ.get(k) for k in ("VASTBENCH_CACHE", "VASTBENCH_RUNS")}
    os.environ["VASTBENCH_CACHE"] = str(cache)
    os.environ["VASTBENCH_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    yield cache
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v




@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One uninterrupted smoke run, shared by tests that only read it."""
    from vastbench.config import load_suite
    from vastbench.rundir import RunDir
    from vastbench.runner import run_suite

    root = tmp_path_factory.mktemp("smoke") / "run"
    result = run_suite(load_suite("smoke"), RunDir(root), device="cpu")
    return result


@pytest.fixture(scope="session")
def synthtalk_quick():
    """The SynthTalk ``quick`` manifest, built once per test session (1-3 minutes on 2 cores)."""
    from vastbench.config import DatasetConfig
    from vastbench.data.synthtalk.dataset import SynthTalkDataset

    return SynthTalkDataset(DatasetConfig(name="synthtalk", profile="quick", seed=0)).load()


@pytest.fixture(scope="session")
def chromium():
    """A headless Debian Chromium driven by Playwright (never `playwright install`), one per session:
    a second sync Playwright in the same thread fails ("using Playwright Sync API inside the asyncio loop")."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright: pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found; apt-get install chromium (or set VASTBENCH_CHROMIUM)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
