"""Fixtures of the data tests."""

from __future__ import annotations

import pytest
from helpers.data import make_tokenizer


@pytest.fixture(scope="module")
def tok():
    """The small local tokenizer with Qwen2.5's chat template that the data tests read rows with."""
    return make_tokenizer("qwen2.5")
