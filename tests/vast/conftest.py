"""VAST tests run single-threaded: they share two cores, and tiny models are fastest on one thread."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The suite shares two cores with other work; small models are fastest single-threaded anyway.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
