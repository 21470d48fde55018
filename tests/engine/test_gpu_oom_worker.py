"""The worker's real path up to the point where CUDA runs out of memory: the exception the CUDA
stack raises is injected at the boundary (model loading, one training step), everything else is
the real worker (tokenizer, data, 4-bit model, Trainer) on the CPU."""

from __future__ import annotations

import signal

import pytest

from helpers.runs import demo_test_config

pytestmark = pytest.mark.slow


def _session(fresh_home, **train):
    from tui_tuner import paths
    from tui_tuner.rundir import RunDir, Status
    from tui_tuner.worker.train import TrainingSession

    cfg = demo_test_config(**train)
    run = RunDir(paths.runs_dir() / "oom-run")
    run.path.mkdir(parents=True)
    run.config_path.write_text(cfg.to_yaml(), encoding="utf-8")
    run.write_status(Status(run_id=run.run_id, state="pending", model="demo", dataset="sample"))
    return run, TrainingSession(run, resume=False)


@pytest.fixture
def keep_signal_handlers():
    old = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGTERM, old[0])
    signal.signal(signal.SIGINT, old[1])


def test_oom_while_loading_the_model_says_the_model_does_not_fit(fresh_home, monkeypatch, keep_signal_handlers):
    import torch
    from transformers import AutoModelForCausalLM

    def oom(*a, **k):  # what bitsandbytes' quantization on a full GPU raises: the caching allocator's OOM
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.95 GiB. GPU 0 has a total "
                                     "capacity of 7.63 GiB of which 1.02 GiB is free.")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", oom)
    run, session = _session(fresh_home)
    assert session.main() == 1
    st = run.read_status()
    assert st.state == "failed" and "while loading the model" in st.error
    assert "batch_size" not in st.hint and "model itself does not fit" in st.hint


def test_oom_in_a_training_step_as_accelerator_error_gets_the_batch_hint(fresh_home, monkeypatch,
                                                                          keep_signal_handlers):
    import torch
    from transformers import Trainer

    def oom(*a, **k):  # a kernel launch failing for memory: AcceleratorError, wrapped by the step
        try:
            raise torch.AcceleratorError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported")
        except torch.AcceleratorError as e:
            raise RuntimeError("error in training step") from e

    monkeypatch.setattr(Trainer, "training_step", oom)
    run, session = _session(fresh_home, max_steps=2)
    assert session.main() == 1
    st = run.read_status()
    assert st.state == "failed" and st.error.startswith("CUDA out of memory") and "loading" not in st.error
    assert "train.batch_size" in st.hint


def test_export_merge_loads_the_adapter_on_the_cpu(trained_demo_run, tmp_path, monkeypatch):
    # peft puts the adapter on infer_device() ("cuda" whenever torch sees a GPU) unless told
    from peft import PeftModel

    from tui_tuner.export import export_merged
    from tui_tuner.inference.target import describe_target

    seen = {}
    original = PeftModel.from_pretrained.__func__

    def spy(cls, *a, **k):
        seen.update(k)
        return original(cls, *a, **k)

    monkeypatch.setattr(PeftModel, "from_pretrained", classmethod(spy))
    out = export_merged(describe_target(str(trained_demo_run.path), None), tmp_path / "merged", dtype="fp32",
                        progress=lambda *a: None)
    assert seen.get("torch_device") == "cpu" and (out / "config.json").is_file()
