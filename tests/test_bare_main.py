"""Spawned training workers must not re-run the caller's ``__main__`` (Streamlit, notebooks, test
runners and unguarded scripts swap or own it); this broke the process pool in CI."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import types

import pytest

from vastbench.generators import bare_main


@pytest.fixture
def hostile_main(tmp_path):
    script = tmp_path / "hostile.py"
    script.write_text("raise SystemExit('re-ran the parent script')\n")
    fake = types.ModuleType("__main__")
    fake.__file__ = str(script)
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = fake
    yield
    sys.modules["__main__"] = saved


def _pool_pid() -> int:
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        with bare_main():
            fut = pool.submit(os.getpid)
        return fut.result(timeout=120)


def test_workers_start_under_a_hostile_main(hostile_main):
    assert _pool_pid() != os.getpid()
    assert sys.modules["__main__"].__file__.endswith("hostile.py")  # restored


def test_without_it_the_pool_breaks(hostile_main):
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        with pytest.raises(cf.process.BrokenProcessPool):
            pool.submit(os.getpid).result(timeout=120)
