"""`tui-tuner chat TARGET --prompt/--prompts [--json] [--base]`: one-shot answers from a real run."""

from __future__ import annotations

import json

import pytest

from tui_tuner.cli import main

PROMPTS = ["What is tui-tuner?", "hello"]


def _json_replies(capsys, argv) -> list[dict]:
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "loading model (4-bit nf4)" in captured.err  # progress goes to stderr, JSON alone to stdout
    return json.loads(captured.out)


def test_one_shot_tuned_base_and_model_alone(trained_demo_run, tmp_path, capsys):
    run = str(trained_demo_run.path)
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text(PROMPTS[0] + "\n\n" + PROMPTS[1] + "\n", encoding="utf-8")  # blank lines skipped

    tuned = _json_replies(capsys, ["chat", run, "--prompts", str(prompts_file), "--json"])
    base = _json_replies(capsys, ["chat", run, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "--json", "--base"])
    alone = _json_replies(capsys, ["chat", "demo", "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "--json"])

    assert [r["prompt"] for r in tuned] == PROMPTS and set(tuned[0]) == {"prompt", "reply"}
    # Training changed the answers; --base really disables the adapter: it answers exactly like
    # the demo model alone (same weights, same chat template, greedy).
    assert [r["reply"] for r in tuned] != [r["reply"] for r in base]
    assert base == alone
    assert all(isinstance(r["reply"], str) for r in tuned + base)


def test_streamed_text_output(trained_demo_run, capsys):
    assert main(["chat", str(trained_demo_run.path), "--prompt", PROMPTS[0], "--max-new-tokens", "8",
                 "--checkpoint", "checkpoint-6"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"> {PROMPTS[0]}\n")
    assert "adapter checkpoint-6" in captured.err


@pytest.mark.parametrize("argv, expected", [
    (["chat", "/no/such/dir", "--prompt", "x"], "'/no/such/dir' is neither a run nor a usable model"),
    (["chat", "demo", "--prompts", "/no/such/prompts.txt"], "--prompts /no/such/prompts.txt: file not found"),
    (["chat", "demo", "--checkpoint", "3", "--prompt", "x"], "--checkpoint 3: 'demo' is a model, not a run"),
    (["chat", "demo", "--prompt", "x", "--top-p", "0"], "top-p 0.0 must be in (0, 1]"),
    (["chat", "demo", "--prompt", "x", "--max-new-tokens", "0"], "max new tokens 0 must be an integer ≥ 1"),
    (["chat", "demo", "--json"], "--json needs --prompt or --prompts"),
])
def test_bad_input_is_one_clear_line(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and len(err.splitlines()) == 1


def test_bad_checkpoint_and_empty_prompt_file(trained_demo_run, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert main(["chat", str(trained_demo_run.path), "--prompts", str(empty)]) == 2
    assert "no prompts in the file" in capsys.readouterr().err
    assert main(["chat", str(trained_demo_run.path), "--checkpoint", "99", "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "no adapter 'checkpoint-99'" in err and "available: checkpoint-6, checkpoint-12, final" in err
