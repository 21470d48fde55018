"""Every command in cli.py's table reaches a handler: the lazy 'module:function' strings resolve.

cli.py imports a command's module only when that command runs, so a handler that moved would
otherwise fail only when a user types the command.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import tui_tuner.cli as cli


def _handler_targets() -> list[str]:
    tree = ast.parse(Path(cli.__file__).read_text(encoding="utf-8"))
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_cmd"
            and node.args and isinstance(node.args[0], ast.Constant)]


def test_every_command_resolves_to_a_handler_in_commands():
    targets = _handler_targets()
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert len(targets) >= len(commands), (targets, list(commands))
    for target in targets:
        module, function = target.split(":")
        assert module.startswith("tui_tuner.commands."), target
        assert callable(getattr(importlib.import_module(module), function, None)), f"{target} does not exist"
