"""Fixtures of the UI tests."""

from __future__ import annotations

import pytest
from helpers.runs import scripted_chat_run


@pytest.fixture
def chat_run(tmp_path, fresh_home):
    """A finished run with a whole adapter, for the chat pane with the scripted process."""
    return scripted_chat_run(tmp_path / "chat-run")
