"""The import contract of tui_tuner, checked on the source (every import, at any level).

Each module is parsed with `ast`; every `import` and `from … import` counts, wherever it sits (a
function body, a try block, `if TYPE_CHECKING:`), relative ones resolved against the module. The
test fails, naming the file and line, when:

(a) a module below the UI (neither in `ui/` nor in `commands/`, `cli.py`) imports textual or tui_tuner.ui;
(b) a module in `ui/` imports a heavy library (torch, transformers, …): the app must start without them;
(c) anything but `cli.py` (and `commands/` itself) imports tui_tuner.commands;
(d) tui_tuner modules import each other in a circle (the circle is printed);
(e) an import points up the layers of LAYERS, or a module belongs to no layer;
(f) inside `ui/`, a module other than `ui/app.py` imports a screen, or anything in `ui/` imports
    `ui/app.py` (a screen asks the app for another screen with a message from `ui/messages.py`);
(g) a `from tui_tuner.x import name` names nothing that x defines (`missing_names`).

An import of `a.b.c` is an edge to the longest prefix that is a tui_tuner module; `from a.b import c`
is an edge to `a.b.c` when that is a module, else to `a.b`. A package's `__init__` is not counted when
one of its submodules is imported (as import-linter does).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "tui_tuner"

# Low → high. An import may point down, or sideways within a layer; never up. The key is the first
# name under tui_tuner (a module or a subpackage); "" is the package itself (tui_tuner/__init__.py).
LAYERS: dict[str, int] = {
    # 1 base
    "": 1, "errors": 1, "paths": 1, "config": 1, "diagnostics": 1, "gpu_claims": 1, "demo": 1,
    # 2 core
    "data": 2, "models": 2, "rundir": 2, "gpu": 2, "devices": 2, "hub": 2, "remote_code": 2, "progress": 2,
    "inference": 2, "worker": 2, "plan": 2, "launcher": 2, "export": 2, "gguf_export": 2, "ollama_template": 2,
    "helper_child": 2,  # the child half of the UI's helper process (runs transformers, not Textual)
    # 3 the Textual app
    "ui": 3,
    # 4 the command line: the argparse table and the command handlers
    "commands": 4, "cli": 4, "__main__": 4,
}
LAYER_NAMES = {1: "base", 2: "core", 3: "ui", 4: "commands"}
UI = "ui"
COMMANDS = "commands"
COMMANDS_IMPORTERS = {"cli"}  # besides commands/ itself
HEAVY = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate", "safetensors")


@dataclass(frozen=True)
class Edge:
    src: str  # importing module (dotted)
    dst: str  # imported name as resolved: a package module, or an outside module's dotted name
    path: Path
    line: int

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def find_modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every .py under root/package."""
    mods = {}
    for p in sorted((root / package).rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _from_target(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The module a `from … import` reads, relative ones resolved against `mod`."""
    if not node.level:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imported_names(mod: str, is_pkg: bool, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    prefix = _from_target(mod, is_pkg, node)
    return [f"{prefix}.{a.name}" for a in node.names] + [prefix]


def collect_edges(root: Path, package: str) -> tuple[dict[str, Path], list[Edge]]:
    mods = find_modules(root, package)
    edges: list[Edge] = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = _imported_names(mod, is_pkg, node)
            if isinstance(node, ast.ImportFrom):
                # `from a import b`: b is the module a.b when that exists, else a name inside a
                subs = [n for n in names[:-1] if n in mods]
                names = subs if len(subs) == len(names) - 1 else subs + [names[-1]]
            for name in names:
                target = name
                if name == package or name.startswith(package + "."):
                    while target and target not in mods:
                        target = target.rpartition(".")[0]
                if target and target != mod:
                    edges.append(Edge(mod, target, path, node.lineno))
    return mods, edges


def _area(mod: str, package: str) -> str:
    """The first name under the package ('' for the package itself)."""
    rest = mod[len(package) + 1:] if mod.startswith(package + ".") else ""
    return rest.split(".")[0]


def _is_under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _cycles(mods: dict[str, Path], edges: list[Edge]) -> list[list[Edge]]:
    """One concrete circle per strongly connected group of modules (Tarjan, iterative)."""
    graph: dict[str, dict[str, Edge]] = {m: {} for m in mods}
    for e in edges:
        if e.dst in mods:
            graph[e.src].setdefault(e.dst, e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    circles = []
    for group in groups:
        members = set(group)
        first = group[0]
        # shortest way back to `first` inside the group (breadth first)
        prev: dict[str, Edge] = {}
        queue = [first]
        found = None
        while queue and found is None:
            nxt = []
            for v in queue:
                for w, e in graph[v].items():
                    if w not in members:
                        continue
                    if w == first:
                        found = e
                        break
                    if w not in prev:
                        prev[w] = e
                        nxt.append(w)
                if found:
                    break
            queue = nxt
        path = [found]
        while path[-1].src != first:
            path.append(prev[path[-1].src])
        circles.append(list(reversed(path)))
    return circles


def check(root: Path, package: str = PACKAGE, layers: dict[str, int] = LAYERS) -> list[str]:
    """Every broken rule, one line each (empty when the contract holds)."""
    mods, edges = collect_edges(root, package)
    problems: list[str] = []
    ui_pkg, commands_pkg = f"{package}.{UI}", f"{package}.{COMMANDS}"
    app_mod, screens_pkg = f"{ui_pkg}.app", f"{ui_pkg}.screens"
    for mod, path in mods.items():
        if _area(mod, package) not in layers:
            problems.append(f"(e) {path.relative_to(root)}: {mod} belongs to no layer (add it to LAYERS)")
    for e in edges:
        src_area = _area(e.src, package)
        src_is_ui = src_area == UI
        above_ui = src_area == COMMANDS or src_area in COMMANDS_IMPORTERS or layers.get(src_area, 0) > layers[UI]
        if not src_is_ui and not above_ui and (_is_under(e.dst, "textual") or _is_under(e.dst, ui_pkg)):
            problems.append(f"(a) {e.where(root)}: {e.src} (below the UI) imports {e.dst}")
        if src_is_ui and any(_is_under(e.dst, h) for h in HEAVY):
            problems.append(f"(b) {e.where(root)}: {e.src} (ui/) imports {e.dst}")
        if _is_under(e.dst, commands_pkg) and src_area != COMMANDS and src_area not in COMMANDS_IMPORTERS:
            problems.append(f"(c) {e.where(root)}: {e.src} imports {e.dst} (only cli.py imports the commands)")
        if _is_under(e.src, ui_pkg) and e.src != app_mod and e.dst != e.src and (
                _is_under(e.dst, screens_pkg) and e.dst != screens_pkg or _is_under(e.dst, app_mod)):
            problems.append(f"(f) {e.where(root)}: {e.src} imports {e.dst} (only the app opens screens; "
                            "a screen posts a message from ui/messages.py)")
        if e.dst in mods:
            a, b = layers.get(src_area), layers.get(_area(e.dst, package))
            if a is not None and b is not None and b > a:
                problems.append(f"(e) {e.where(root)}: {e.src} ({LAYER_NAMES.get(a, a)}) imports {e.dst} "
                                f"({LAYER_NAMES.get(b, b)}): an import points up the layers")
    for circle in _cycles(mods, edges):
        chain = " → ".join([circle[0].src] + [e.dst for e in circle])
        where = ", ".join(e.where(root) for e in circle)
        problems.append(f"(d) import circle: {chain} ({where})")
    return problems


def test_tui_tuner_keeps_its_import_contract():
    problems = check(ROOT)
    assert not problems, "the import contract is broken:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# The checker itself: a tiny package that breaks each rule once


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")


GOOD = {
    "pkg/__init__.py": "",
    "pkg/errors.py": "",
    "pkg/rundir.py": "from pkg.errors import X\nfrom . import errors\n",
    "pkg/launcher.py": "def f():\n    from pkg import rundir\n    import torch\n",
    "pkg/ui/__init__.py": "",
    "pkg/ui/app.py": "import textual\nfrom ..launcher import f\nfrom .screens import home\n",
    "pkg/ui/messages.py": "",
    "pkg/ui/screens/__init__.py": "",
    "pkg/ui/screens/home.py": "from ..messages import x\n",
    "pkg/commands/__init__.py": "",
    "pkg/commands/train.py": "from pkg.ui import app\nfrom pkg.commands import plan\n",
    "pkg/commands/plan.py": "",
    "pkg/cli.py": "import importlib\ndef run():\n    from pkg.commands import train\n",
}
TINY_LAYERS = {"": 1, "errors": 1, "rundir": 2, "launcher": 2, "ui": 3, "commands": 4, "cli": 4}


@pytest.mark.parametrize("kind, files, expected", [
    ("a", {"pkg/rundir.py": "def f():\n    from textual.app import App\n"},
     "(a) pkg/rundir.py:2: pkg.rundir (below the UI) imports textual.app"),
    ("a", {"pkg/launcher.py": "from .ui import app\n"},
     "(a) pkg/launcher.py:1: pkg.launcher (below the UI) imports pkg.ui.app"),
    ("b", {"pkg/ui/app.py": "def load():\n    if True:\n        import transformers.models\n"},
     "(b) pkg/ui/app.py:3: pkg.ui.app (ui/) imports transformers.models"),
    ("b", {"pkg/ui/app.py": "try:\n    from safetensors import safe_open\nexcept ImportError:\n    pass\n"},
     "(b) pkg/ui/app.py:2: pkg.ui.app (ui/) imports safetensors"),
    ("c", {"pkg/ui/app.py": "from pkg.commands.plan import x\n"},
     "(c) pkg/ui/app.py:1: pkg.ui.app imports pkg.commands.plan (only cli.py imports the commands)"),
    ("d", {"pkg/rundir.py": "import pkg.launcher\n", "pkg/launcher.py": "def f():\n    from pkg import rundir\n"},
     "(d) import circle: pkg.launcher → pkg.rundir → pkg.launcher (pkg/launcher.py:2, pkg/rundir.py:1)"),
    ("e", {"pkg/errors.py": "from pkg.launcher import f\n"},
     "(e) pkg/errors.py:1: pkg.errors (base) imports pkg.launcher (core): an import points up the layers"),
    ("e", {"pkg/newthing.py": ""},
     "(e) pkg/newthing.py: pkg.newthing belongs to no layer (add it to LAYERS)"),
    ("f", {"pkg/ui/screens/runs.py": "def open():\n    from .home import HomeScreen\n"},
     "(f) pkg/ui/screens/runs.py:2: pkg.ui.screens.runs imports pkg.ui.screens.home (only the app opens "
     "screens; a screen posts a message from ui/messages.py)"),
    ("f", {"pkg/ui/messages.py": "from pkg.ui.app import TunerApp\n"},
     "(f) pkg/ui/messages.py:1: pkg.ui.messages imports pkg.ui.app (only the app opens screens; "
     "a screen posts a message from ui/messages.py)"),
])
def test_the_checker_catches_each_kind(tmp_path, kind, files, expected):
    _write(tmp_path, GOOD)
    assert check(tmp_path, "pkg", TINY_LAYERS) == []
    _write(tmp_path, files)
    problems = check(tmp_path, "pkg", TINY_LAYERS)
    assert expected in problems, problems  # (one bad import may break other rules too: an up-arrow, a circle)


def test_the_checker_reports_a_longer_circle_in_order(tmp_path):
    _write(tmp_path, GOOD)
    _write(tmp_path, {"pkg/errors.py": "from pkg import launcher\n",
                      "pkg/launcher.py": "from pkg.rundir import x\n",
                      "pkg/rundir.py": "import pkg.errors as e\n"})
    circles = [p for p in check(tmp_path, "pkg", {**TINY_LAYERS, "errors": 2}) if p.startswith("(d)")]
    assert circles == ["(d) import circle: pkg.errors → pkg.launcher → pkg.rundir → pkg.errors "
                       "(pkg/errors.py:1, pkg/launcher.py:1, pkg/rundir.py:1)"]


# ---------------------------------------------------------------------------------------------
# (g) imported names exist


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
    """(g) every `from tui_tuner.x import name` (inside functions too) names something x binds at
    its top level (a def, class, assignment or import, also under a top-level if/try/with) or a
    submodule x.name. An import inside a function runs only when that function does, so a name
    moved by a merge or a refactor would otherwise fail only when a user reaches that command."""
    mods = find_modules(root, package)
    trees = {m: ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for m, p in mods.items()}
    bound = {m: _top_level_names(t) for m, t in trees.items()}
    problems = []
    for mod, tree in trees.items():
        is_pkg = mods[mod].name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _from_target(mod, is_pkg, node)
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
