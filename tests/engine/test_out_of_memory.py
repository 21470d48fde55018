"""Out of memory is recognised in one place (tui_tuner.errors) and its hint written there once: the
training worker, the chat process and the chat client all classify every form CUDA raises it in, and
say the hint errors.oom_hint gives for where it happened. Runs on the CPU: the exceptions are built
from the texts the CUDA stack raises; nothing here trains or loads a model."""

from __future__ import annotations

import io
import json

import pytest

from tui_tuner import errors

# The texts each form of a GPU out-of-memory carries (see errors._OOM_TEXTS for where each comes from).
OOM_TEXTS = [
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "torch.AcceleratorError: CUDA error: out of memory",
    "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "RuntimeError: cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "CUDA driver error: CUDA_ERROR_OUT_OF_MEMORY",
]
NOT_OOM = ["RuntimeError: mat1 and mat2 shapes cannot be multiplied", "ValueError: memory layout",
           "CUDA error: device-side assert triggered"]


def _wrapped(text: str) -> BaseException:
    """`text` as the cause of another error, the way bitsandbytes/accelerate re-raise it."""
    try:
        try:
            raise RuntimeError(text)
        except RuntimeError as inner:
            raise RuntimeError("error in training step") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("text", OOM_TEXTS)
def test_every_form_is_out_of_memory_as_text_and_as_exception(text):
    assert errors.is_out_of_memory_text(text)
    assert errors.is_out_of_memory(RuntimeError(text))
    assert errors.is_out_of_memory(_wrapped(text))


@pytest.mark.parametrize("text", NOT_OOM)
def test_other_errors_are_not_out_of_memory(text):
    assert not errors.is_out_of_memory_text(text)
    assert not errors.is_out_of_memory(_wrapped(text))


def test_each_phase_has_its_hint_and_an_unknown_phase_is_refused():
    hints = {phase: errors.oom_hint(phase) for phase in errors.OOM_PHASES}
    assert "batch_size" in hints["train"] and "batch_size" not in hints["load"]
    assert "max_new_tokens" in hints["chat"] and hints["chat-crash"].startswith(hints["chat"])
    assert "restart" in hints["chat-crash"]
    with pytest.raises(ValueError):
        errors.oom_hint("training")


# --- the chat client: its process died, the last stderr line says why ---------------------------
@pytest.mark.parametrize("text", OOM_TEXTS)
def test_chat_client_says_the_process_ran_out_of_memory_for_every_form(text):
    from tui_tuner.inference.client import InferenceClient

    client = InferenceClient("demo")
    client.stderr_tail.extend(["Traceback (most recent call last):", "  ...", text])
    reason = client._exit_reason(1)
    assert reason["message"].startswith("the inference process ran out of memory")
    assert reason["hint"] == errors.oom_hint("chat-crash")


def test_chat_client_does_not_call_another_crash_out_of_memory():
    from tui_tuner.inference.client import InferenceClient

    client = InferenceClient("demo")
    client.stderr_tail.append(NOT_OOM[0])
    assert "out of memory" not in client._exit_reason(1)["message"]


# --- the chat process: generating fails, the process lives on ------------------------------------
class _FailingEngine:
    def __init__(self, exc: BaseException):
        self.exc = exc

    def generate(self, *a, **k):
        raise self.exc


def _generate_error(exc: BaseException) -> dict:
    from tui_tuner.inference.server import Server

    out = io.StringIO()
    server = Server(out)
    server.engine = _FailingEngine(exc)
    server._generate({"cmd": "generate", "id": "r1", "messages": [{"role": "user", "content": "hi"}]})
    [error] = [ev for ev in map(json.loads, out.getvalue().splitlines()) if ev["event"] == "error"]
    return error


@pytest.mark.parametrize("text", OOM_TEXTS)
def test_chat_server_reports_every_form_as_oom_with_the_chat_hint(text, capsys):
    error = _generate_error(_wrapped(text))
    assert error["kind"] == "oom" and error["hint"] == errors.oom_hint("chat")


def test_chat_server_reports_another_failure_as_internal(capsys):
    error = _generate_error(_wrapped(NOT_OOM[0]))
    assert error["kind"] == "internal" and error["hint"] is None


# --- the training worker ---------------------------------------------------------------------------
@pytest.mark.parametrize("training,phase", [(False, "load"), (True, "train")])
@pytest.mark.parametrize("text", OOM_TEXTS)
def test_worker_fails_with_the_hint_of_its_phase_for_every_form(fresh_home, text, training, phase, capsys):
    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status
    from tui_tuner.worker.train import TrainingSession

    run = RunDir(paths.runs_dir() / "oom-run")
    run.path.mkdir(parents=True)
    run.write_status(Status(run_id=run.run_id, state="running", model="demo", dataset="sample"))
    session = TrainingSession(run, resume=False)
    session.training = training
    assert session._fail(_wrapped(text)) == 1
    st = run.read_status_raw()
    assert st.state == "failed" and st.error.startswith("CUDA out of memory")
    assert st.hint.endswith(errors.oom_hint(phase))
