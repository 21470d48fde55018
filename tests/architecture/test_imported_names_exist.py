"""Every `from tui_tuner.x import name` names something x defines — imports inside functions too.

An import inside a function runs only when that function does, so a name moved to another module
(a merge, a refactor) fails only when a user reaches that command. This reads every module with
`ast` and checks each such import against the names the target module binds at its top level (a
def, a class, an assignment, an import, including those under a top-level `if`/`try`) or a
submodule of that name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "tui_tuner"


def _modules(root: Path, package: str) -> dict[str, Path]:
    mods = {}
    for p in sorted((root / package).rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    names.add(a.asname or a.name.split(".")[0])
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                visit(node.body)
                for extra in ("orelse", "finalbody"):
                    visit(getattr(node, extra, []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)

    visit(tree.body)
    return names


def missing_names(root: Path, package: str = PACKAGE) -> list[str]:
    mods = _modules(root, package)
    trees = {m: ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for m, p in mods.items()}
    bound = {m: _top_level_names(t) for m, t in trees.items()}
    problems = []
    for mod, tree in trees.items():
        is_pkg = mods[mod].name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != package and not target.startswith(package + "."):
                continue
            where = f"{mods[mod].relative_to(root)}:{node.lineno}"
            if target not in mods:
                problems.append(f"{where}: no module {target}")
                continue
            for a in node.names:
                if a.name != "*" and a.name not in bound[target] and f"{target}.{a.name}" not in mods:
                    problems.append(f"{where}: {target} has no {a.name}")
    return problems


def test_every_name_imported_from_tui_tuner_exists():
    problems = missing_names(ROOT)
    assert not problems, "imports of names that are not there:\n" + "\n".join(problems)


def test_the_check_finds_a_moved_name_inside_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "ui").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ui" / "__init__.py").write_text("")
    (pkg / "ui" / "app.py").write_text("try:\n    import yaml\nexcept ImportError:\n    yaml = None\nclass MonitorApp: ...\n")
    (pkg / "cmd.py").write_text("def run():\n    from pkg.ui.app import MonitorApp, yaml\n    from pkg.ui import app\n"
                                "    from .ui.screens import MonitorApp\n    from pkg.ui.app import Gone\n")
    assert missing_names(tmp_path, "pkg") == ["pkg/cmd.py:4: no module pkg.ui.screens",
                                              "pkg/cmd.py:5: pkg.ui.app has no Gone"]
