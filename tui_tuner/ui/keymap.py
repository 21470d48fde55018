"""The user's own keys: `keymap.yaml` in tui-tuner's home folder (next to runs/), applied at start.

Every key binding of the app has an id (`Binding(..., id="chat-save")`); the file maps ids to the
keys that replace the default ones, comma-separated for several:

    chat-save: ctrl+w
    monitor-stop: x,f8

The app passes the mapping to Textual's `App.set_keymap`. A file that cannot be used (not YAML,
not a mapping of id to keys) changes nothing: the app starts with the default keys and says once
what is wrong, naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path

FILE_NAME = "keymap.yaml"


def keymap_path() -> Path:
    from tui_tuner import paths

    return paths.home() / FILE_NAME


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], str | None]:
    """(binding id → keys, None), or ({}, one line naming the file and line) when the file is bad.
    No file: ({}, None)."""
    path = keymap_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as e:
        return {}, f"{path}: cannot read the keymap: {e}"
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        # where the broken construct starts (an unclosed quote or list), else where parsing stopped
        mark = getattr(e, "context_mark", None) or getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        return {}, f"{where}: not valid YAML ({problem}); using the default keys"
    if node is None:  # an empty file
        return {}, None
    if not isinstance(node, yaml.MappingNode):
        return {}, (f"{path}:{node.start_mark.line + 1}: a keymap is a mapping of binding id to keys "
                    "(e.g. `chat-save: ctrl+w`); using the default keys")
    keymap: dict[str, str] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key, value = key_node.value, value_node.value
        if not isinstance(key_node, yaml.ScalarNode) or not isinstance(key, str) or not key.strip():
            return {}, f"{path}:{line}: a binding id must be a name like `chat-save`; using the default keys"
        if isinstance(value_node, yaml.SequenceNode) and all(isinstance(v, yaml.ScalarNode) for v in value):
            value = ",".join(v.value for v in value)
        elif not isinstance(value_node, yaml.ScalarNode):
            value = None
        if not isinstance(value, str) or not value.strip():
            return {}, (f"{path}:{line}: `{key}` needs keys, e.g. `{key}: ctrl+w` (several: `a,b`); "
                        "using the default keys")
        keymap[key.strip()] = ",".join(k.strip() for k in value.split(","))
    return keymap, None
