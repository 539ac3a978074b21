"""A session-wide SynthTalk quick build, shared by the tests that need the whole dataset."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthtalk_quick():
    """The SynthTalk ``quick`` manifest (built once per test session, about 2 minutes on 2 cores)."""
    from vastbench.config import DatasetConfig
    from vastbench.data.synthtalk.dataset import SynthTalkDataset

    return SynthTalkDataset(DatasetConfig(name="synthtalk", profile="quick", seed=0)).load()
