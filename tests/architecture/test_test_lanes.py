"""The fast lane (`pytest -m "not slow"`) guards itself: tests/conftest.py marks slow every test that
uses a fixture that trains or loads a real model, and refuses the training worker to any test that
is not marked slow."""

from __future__ import annotations

import pytest


def test_a_test_not_marked_slow_cannot_start_the_training_worker():
    from tui_tuner import launcher

    with pytest.raises(AssertionError, match="not marked slow"):
        launcher._spawn_worker(None, resume=False)


@pytest.mark.slow
def test_a_slow_test_gets_the_real_worker_spawn():
    from tui_tuner import launcher

    assert launcher._spawn_worker.__module__ == "tui_tuner.launcher"


def test_every_collected_user_of_a_slow_fixture_is_marked_slow(request):
    [root_conftest] = [p for p in request.config.pluginmanager.get_plugins() if hasattr(p, "SLOW_FIXTURES")]
    SLOW_FIXTURES = root_conftest.SLOW_FIXTURES
    assert "trained_demo_run" in SLOW_FIXTURES
    users = [item for item in request.session.items if SLOW_FIXTURES.intersection(item.fixturenames)]
    assert all(item.get_closest_marker("slow") for item in users), [i.nodeid for i in users]
