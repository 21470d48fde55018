"""The YAML presets in presets/: their names and descriptions, the one written for a model, and
merging one into the wizard's state (used by the model and hyperparameter steps and the app)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

# A preset sets values; it never replaces the model and dataset chosen on steps 1 and 3.
PRESET_KEEPS = ("model.name_or_path", "data.path", "data.format", "data.columns", "name")


def list_presets(directory: Path | None = None) -> list[tuple[str, Path, str]]:
    """(name, path, one-line description from the file's first comment) for presets/*.yaml."""
    from tui_tuner import paths

    d = directory or paths.presets_dir()
    out = []
    for p in sorted(d.glob("*.yaml")):
        # the first sentence of the leading comment (it may run over several comment lines)
        words: list[str] = []
        try:
            for line in p.read_text(encoding="utf-8").splitlines():
                if not line.startswith("#"):
                    break
                text = line.lstrip("# ").strip()
                if not text:
                    if words:
                        break
                    continue
                words.append(text)
        except OSError:
            continue
        desc = " ".join(words)
        m = re.search(r"\.(\s|$)", desc)
        desc = desc[: m.start()] if m else desc
        out.append((p.stem, p, desc))
    return out


def read_preset(path: Path) -> dict[str, Any]:
    """A preset's mapping; ValueError with one line naming the file when it cannot be used."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read preset: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a preset must be a mapping")
    return data


def matching_preset(model: str, directory: Path | None = None) -> str | None:
    """The preset written for this model (its model.name_or_path), when exactly one is."""
    found = []
    for name, path, _ in list_presets(directory):
        try:
            data = read_preset(path)
        except ValueError:
            continue
        if (data.get("model") or {}).get("name_or_path") == model:
            found.append(name)
    return found[0] if len(found) == 1 else None


def apply_preset(state: Any, name: str, directory: Path | None = None) -> list[str]:
    """Merge preset `name` into the wizard state, keeping the model and dataset; the paths changed."""
    path = next((p for n, p, _ in list_presets(directory) if n == name), None)
    if path is None:
        raise ValueError(f"no preset named {name!r}")
    data = read_preset(path)
    state.preset = name
    return state.apply(data, skip=PRESET_KEEPS)
