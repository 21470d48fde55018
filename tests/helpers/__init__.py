"""Helpers shared by every test area, written once; import them as `from helpers.<module> import ...`
(pytest puts tests/ on sys.path: `pythonpath` in pyproject.toml).

  wait      wait_for (plain polling) and wait_until (polling inside a Textual Pilot test)
  runs      the shortened demo run config, a run's train steps, the synthetic run writer and the
            recorded run folders (tests/ui/monitor_fixtures)
  ui        Pilot helpers (screen text, key bursts, idle CPU) and the fixed data of the snapshot tests
  chat      a shared inference process and the scripted one (chat_fake_server.py)
  data      tiny local tokenizers carrying real chat-template families, JSONL writers
  gpu_fakes GPU facts simulated at the boundary (NVML answers, torch's device answers)
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
