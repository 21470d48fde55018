"""One noise filter, progress.is_noise: the monitor's log tail, the chat client's crash message, the
wizard's helper process and the chat's export output leave out the same library chatter."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tui_tuner.progress import LogTail, is_noise, is_python_warning

NOISE = [
    "",
    "   ",
    "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. Please make sure",
    "  pip install kernels",
    "Loading weights: 100%|██████████| 39/39 [00:02<00:00, 17.1it/s]",
    "Loading weights:   0%|          | 0/39 [00:00<?, ?it/s]",
    "Writing model shards: 100%|██████████| 1/1 [00:00<00:00,  3.1it/s]",
    "Map: 100%|██████████| 200/200 [00:00<00:00, 5000 examples/s]",
    "/venv/lib/python3.12/site-packages/transformers/modeling_utils.py:3312: FutureWarning: `torch_dtype` is deprecated",
    "  warnings.warn(",
]
KEPT = [
    "state: failed — CUDA out of memory",
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "check: the merged model answers like the adapter (3/3 prompts)",
    "warning: loss spiked at step 40",
    "Traceback (most recent call last):",
]


@pytest.mark.parametrize("line", NOISE)
def test_noise(line):
    assert is_noise(line)


@pytest.mark.parametrize("line", KEPT)
def test_kept(line):
    assert not is_noise(line)


def test_python_warning_is_told_apart():
    assert is_python_warning(NOISE[8]) and not is_python_warning(KEPT[3])


def test_log_tail_leaves_out_noise_and_counts_warnings(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("\n".join(["start", *NOISE[2:8], NOISE[8], "  return fn(*args)", "step 1", *KEPT]) + "\n")
    tail = LogTail(log)
    new, _ = tail.read_new()
    assert new == ["start", "step 1", *KEPT]
    assert tail.hidden == 1


def test_chat_client_stderr_tail_leaves_out_noise():
    from tui_tuner.inference.client import InferenceClient

    client = InferenceClient("demo", command=[sys.executable, "-c", "import sys; sys.stderr.write(sys.argv[1]); sys.exit(3)",
                                              "\n".join([*NOISE, KEPT[1], *NOISE[2:]]) + "\n"])
    client.start()
    client.exited.wait(20)
    assert list(client.stderr_tail) == [KEPT[1]]
    assert "ran out of memory" in client.exit_event.message


def test_wizard_helper_failure_names_the_last_line_that_is_not_noise(monkeypatch):
    from tui_tuner.ui import bridge

    real = asyncio.create_subprocess_exec

    async def child(*args, **kwargs):  # a helper that dies after printing its error and then noise
        script = "import sys; sys.stderr.write(sys.argv[1]); sys.exit(1)"
        return await real(sys.executable, "-c", script, "\n".join([KEPT[1], *NOISE]) + "\n", **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", child)
    result = asyncio.run(bridge.call("inspect", {}))
    assert not result.ok and result.error == f"the inspect helper process failed: {KEPT[1]}"
