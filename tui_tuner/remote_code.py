"""Remote code (a model folder's own Python, `auto_map` + `.py`) runs only after the user confirms it.

`model.trust_remote_code: true` in a config says the model *needs* its own code; it never runs it.
The code runs only when the process that loads the model was started with an explicit confirmation
(`--trust-remote-code` on the command line, or the app's dialog), which is never stored in a run
folder: a resumed or copied run, `chat` and `export` ask again. Torch-free (the UI imports it).
"""

from __future__ import annotations

import json
from pathlib import Path

from tui_tuner.errors import UserError

FLAG = "--trust-remote-code"


def _auto_map_modules(folder: Path) -> list[str]:
    mods: list[str] = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if not isinstance(auto_map, dict):
            continue
        for value in auto_map.values():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, str) and "." in ref:
                    # "module.Class" or "other/repo--module.Class" (code from another repository)
                    mods.append(ref.rsplit(".", 1)[0])
    return list(dict.fromkeys(mods))


def remote_code_files(name_or_path: str, revision: str | None = None) -> list[str]:
    """The Python files loading this model with trust_remote_code would run, as the user should see them.

    The modules `auto_map` names come first, then every other `.py` in the folder (a module may
    import its neighbours). A hub model that is not downloaded yet is named as a whole.
    """
    from tui_tuner.models.refs import local_model_dir

    folder = local_model_dir(name_or_path, revision)
    if folder is None:
        return [f"the Python files of {name_or_path} (not downloaded yet)"]
    files = []
    for mod in _auto_map_modules(folder):
        if "--" in mod:
            repo, mod = mod.split("--", 1)
            files.append(f"{mod.replace('.', '/')}.py from {repo}")
        else:
            files.append(str(folder / (mod.replace(".", "/") + ".py")))
    files += [str(p) for p in sorted(folder.glob("*.py")) if str(p) not in files]
    return files


def describe(name_or_path: str, revision: str | None = None) -> str:
    files = remote_code_files(name_or_path, revision)
    return ", ".join(files) if files else f"no Python files found in {name_or_path}"


def require_confirmation(wanted: bool, confirmed: bool, name_or_path: str, revision: str | None = None,
                         *, command: str) -> bool:
    """Whether to pass trust_remote_code=True. A config asking for it without confirmation is refused
    in one line naming the files that would run."""
    if confirmed:
        return True
    if wanted:
        raise UserError(
            f"model.trust_remote_code is true: loading {name_or_path} would run its own Python code "
            f"({describe(name_or_path, revision)}); nothing was run",
            hint=f"read those files, then confirm with `{command} {FLAG}`")
    return False
