"""The one wizard state shared by every step (no Textual here).

The draft config is a plain nested dict in the YAML contract's shape, edited field by field; it is
validated by the core's own `config.from_dict`, whose problems (one line per field, in its words)
are routed back to the field they name. Going back and forth never loses anything because no step
keeps its own copy.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
from dataclasses import dataclass, field, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from tui_tuner import config as config_mod
from tui_tuner.config import RunConfig
from tui_tuner.errors import ConfigError

PHRASE_SEP = " | "


def _walk(cls: type, prefix: str = "") -> dict[str, tuple[Any, dict]]:
    """path → (type hint, field metadata) for every leaf field of the config dataclasses."""
    out: dict[str, tuple[Any, dict]] = {}
    hints = get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out.update(_walk(tp, path + "."))
        else:
            out[path] = (tp, dict(f.metadata))
    return out


FIELD_TYPES = _walk(RunConfig)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_optional(tp: Any) -> bool:
    return _is_union(tp) and type(None) in get_args(tp)


def _base(tp: Any) -> Any:
    if _is_union(tp):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def field_kind(path: str) -> str:
    """How a field is edited: bool | choice | int | float | str | targets | mapping | phrases."""
    tp, meta = FIELD_TYPES[path]
    if "choices" in meta:
        return "choice"
    base = _base(tp)
    if base is bool:
        return "bool"
    if base is int:
        return "int"
    if base is float:
        return "float"
    if base is str:
        return "str"
    if _is_union(base):  # str | list[str]
        return "targets"
    if get_origin(base) is dict:
        return "mapping"
    if get_origin(base) is list:
        return "phrases"
    return "str"


def choices(path: str) -> tuple[str, ...]:
    return tuple(FIELD_TYPES[path][1].get("choices", ()))


def to_text(path: str, value: Any) -> str:
    """The text an input shows for a config value."""
    if value is None:
        return ""
    kind = field_kind(path)
    if kind == "targets" and isinstance(value, list):
        return ", ".join(value)
    if kind == "mapping" and isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if kind == "phrases" and isinstance(value, list):
        return PHRASE_SEP.join(value)
    if isinstance(value, float):
        return fmt_float(value)
    return str(value)


def fmt_float(v: float) -> str:
    """0.0002 → "2e-4", 0.002 → "2e-3" (how learning rates are written); 0.05 → "0.05"; 32.0 → "32"."""
    from tui_tuner.plan import fmt_rate

    return fmt_rate(v)


def from_text(path: str, text: str) -> Any:
    """Parse what was typed into the value the YAML contract expects; anything unparsable is kept
    as typed so that `from_dict` reports it in its own words."""
    tp, _ = FIELD_TYPES[path]
    kind = field_kind(path)
    t = text.strip()
    if not t and _is_optional(tp):
        return None
    if kind in ("int", "float"):
        try:
            v = yaml.safe_load(t)
        except yaml.YAMLError:
            return t
        if kind == "float" and isinstance(v, str):
            try:  # YAML 1.1 reads "2e-4" as a string; the config accepts it as a number
                return float(v)
            except ValueError:
                return t
        return v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else t
    if kind == "targets":
        if t == "all-linear" or not t:
            return t
        return [p.strip() for p in re.split(r"[,\s]+", t) if p.strip()]
    if kind == "mapping":
        out: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in t.split(","))):
            if "=" not in part:
                return t  # from_dict: "... is not a mapping of names"
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
        return out
    if kind == "phrases":
        return [p.strip() for p in t.split("|") if p.strip()]
    return text if kind == "str" else t


def problem_path(line: str) -> str | None:
    """The field a `from_dict` problem line names ('train.batch_size: 0 is out of range …')."""
    m = re.match(r"^([A-Za-z_][\w.]*):", line)
    if m and m.group(1) in FIELD_TYPES:
        return m.group(1)
    m = re.match(r"^unknown field '([\w.]+)'", line)
    return m.group(1) if m else None


@dataclass
class WizardState:
    cfg: dict[str, Any] = field(default_factory=lambda: RunConfig().to_dict())
    gpu: Any = None  # GpuInfo | None once detected
    gpu_checked: bool = False
    vram_gib: float | None = None  # detected total, or what the user typed when there is no GPU
    model_entry: Any = None  # ModelEntry of the chosen model
    model_error: str | None = None
    data_result: dict[str, Any] | None = None  # the inspect report for the current data settings
    data_key: str | None = None  # the data settings the report belongs to
    data_error: str | None = None
    preset: str | None = None
    # The values a preset set because a model was chosen (not picked by the user): undone when
    # another model is chosen, where they still hold.
    auto_preset: dict[str, Any] | None = None
    # Errors the core raised for a field outside validation (e.g. at launch), until it is edited.
    core_errors: dict[str, str] = field(default_factory=dict)

    # -- values ---------------------------------------------------------------------------------
    def get(self, path: str) -> Any:
        node: Any = self.cfg
        for part in path.split("."):
            node = node[part]
        return node

    def set(self, path: str, value: Any) -> bool:
        """Set one field; True when it changed."""
        *parents, last = path.split(".")
        node = self.cfg
        for part in parents:
            node = node[part]
        changed = node.get(last) != value or type(node.get(last)) is not type(value)
        node[last] = value
        return changed

    def apply(self, data: dict[str, Any], prefix: str = "", skip: tuple[str, ...] = ()) -> list[str]:
        """Merge a (partial) config mapping, e.g. a preset; returns the paths that changed."""
        changed = []
        for key, value in data.items():
            path = f"{prefix}{key}"
            if path in skip:
                continue
            if isinstance(value, dict) and path not in FIELD_TYPES:
                changed += self.apply(value, path + ".", skip)
            elif path in FIELD_TYPES and self.set(path, copy.deepcopy(value)):
                changed.append(path)
        return changed

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> dict[str, str]:
        """field path → the core's problem line ("" key: problems naming no field)."""
        try:
            config_mod.from_dict(copy.deepcopy(self.cfg), source="wizard")
        except ConfigError as e:
            out: dict[str, str] = {}
            for line in e.problems:
                key = problem_path(line) or ""
                out[key] = f"{out[key]}; {line}" if key in out else line
            return out
        return {}

    def config(self) -> RunConfig:
        """The validated RunConfig (raises ConfigError)."""
        return config_mod.from_dict(copy.deepcopy(self.cfg), source="wizard")

    def try_config(self) -> RunConfig | None:
        try:
            return self.config()
        except ConfigError:
            return None

    def data_settings_key(self) -> str:
        """What the dataset report depends on: data settings + the model (its tokenizer)."""
        import json

        return json.dumps({"data": self.cfg["data"], "model": self.cfg["model"]["name_or_path"]}, sort_keys=True)

    @property
    def effective_batch(self) -> int | None:
        b, a = self.cfg["train"]["batch_size"], self.cfg["train"]["grad_accum"]
        return b * a if isinstance(b, int) and isinstance(a, int) else None
