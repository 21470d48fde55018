"""`tui-tuner export --gguf`: a GGUF written by llama.cpp's converter, an Ollama Modelfile, and the
check line (template in the file, Modelfile TEMPLATE, replies of the file loaded back). Real demo run."""

from __future__ import annotations

import errno
import json
import os

import pytest

from tui_tuner.cli import main


def _check_line(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("check: ")]
    assert len(lines) == 1, out[-2000:]
    return lines[0]


@pytest.mark.slow
def test_gguf_f32_export_answers_exactly_like_chat(trained_demo_run, tmp_path, capsys):
    out = tmp_path / "gguf"
    assert main(["export", str(trained_demo_run.path), "--gguf", "--quant", "f32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    name = trained_demo_run.run_id
    assert {p.name for p in out.iterdir()} == {"Modelfile", f"{name}-f32.gguf", "README.md", "tui-tuner-export.json"}
    for step in ("[5/9] saving the merged model", "[6/9] converting to GGUF f32", "[9/9] saved"):
        assert step in printed
    check = _check_line(printed)
    assert "GGUF chat template == training template" in check
    assert "exactly as the training template" in check and "prompts of" in check
    n = check.split("Modelfile TEMPLATE renders ", 1)[1].split(" prompts", 1)[0]
    assert n.split("/")[0] == n.split("/")[1] and int(n.split("/")[0]) >= 1
    assert "greedy replies identical to `tui-tuner chat` (3/3 identical)" in check

    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{name}-f32.gguf\n")
    assert 'PARAMETER stop "<|end|>"' in modelfile and "PARAMETER temperature 0" in modelfile
    assert f"ollama create {name} -f {out / 'Modelfile'}" in printed

    from gguf import GGUFReader

    reader = GGUFReader(str(out / f"{name}-f32.gguf"))
    assert reader.fields["tokenizer.ggml.pre"].contents() == "gpt-2"  # the demo's GPT-2 byte-level regex
    assert reader.fields["general.architecture"].contents() == "llama"


@pytest.mark.slow
def test_k_quant_without_llama_quantize_writes_f16_and_the_command(trained_demo_run, tmp_path, capsys,
                                                                    monkeypatch):
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))  # no llama-quantize, no ollama, no go
    out = tmp_path / "q4"
    assert main(["export", str(trained_demo_run.path), "--gguf", "--quant", "q4_k_m", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    name = trained_demo_run.run_id
    f16 = out / f"{name}-f16.gguf"
    assert f16.is_file() and not (out / f"{name}-q4_k_m.gguf").exists()
    assert "llama-quantize is not on PATH" in printed
    assert f"llama-quantize {f16} {out / (name + '-q4_k_m.gguf')} Q4_K_M" in printed
    assert f"ollama create {name} --quantize q4_K_M -f {out / 'Modelfile'}" in printed
    check = _check_line(printed)
    assert "Go-subset renderer" in check and "GGUF f16 loaded back" in check
    meta = json.loads((out / "tui-tuner-export.json").read_text())
    assert meta["quant"] == "f16" and meta["pending_quant"] == "q4_k_m"

    # A llama-quantize that fails (llama.cpp is not installable here, so a stand-in that exits 1 the
    # way it does on a bad input): the f16 file is kept and the command is printed.
    llama = tmp_path / "llama.cpp"
    llama.mkdir()
    exe = llama / "llama-quantize"
    exe.write_text("#!/bin/sh\necho 'llama_model_quantize: failed to quantize: bad file' >&2\nexit 1\n")
    exe.chmod(0o755)
    capsys.readouterr()
    assert main(["export", str(trained_demo_run.path), "--gguf", "--quant", "q4_k_m", "--llama-cpp", str(llama),
                 "--no-ollama", "--out", str(tmp_path / "q4b")]) == 0
    printed = capsys.readouterr().out
    assert "llama-quantize failed (exit 1): llama_model_quantize: failed to quantize: bad file" in printed
    assert {p.name for p in (tmp_path / "q4b").iterdir()} == {f"{name}-f16.gguf", "README.md", "tui-tuner-export.json"}
    assert "to finish q4_k_m: llama-quantize" in printed

    capsys.readouterr()
    assert main(["export", str(trained_demo_run.path), "--gguf", "--quant", "q4_k_m", "--llama-cpp", str(bare),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--llama-cpp" in err and "no executable llama-quantize" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_disk_full_while_writing_the_gguf_leaves_nothing(trained_demo_run, tmp_path, capsys, monkeypatch):
    """ENOSPC from the GGUF writer (simulated at the write call: a full disk cannot be made here
    without root): one line, no output folder, no staging folder left behind."""
    import gguf

    real = gguf.GGUFWriter.write_tensors_to_file

    def full(self, *a, **kw):
        self.fout[0].write(b"\0" * 4096) if getattr(self, "fout", None) else None
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", full)
    out = tmp_path / "full"
    assert main(["export", str(trained_demo_run.path), "--gguf", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --out {out}: disk full while exporting") and len(err.splitlines()) == 1
    assert not out.exists() and os.listdir(tmp_path) == []
    assert real is not gguf.GGUFWriter.write_tensors_to_file


def test_bad_output_paths_are_one_line(trained_demo_run, tmp_path, capsys):
    run = str(trained_demo_run.path)
    assert main(["export", run, "--gguf", "--out", str(tmp_path / "no" / "such" / "dir")]) == 2
    err = capsys.readouterr().err.strip()
    assert "parent folder" in err and "does not exist" in err and len(err.splitlines()) == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["export", run, "--gguf", "--out", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert main(["export", run, "--merge", "--quant", "q8_0", "--out", str(tmp_path / "m")]) == 2
    assert "--quant only applies to --gguf" in capsys.readouterr().err and not (tmp_path / "m").exists()
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            assert main(["export", run, "--gguf", "--out", str(ro / "x")]) == 2
            assert "error: --out" in capsys.readouterr().err
        finally:
            ro.chmod(0o700)


@pytest.mark.slow
async def test_chat_pane_export_dialog_writes_a_checked_gguf(trained_demo_run, tmp_path):
    """The chat pane's export dialog (ctrl+o) offers GGUF + Modelfile and shows the check line."""
    import asyncio

    from textual.app import App
    from textual.widgets import Input

    from tui_tuner.ui.screens.chat import ExportDialog

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(ExportDialog(str(trained_demo_run.path), trained_demo_run.run_id, "final"))

    async with Host().run_test(size=(110, 40)) as pilot:
        dialog = pilot.app.screen
        await pilot.click("#export-gguf")
        assert dialog.query_one("#export-out", Input).value.endswith("-final-gguf")
        dialog.query_one("#export-out", Input).value = str(tmp_path / "g")
        await pilot.click("#export-start")
        for _ in range(1800):
            if dialog.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert dialog.returncode == 0
        shown = str(dialog.query_one("#export-result").render())
        assert "exported to" in shown and "GGUF chat template == training template" in shown
    assert (tmp_path / "g" / "Modelfile").is_file()
    assert any(p.suffix == ".gguf" for p in (tmp_path / "g").iterdir())
