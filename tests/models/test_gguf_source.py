"""A .gguf file as a model source, before anything is dequantized: one-line errors for bad files,
torch-free lookups, the cache key, and the plan. (The conversion itself, training and chat on the
real Gemma 3 270M are in test_real_model.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tui_tuner.models import refs
from tui_tuner.config import RunConfig
from tui_tuner.errors import UserError
from tui_tuner.models import gguf_source
from tui_tuner.models.sources import load_model_config


def test_bad_gguf_paths_fail_in_one_line(tmp_path, fresh_home):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(UserError, match="model path does not exist"):
        refs.resolve_model_ref(str(missing), build_demo=False)
    folder = tmp_path / "folder.gguf"
    folder.mkdir()
    with pytest.raises(UserError, match="is not a file"):
        load_model_config(str(folder))
    fake = tmp_path / "weights.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(UserError, match="is not a GGUF file"):
        refs.resolve_model_ref(str(fake))  # also where the worker would start converting
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x05" * 9)
    with pytest.raises(UserError, match="cannot read its GGUF metadata") as e:
        gguf_source.ensure_converted(str(truncated))
    assert "truncated" in (e.value.hint or "")
    assert not (fresh_home / "cache" / "gguf").exists() or not any(
        p.name.startswith("cut-") and not p.name.endswith(".lock") for p in (fresh_home / "cache" / "gguf").iterdir())


def test_train_refuses_a_bad_gguf_before_creating_a_run(tmp_path, fresh_home):
    cfg = tmp_path / "run.yaml"
    fake = tmp_path / "model.gguf"
    fake.write_text("not a gguf")
    cfg.write_text(f"model: {{name_or_path: {fake}}}\n", encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "tui_tuner", "train", str(cfg)], capture_output=True, text=True,
                       env=dict(os.environ, TUI_TUNER_HOME=str(fresh_home)), timeout=120)
    assert p.returncode == 2
    assert "is not a GGUF file" in p.stderr and "Traceback" not in p.stderr + p.stdout
    assert not any((fresh_home / "runs").glob("*")) if (fresh_home / "runs").exists() else True


def test_an_unconverted_gguf_is_found_without_torch_and_planned(gemma_gguf, fresh_home):
    # The lookups the UI process and the launcher's preflight make: instant, and torch stays unimported.
    code = (
        "import sys, json\n"
        "from tui_tuner.models import refs\n"
        "from tui_tuner.models import gguf_source\n"
        f"p = {str(gemma_gguf)!r}\n"
        "print(json.dumps([refs.resolve_model_ref(p, build_demo=False), gguf_source.find_converted(p),\n"
        "                  'torch' in sys.modules, 'transformers' in sys.modules]))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, TUI_TUNER_HOME=str(fresh_home)))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f'["{gemma_gguf}", null, false, false]'

    with pytest.raises(UserError, match="not dequantized yet") as e:
        load_model_config(str(gemma_gguf), allow_download=False, build_demo=False)
    assert "when training starts" in e.value.hint

    from tui_tuner.plan import build_plan

    cfg = RunConfig()
    cfg.model.name_or_path = str(gemma_gguf)
    plan = build_plan(cfg, inspect=False, gpu=None, history=None)
    assert plan.model_error is None and plan.ok
    assert plan.model["origin"] == "gguf" and "dequantized once when training starts" in plan.model["problem"]


def test_the_cache_key_follows_the_file_not_its_folder(gemma_gguf, tmp_path, fresh_home):
    first = gguf_source.converted_dir(gguf_source.identify(str(gemma_gguf)))
    assert first.parent == fresh_home / "cache" / "gguf" and first.name.startswith("gemma-3-270m-q4_k_m-")
    moved = tmp_path / "elsewhere" / gemma_gguf.name
    moved.parent.mkdir()
    os.link(gemma_gguf, moved)  # same bytes and mtime, another folder: the same conversion is reused
    assert gguf_source.converted_dir(gguf_source.identify(str(moved))) == first
    st = gemma_gguf.stat()
    os.utime(moved, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # edited (or replaced) in place
    try:
        assert gguf_source.converted_dir(gguf_source.identify(str(moved))) != first
    finally:
        os.utime(moved, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_read_info_names_the_quantization_and_the_quality_note_says_it(gemma_gguf):
    info = gguf_source.read_info(str(gemma_gguf))
    assert (info.architecture, info.file_type, info.quantized, info.save_dtype) == ("gemma3", "Q4_K_M", True,
                                                                                    "bfloat16")
    assert info.has_chat_template is False  # this base GGUF carries none: train with data.chat_template: gemma
    note = gguf_source.quality_note(info)
    assert "Q4_K_M quality" in note and "\n" not in note
