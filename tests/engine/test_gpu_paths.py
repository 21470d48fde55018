"""Every CUDA-specific decision, with the GPU facts simulated at the boundary (NVML answers, torch's
device answers, the exceptions CUDA raises). Runs on the CPU; nothing here trains."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from helpers.gpu_fakes import GIB, RTX_3060, RTX_3090, Dev, fake_torch, use_nvml
from tui_tuner import gpu as gpus
from tui_tuner.errors import OOM_LOAD_HINT, OOM_TRAIN_HINT, UserError, is_out_of_memory, oom_hint
from tui_tuner import devices


# --- finding 13: tests never train on CUDA -----------------------------------------------------
def test_tests_hide_every_gpu_and_the_worker_env_keeps_it_hidden(monkeypatch):
    import torch

    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert not torch.cuda.is_available()
    from tui_tuner.config import RunConfig
    from tui_tuner.launcher import _claim_gpu, _worker_env

    claim = _claim_gpu(RunConfig())
    env = _worker_env(*claim)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env[devices.ASSIGNED_ENV] == "cpu"


# --- finding 1: bf16 only where it is native ---------------------------------------------------
@pytest.mark.parametrize("cap,dtype", [((7, 5), "float16"), ((7, 0), "float16"), ((6, 1), "float16"),
                                       ((8, 0), "bfloat16"), ((8, 6), "bfloat16"), ((9, 0), "bfloat16")])
def test_auto_dtype_follows_compute_capability_not_emulated_bf16(cap, dtype):
    import torch

    expected = getattr(torch, dtype)
    t = fake_torch(capability=cap)
    assert t.cuda.is_bf16_supported() is True  # what the old code asked: True even on a T4
    assert devices.compute_dtype("auto", t, True) is expected
    # the wizard's GpuInfo agrees with the worker
    info = gpus.GpuInfo(index=0, name="x", total_bytes=1, free_bytes=1, compute_capability=cap, driver=None)
    assert info.supports_bf16 == (expected is torch.bfloat16)


def test_auto_dtype_on_cpu_is_fp32_and_explicit_bf16_on_a_t4_is_flagged():
    import torch

    assert devices.compute_dtype("auto", fake_torch(cuda=False), False) is torch.float32
    note = devices.dtype_note("bf16", fake_torch(capability=(7, 5)), True)
    assert note and "7.5" in note and "emulated" in note
    assert devices.dtype_note("bf16", fake_torch(capability=(8, 9)), True) is None


def test_inference_uses_the_same_dtype_choice_as_training():
    import torch
    from tui_tuner.config import QuantizationConfig
    from tui_tuner.inference.engine import _compute_dtype

    # the real torch here has no CUDA: fp32, like the worker
    assert _compute_dtype(QuantizationConfig(), torch) is devices.compute_dtype("auto", torch, False)


# --- finding 2: never more than one GPU visible to the Trainer --------------------------------
def test_worker_with_two_visible_gpus_keeps_only_the_first(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaa,GPU-bbb")
    devices.pin_one_gpu(None)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-aaa"


def test_worker_started_by_hand_on_a_two_gpu_box_pins_the_freest(monkeypatch):
    use_nvml(monkeypatch, [Dev(uuid="GPU-aaa", free_gib=3.0, **RTX_3090), Dev(uuid="GPU-bbb", free_gib=20.0, **RTX_3090)])
    monkeypatch.delenv(devices.ASSIGNED_ENV, raising=False)
    devices.pin_one_gpu(None)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-bbb"
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_two_gpus_visible_to_torch_is_refused_before_the_batch_doubles():
    # transformers' TrainingArguments.train_batch_size = per_device * n_gpu (= device_count)
    with pytest.raises(UserError, match="2 GPUs are visible"):
        devices.check_cuda(fake_torch(device_count=2), assigned="GPU-aaa")
    assert devices.check_cuda(fake_torch(device_count=1), assigned="GPU-aaa") is True


# --- finding 5: a GPU box whose torch cannot use CUDA -------------------------------------------
def test_cpu_only_torch_on_a_gpu_box_fails_instead_of_training_on_the_cpu():
    with pytest.raises(UserError) as e:
        devices.check_cuda(fake_torch(cuda=False, cuda_build=None, version="2.13.0+cpu"), assigned="GPU-aaa")
    assert "CPU-only build" in e.value.message and "gpu: cpu" in e.value.hint


def test_driver_too_old_for_the_torch_cuda_build_fails_with_the_driver_hint():
    with pytest.raises(UserError) as e:
        devices.check_cuda(fake_torch(cuda=False, cuda_build="12.8"), assigned="GPU-aaa")
    assert "CUDA 12.8" in e.value.message and "driver" in e.value.hint


def test_cpu_on_purpose_or_no_gpu_trains_on_the_cpu():
    t = fake_torch(cuda=False, cuda_build=None)
    assert devices.check_cuda(t, assigned="cpu") is False
    assert devices.check_cuda(t, assigned="") is False


# --- finding 3: fp16 loss-scaler skips are not divergence --------------------------------------
class _Run:
    def __init__(self):
        self.events = []

    def append_event(self, type_, **data):
        ev = {"type": type_, **data}
        self.events.append(ev)
        return ev

    def update_status(self, **kw):
        pass


def _callback(fp16: bool):
    from tui_tuner.worker.callbacks import RunEventsCallback

    return RunEventsCallback(_Run(), SimpleNamespace(is_set=lambda: False), resumed_from=None, estimate_gib=None,
                             early_stopping_patience=None, echo=lambda *_: None, fp16=fp16)


def _log(cb, step, loss, grad):
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    state = SimpleNamespace(global_step=step, epoch=0.1, num_input_tokens_seen=step * 100)
    cb.on_log(None, state, control, logs={"loss": loss, "grad_norm": grad, "learning_rate": 1e-4})
    return control


def test_fp16_overflow_skipped_steps_at_the_start_do_not_stop_the_run():
    cb = _callback(fp16=True)
    for step in range(1, 6):  # the scaler halves 2**16 a few times: inf grad norm, finite loss
        assert not _log(cb, step, 2.5, float("inf")).should_training_stop
    assert not _log(cb, 6, 2.4, 0.8).should_training_stop
    assert cb.failure is None and cb.skipped_total == 5 and cb.skipped_in_a_row == 0


def test_fp16_overflow_that_never_ends_is_divergence():
    from tui_tuner.worker.callbacks import FP16_MAX_SKIPPED_IN_A_ROW

    cb = _callback(fp16=True)
    stops = [_log(cb, s, 2.5, float("nan")).should_training_stop for s in range(1, FP16_MAX_SKIPPED_IN_A_ROW + 1)]
    assert stops[-1] and not any(stops[:-1])
    assert "overflowed" in cb.failure[0]


def test_non_finite_grad_norm_without_fp16_and_nan_loss_with_fp16_still_stop_at_once():
    cb = _callback(fp16=False)
    assert _log(cb, 1, 2.5, float("inf")).should_training_stop
    cb = _callback(fp16=True)
    assert _log(cb, 1, float("nan"), float("nan")).should_training_stop
    assert "diverged" in cb.failure[0]


# --- finding 4: every form an out-of-memory takes ---------------------------------------------
def _wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise RuntimeError("bitsandbytes: error in 4-bit matmul") from e
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("make", [  # torch is imported when a test runs, not when tests are collected
    lambda torch: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 11.76 GiB"),
    lambda torch: torch.AcceleratorError("CUDA error: out of memory\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side assertions."),
    lambda torch: RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
    lambda torch: _wrapped(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")),
    lambda torch: _wrapped(torch.AcceleratorError("CUDA error: out of memory")),
])
def test_out_of_memory_is_recognised_in_every_form(make):
    import torch

    assert is_out_of_memory(make(torch))


@pytest.mark.parametrize("make", [lambda torch: RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
                                  lambda torch: torch.AcceleratorError("CUDA error: device-side assert triggered"),
                                  lambda torch: ValueError("memory layout"), lambda torch: KeyError("out")])
def test_other_errors_are_not_out_of_memory(make):
    import torch

    assert not is_out_of_memory(make(torch))


def test_load_time_oom_gets_the_load_hint_not_the_batch_hint():
    assert oom_hint("load") == OOM_LOAD_HINT and "batch_size" not in OOM_LOAD_HINT
    assert oom_hint("train") == OOM_TRAIN_HINT and "batch_size" in OOM_TRAIN_HINT


# --- finding 8: the NVML handle is the device CUDA uses ----------------------------------------
def test_nvml_handle_follows_a_uuid_in_cuda_visible_devices(monkeypatch):
    use_nvml(monkeypatch, [Dev(uuid="GPU-aaa", free_gib=20.0, **RTX_3090), Dev(uuid="GPU-bbb", free_gib=11.0, **RTX_3060)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbb")
    g = gpus.detect_gpu()
    assert g.name == "NVIDIA GeForce RTX 3060" and g.index == 1 and g.total_gib == 12.0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert gpus.detect_gpu().uuid == "GPU-bbb"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpus.detect_gpu() is None  # every GPU hidden: this process runs on the CPU


def test_mig_slice_reports_its_own_memory_not_the_parents(monkeypatch):
    a100 = Dev(name="NVIDIA A100-SXM4-80GB", uuid="GPU-a100", total_gib=80.0, free_gib=79.0, cc=(8, 0),
               mig=[Dev(name="MIG 1g.10gb", uuid="MIG-s1", total_gib=9.75, free_gib=9.5, cc=None),
                    Dev(name="MIG 3g.40gb", uuid="MIG-s2", total_gib=39.5, free_gib=39.0, cc=None)])
    use_nvml(monkeypatch, [a100])
    listed = gpus.list_gpus()
    assert [(g.uuid, g.mig, round(g.total_gib, 2)) for g in listed] == [("MIG-s1", True, 9.75), ("MIG-s2", True, 39.5)]
    assert listed[0].compute_capability == (8, 0)  # the parent's
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-s2")
    g = gpus.detect_gpu()
    assert g.mig and round(g.total_gib, 1) == 39.5 and g.compute_capability == (8, 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the parent's index: CUDA uses its first slice
    assert round(gpus.detect_gpu().total_gib, 2) == 9.75
    # a MIG slice is what the launcher passes on, by UUID
    assert gpus.cuda_env(listed[1])["CUDA_VISIBLE_DEVICES"] == "MIG-s2"


def test_sampler_samples_the_device_cuda_uses(monkeypatch):
    use_nvml(monkeypatch, [Dev(uuid="GPU-aaa", free_gib=20.0, **RTX_3090),
                           Dev(uuid="GPU-bbb", free_gib=11.0, procs=[(4242, 3 * GIB)], **RTX_3060)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbb")
    s = gpus.make_sampler().sample_gpu()
    assert s.name == "NVIDIA GeForce RTX 3060" and s.processes == [{"pid": 4242, "mem_used": 3 * GIB}]
    assert s.util is None  # not supported → N/A, never an exception


# --- the gpu: setting ---------------------------------------------------------------------------
def test_select_gpu_default_is_the_most_free_memory_and_skips_held_gpus(monkeypatch):
    use_nvml(monkeypatch, [Dev(uuid="GPU-aaa", free_gib=20.0, **RTX_3090), Dev(uuid="GPU-bbb", free_gib=23.0, **RTX_3090)])
    assert gpus.select_gpu(None).uuid == "GPU-bbb"
    assert gpus.select_gpu("auto", busy={"GPU-bbb"}).uuid == "GPU-aaa"
    assert gpus.select_gpu(0).uuid == "GPU-aaa" and gpus.select_gpu("GPU-bbb").index == 1
    assert gpus.select_gpu("cpu") is None
    with pytest.raises(UserError) as e:
        gpus.select_gpu(3)
    assert "GPU-aaa" in e.value.message and "GPU-bbb" in e.value.message  # names what there is
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the user narrowed it already
    assert gpus.select_gpu(None).uuid == "GPU-aaa"


def test_config_gpu_field_is_validated():
    from tui_tuner.config import ConfigError, from_dict

    assert from_dict({"gpu": 1}).gpu == 1 and from_dict({"gpu": "MIG-5c1"}).gpu == "MIG-5c1"
    assert from_dict({}).gpu is None and "gpu: null" in from_dict({}).to_yaml()
    with pytest.raises(ConfigError, match="gpu: 'cuda:1' is not allowed"):
        from_dict({"gpu": "cuda:1"})


# --- finding 10: one run per GPU, not per home ---------------------------------------------------
def _live_run(home, run_id: str, gpu_key: str):
    import psutil

    from tui_tuner.rundir import RunDir, Status

    run = RunDir(home / "runs" / run_id)
    run.path.mkdir(parents=True)
    me = psutil.Process()
    run.write_status(Status(run_id=run_id, state="running", pid=me.pid, pid_create_time=me.create_time(),
                            step=3, total_steps=10, gpu=gpu_key))
    return run


def test_two_runs_on_two_gpus_work_and_two_on_one_are_refused_naming_the_holder(monkeypatch, fresh_home):
    from tui_tuner.config import RunConfig
    from tui_tuner.errors import RunError
    from tui_tuner.launcher import _claim_gpu, _worker_env

    use_nvml(monkeypatch, [Dev(uuid="GPU-aaa", free_gib=23.0, **RTX_3090), Dev(uuid="GPU-bbb", free_gib=22.0, **RTX_3090)])
    first = _claim_gpu(RunConfig())
    assert first[1] == "GPU-aaa"
    _live_run(fresh_home, "run-one", "GPU-aaa")
    second = _claim_gpu(RunConfig())  # default: the free GPU, though it has less free memory
    assert second[1] == "GPU-bbb"
    env = _worker_env(*second)
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-bbb" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    with pytest.raises(RunError) as e:
        _claim_gpu(RunConfig(gpu=0))
    assert "run-one" in e.value.message and "GPU 0" in e.value.message and "gpu:" in e.value.hint


def test_fit_verdict_uses_free_memory_of_the_runs_gpu(monkeypatch, fresh_home):
    from tui_tuner import plan
    from tui_tuner.config import from_dict

    # 24 GiB card with 20 GiB taken by others: a 7B run at 2 x 1024 (~11 GiB) does not fit in what is free
    use_nvml(monkeypatch, [Dev(uuid="GPU-aaa", free_gib=4.0, **RTX_3090)])
    cfg = from_dict({"model": {"name_or_path": "Qwen/Qwen2.5-7B-Instruct"},
                     "train": {"batch_size": 2}, "data": {"max_length": 1024}})
    p = plan.build_plan(cfg, inspect=False, history=None)
    assert p.vram_gib == pytest.approx(4.0) and p.estimate["fits"] is False


# --- finding 9: flash_attention_2 only where it runs ------------------------------------------
def test_flash_attention_2_falls_back_with_the_reason(monkeypatch):
    import torch

    monkeypatch.setattr(devices, "flash_attention_available", lambda: True)
    assert devices.usable_attention("flash_attention_2", fake_torch(capability=(8, 6)), True, torch.bfloat16) == \
        ("flash_attention_2", None)
    attn, note = devices.usable_attention("flash_attention_2", fake_torch(capability=(7, 5)), True, torch.float16)
    assert attn == "sdpa" and "7.5" in note
    attn, note = devices.usable_attention("flash_attention_2", fake_torch(capability=(8, 6)), True, torch.float32)
    assert attn == "sdpa" and "float32" in note
    attn, note = devices.usable_attention("flash_attention_2", fake_torch(cuda=False), False, torch.float32)
    assert attn == "sdpa" and "no GPU" in note
    monkeypatch.setattr(devices, "flash_attention_available", lambda: False)
    attn, note = devices.usable_attention("flash_attention_2", fake_torch(capability=(9, 0)), True, torch.bfloat16)
    assert attn == "sdpa" and "flash-attn" in note
    assert devices.usable_attention("sdpa", fake_torch(), True, torch.bfloat16) == ("sdpa", None)


# --- finding 6: chat during training checks free memory -----------------------------------------
def test_chat_next_to_a_training_run_is_refused_when_it_would_starve_the_run():
    from tui_tuner.inference.gpu_memory import check_chat_fits

    # RTX 3060 12 GiB; the run estimated 10 GiB and holds 7 GiB so far (eval still to come): 5 GiB free
    with pytest.raises(UserError) as e:
        check_chat_fits(int(1.5 * GIB), 5 * GIB, 12 * GIB, training_run="r1", run_estimate_bytes=10 * GIB)
    assert "r1" in e.value.message and "tui-tuner stop r1" in e.value.hint
    # same GPU, the run already at its peak: 1.5 GiB chat fits in 5 GiB free
    check_chat_fits(int(1.5 * GIB), 5 * GIB, 12 * GIB, training_run="r1", run_estimate_bytes=7 * GIB)
    with pytest.raises(UserError, match="only 1.0 GiB free"):
        check_chat_fits(2 * GIB, 1 * GIB, 12 * GIB)


def test_chat_process_gets_the_runs_gpu(monkeypatch, fresh_home, tmp_path):
    from tui_tuner.config import RunConfig, save_config
    from tui_tuner.inference.client import chat_gpu_env

    use_nvml(monkeypatch, [Dev(uuid="GPU-aaa", free_gib=23.0, **RTX_3090), Dev(uuid="GPU-bbb", free_gib=5.0, **RTX_3060)])
    run = tmp_path / "run"
    run.mkdir()
    save_config(RunConfig(gpu="GPU-bbb"), run / "config.yaml")
    env = chat_gpu_env(str(run))
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-bbb" and env[devices.ASSIGNED_ENV] == "GPU-bbb"
    assert chat_gpu_env("demo")["CUDA_VISIBLE_DEVICES"] == "GPU-aaa"  # a model alone: the most free


# --- finding 11: memory recorded at eval and at the OOM itself ----------------------------------
def test_eval_records_a_memory_event_with_the_process_figure(monkeypatch):
    import torch

    cb = _callback(fp16=False)
    cb.cuda = True
    cb.process_memory = lambda: 9 * GIB
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 6 * GIB)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 7 * GIB)
    control = SimpleNamespace(should_training_stop=False, should_save=False)
    state = SimpleNamespace(global_step=5, epoch=0.5, num_input_tokens_seen=500)
    cb.on_log(None, state, control, logs={"eval_loss": 1.5})
    mem = [e for e in cb.run.events if e["type"] == "memory"]
    assert mem == [{"type": "memory", "step": 5, "phase": "eval", "peak_allocated": 6 * GIB,
                    "peak_reserved": 7 * GIB, "process_used": 9 * GIB}]


def test_monitor_history_keeps_the_process_peak_for_the_panel():
    from tui_tuner.progress import RunHistory

    h = RunHistory()
    for ev in ({"type": "memory", "step": 1, "peak_reserved": 5 * GIB, "process_used": 6 * GIB},
               {"type": "memory", "step": 2, "peak_reserved": 4 * GIB, "process_used": 7 * GIB}):
        h.apply(ev)
    assert h.peak_reserved == 5 * GIB and h.process_used == 7 * GIB


def test_panel_shows_the_estimate_split_like_the_measured_peaks():
    from tui_tuner.ui.widgets.gpu_panel import GpuView, render_gpu

    view = GpuView(gpu={"name": "RTX 3060", "mem_used": 7 * GIB, "mem_total": 12 * GIB, "processes": []}, seen=True,
                   estimate_gib=6.5, estimate_context_gib=0.5, peak_allocated=5 * GIB, peak_reserved=int(5.5 * GIB),
                   process_used=6 * GIB)
    text = render_gpu(view, width=60)
    assert "6.0 + 0.5 CUDA context" in text and "process 6.0 GiB incl. CUDA context" in text


def test_a_gpu_held_by_another_home_or_user_is_refused_and_auto_picks_another(monkeypatch, fresh_home, tmp_path):
    """As found: "one run per GPU" was one run per home directory; a second TUI_TUNER_HOME (or another
    user) launched onto the GPU a run was already training on. A launch now leaves a machine-wide claim."""
    import subprocess
    import sys

    from tui_tuner import gpu_claims
    from tui_tuner.config import RunConfig
    from tui_tuner.errors import RunError
    from tui_tuner.launcher import _claim_gpu

    use_nvml(monkeypatch, [Dev(uuid="GPU-aaa", free_gib=23.0, **RTX_3090), Dev(uuid="GPU-bbb", free_gib=22.0, **RTX_3090)])
    other_home_run = tmp_path / "other-home" / "runs" / "20261202-demo"
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the other run's worker
    try:
        gpu_claims.claim("GPU-aaa", other_home_run, worker.pid)
        assert gpu_claims.busy_keys() == {"GPU-aaa"}
        with pytest.raises(RunError) as e:
            _claim_gpu(RunConfig(gpu=0))
        assert str(other_home_run) in e.value.message and "GPU 0" in e.value.message and "gpu:" in e.value.hint
        assert _claim_gpu(RunConfig())[1] == "GPU-bbb"  # auto: the GPU nobody holds
    finally:
        worker.kill()
        worker.wait()
    assert gpu_claims.holder("GPU-aaa") is None  # its worker is gone: a stale claim holds nothing
    assert _claim_gpu(RunConfig(gpu=0))[1] == "GPU-aaa"
