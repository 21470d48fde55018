"""Inside ui/: the app is the only importer of screens; a screen asks the app (ui/messages.py).

Imports are read with ast at every level (inside functions too), relative ones resolved. The
command modules that start an app (`cmd_*`) are not part of ui/ and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tui_tuner

PKG = Path(tui_tuner.__file__).resolve().parent
UI = PKG / "ui"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(line, imported module or module.name) for every import in the file, at any level."""
    mod = _module(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:
                yield node.lineno, f"{target}.{a.name}"
            yield node.lineno, target


def _inside_command(path: Path, line: int) -> bool:
    """Whether `line` is inside a `cmd_*` function (a command handler, on its way to commands/)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
            if node.lineno <= line <= (node.end_lineno or node.lineno):
                return True
    return False


def test_only_the_app_imports_screens_and_nothing_in_ui_imports_the_app():
    bad = []
    for path in sorted(UI.rglob("*.py")):
        me = _module(path)
        if me in ("tui_tuner.ui.app", "tui_tuner.ui.launch"):
            continue
        for line, target in _imports(path):
            if _inside_command(path, line):
                continue
            to_screen = target.startswith("tui_tuner.ui.screens.") and not target.startswith(me + ".") \
                and target != me
            to_app = target == "tui_tuner.ui.app" or target.startswith("tui_tuner.ui.app.")
            if to_screen or to_app:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_an_import_inside_a_function(tmp_path, monkeypatch):
    fake = tmp_path / "tui_tuner" / "ui" / "screens"
    fake.mkdir(parents=True)
    (fake / "a.py").write_text("def f():\n    from tui_tuner.ui.screens.b import B\n    from ..app import TunerApp\n")
    monkeypatch.setattr(__import__(__name__), "PKG", tmp_path / "tui_tuner")
    found = list(_imports(fake / "a.py"))
    assert (2, "tui_tuner.ui.screens.b.B") in found and (3, "tui_tuner.ui.app.TunerApp") in found
