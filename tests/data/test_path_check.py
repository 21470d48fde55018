"""One local check of data.path (data.sources.path_problem) and one list of dataset suffixes
(data.sources.EXTENSIONS): the CLI's `train` (launcher.preflight) and the wizard's dataset step say
the same thing about a path, and the loader agrees with both."""

from __future__ import annotations

import pytest

from tui_tuner.config import RunConfig
from tui_tuner.data import sources
from tui_tuner.errors import UserError
from tui_tuner.launcher import preflight
from tui_tuner.ui.widgets.steps.dataset_step import quick_path_problem


def cli_says(path: str) -> str | None:
    """What `tui-tuner train` says about data.path before anything is loaded (None: it goes on)."""
    cfg = RunConfig()
    cfg.model.name_or_path = "demo"
    cfg.data.path = path
    try:
        preflight(cfg)
    except UserError as e:
        return e.one_line()
    return None


def _cases(tmp_path) -> dict[str, str]:
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    (empty / "notes.pdf").write_bytes(b"%PDF-1.4")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.jsonl").write_text('{"text": "a"}\n')
    (mixed / "b.csv").write_text("text\nb\n")
    wrong = tmp_path / "data.xyz"
    wrong.write_text("hello\n")
    return {"missing": str(tmp_path / "nope.jsonl"), "missing, relative": "data/nope.ndjson",
            "folder without data": str(empty), "folder of mixed types": str(mixed), "wrong suffix": str(wrong)}


def test_cli_and_wizard_say_the_same_for_each_bad_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    said = {}
    for what, path in _cases(tmp_path).items():
        cli, wizard = cli_says(path), quick_path_problem(path)
        assert cli is not None, what
        assert cli == wizard == sources.path_problem(path).one_line(), what
        said[what] = cli
    assert said["missing"].startswith(f"data.path: file not found: {tmp_path / 'nope.jsonl'}")
    assert said["folder without data"].startswith(f"{tmp_path / 'empty-folder'} is a folder with no dataset files")
    assert "mixes file types (csv, jsonl)" in said["folder of mixed types"]
    assert "unknown file type '.xyz'" in said["wrong suffix"]


def test_the_loader_says_it_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for what, path in _cases(tmp_path).items():
        with pytest.raises(UserError) as e:
            sources.load_raw(path)
        assert e.value.one_line() == quick_path_problem(path), what


@pytest.mark.parametrize("suffix", sorted(sources.EXTENSIONS))
def test_every_suffix_the_loader_reads_is_accepted_by_both(tmp_path, suffix):
    f = tmp_path / f"data{suffix}"
    f.write_text('{"text": "hello"}\n')
    assert cli_says(str(f)) is None and quick_path_problem(str(f)) is None
    # missing, it is a missing local file to both, even where it reads like a hub id (owner/name.ext)
    missing = f"owner/name{suffix}"
    assert not sources.is_hub_id(missing)
    assert cli_says(missing) == quick_path_problem(missing) == f"data.path: file not found: {missing} — " \
        "give an existing JSON/JSONL/CSV/TSV/Parquet/TXT file or folder, or 'sample'"


def test_sample_a_saved_dataset_and_a_hub_id_are_left_to_the_loader(tmp_path, monkeypatch):
    from tui_tuner import hub

    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: True)
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "state.json").write_text("{}")
    for path in ("sample", str(saved), "tatsu-lab/alpaca", ""):
        assert sources.path_problem(path) is None and quick_path_problem(path) is None, path
    assert sources.is_hub_id("tatsu-lab/alpaca") and cli_says("tatsu-lab/alpaca") is None
