"""The run configuration: the public YAML contract, its defaults and its validation.

A config is five sections (model, quantization, lora, data, train). `load_config` reads YAML,
`from_dict` validates it and reports *every* problem as one line naming the field, the value and
what is allowed. Plain dataclasses keep this importable by the UI without pulling heavy deps.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from tui_tuner.errors import ConfigError, UserError

# Choices shared with the CLI help and the wizard.
QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("auto", "bf16", "fp16", "fp32")
DATA_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "prompt_completion", "input_output", "text")
TOO_LONG_CHOICES = ("drop", "truncate")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")
OPTIMIZERS = ("paged_adamw_8bit", "adamw_8bit", "paged_adamw_32bit", "adamw_torch", "adamw_torch_fused", "sgd")
ATTN_IMPLS = ("sdpa", "eager", "flash_attention_2")
LOSS_IMPLS = ("auto", "standard", "chunked", "liger")  # tui_tuner/worker/loss.py says what each does
PACKINGS = ("auto", "padding_free", "padded")


def _choice(*allowed: str) -> dict:
    return {"choices": allowed}


def _range(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> dict:
    return {"range": (lo, hi, lo_open)}


@dataclass
class ModelConfig:
    name_or_path: str = "demo"
    # Says the model needs its own Python (auto_map + .py); never runs it by itself: each launch must
    # confirm it (--trust-remote-code, or the app's dialog naming the files). See tui_tuner/remote_code.py.
    trust_remote_code: bool = False
    revision: str | None = None
    attn_implementation: str = field(default="sdpa", metadata=_choice(*ATTN_IMPLS))


@dataclass
class QuantizationConfig:
    load_in_4bit: bool = True
    quant_type: str = field(default="nf4", metadata=_choice(*QUANT_TYPES))
    double_quant: bool = True
    compute_dtype: str = field(default="auto", metadata=_choice(*COMPUTE_DTYPES))


@dataclass
class LoraConfig:
    r: int = field(default=16, metadata=_range(1, 1024))
    alpha: float = field(default=32, metadata=_range(0, None, lo_open=True))
    dropout: float = field(default=0.05, metadata=_range(0, 0.9))
    # "all-linear" or an explicit list of module names (e.g. [q_proj, v_proj]).
    target_modules: Union[str, list[str]] = "all-linear"


@dataclass
class CleaningConfig:
    drop_empty: bool = True
    dedupe: bool = True
    drop_disclaimers: bool = True
    # Rows containing one of these (case-insensitive) are dropped when drop_disclaimers is on.
    disclaimer_phrases: list[str] = field(
        default_factory=lambda: [
            "as an ai language model",
            "as a large language model",
            "i'm sorry, but as an ai",
            "i am an ai developed by",
            "作为一个人工智能语言模型",
            "作为一个ai",
        ]
    )
    too_long: str = field(default="drop", metadata=_choice(*TOO_LONG_CHOICES))


@dataclass
class DataConfig:
    path: str = "sample"
    format: str = field(default="auto", metadata=_choice(*DATA_FORMATS))
    # Explicit column mapping, e.g. {prompt: question, completion: answer} or {messages: dialog}.
    columns: dict[str, str] | None = None
    val_ratio: float = field(default=0.05, metadata=_range(0, 0.5))
    max_length: int = field(default=1024, metadata=_range(8, 1_048_576))
    # "auto" = the tokenizer's own chat template, else the name of a fallback template.
    chat_template: str = "auto"
    # Skip (and count) malformed JSONL lines instead of refusing the file.
    skip_bad_lines: bool = False
    clean: CleaningConfig = field(default_factory=CleaningConfig)


@dataclass
class TrainConfig:
    num_epochs: float = field(default=1, metadata=_range(0, None, lo_open=True))
    max_steps: int = field(default=-1, metadata=_range(-1, None))
    batch_size: int = field(default=4, metadata=_range(1, 4096))
    grad_accum: int = field(default=4, metadata=_range(1, 4096))
    learning_rate: float = field(default=2.0e-4, metadata=_range(0, 1, lo_open=True))
    lr_scheduler: str = field(default="cosine", metadata=_choice(*SCHEDULERS))
    warmup_ratio: float = field(default=0.03, metadata=_range(0, 1))
    optim: str = field(default="paged_adamw_8bit", metadata=_choice(*OPTIMIZERS))
    weight_decay: float = field(default=0.0, metadata=_range(0, 1))
    max_grad_norm: float = field(default=1.0, metadata=_range(0, None))
    gradient_checkpointing: bool = True
    # Batch rows of similar length together: less padding, measured faster than packing on CPU.
    group_by_length: bool = True
    # How the loss is computed: auto = liger on CUDA when installed, else chunked when vocabulary x
    # tokens per batch is large (never all logits at once), else standard.
    loss_impl: str = field(default="auto", metadata=_choice(*LOSS_IMPLS))
    # padding_free = one flattened row per batch with restarting position ids (no pad tokens);
    # auto = padding-free only with flash_attention_2 on CUDA, padded elsewhere (measured faster on CPU).
    packing: str = field(default="auto", metadata=_choice(*PACKINGS))
    seed: int = 42
    logging_steps: int = field(default=1, metadata=_range(1, None))
    save_steps: int = field(default=50, metadata=_range(1, None))
    eval_steps: int = field(default=50, metadata=_range(1, None))
    save_total_limit: int = field(default=3, metadata=_range(1, None))
    # Stop when eval loss has not improved for this many evaluations (None = never).
    early_stopping_patience: int | None = field(default=None, metadata=_range(1, None))
    # Seconds between system (GPU/CPU) samples written to events.jsonl.
    system_sample_interval: float = field(default=2.0, metadata=_range(0.1, None))


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Optional human name; the run id is derived from it.
    name: str | None = None
    # Which GPU: an index or UUID as `nvidia-smi -L` shows them (a MIG slice by its MIG-… UUID),
    # "cpu" for none, or null/"auto": the GPU with the most free memory that no run holds.
    gpu: Union[int, str, None] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------
# Validation


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Check/coerce a YAML scalar against a field type. Returns (ok, coerced value)."""
    origin = get_origin(tp)
    if origin is Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        args = get_args(tp)
        if value is None and type(None) in args:
            return True, None
        for arg in args:
            if arg is type(None):
                continue
            ok, v = _type_ok(value, arg)
            if ok:
                return True, v
        return False, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp in (int, float) and isinstance(value, bool):
        return False, value  # true/false is no number (bool is an int to Python)
    if tp is int:
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, value
    if tp is float:
        if isinstance(value, (int, float)):
            return True, float(value)
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if tp is str:
        return isinstance(value, str), value
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            return False, value
        out = []
        for v in value:
            ok, cv = _type_ok(v, item)
            if not ok:
                return False, value
            out.append(cv)
        return True, out
    if origin is dict:
        if not isinstance(value, dict):
            return False, value
        return all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()), value
    return True, value


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        names = [_type_name(a) for a in get_args(tp) if a is not type(None)]
        s = " or ".join(names)
        return s + " or null" if type(None) in get_args(tp) else s
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "a mapping of names"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _build(cls: type, data: Any, prefix: str, problems: list[str]) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{prefix or 'top level'} must be a mapping, got {data!r}")
        return cls()
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            tip = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (allowed: {', '.join(known)})"
            problems.append(f"unknown field '{path}'{tip}")
            continue
        f = known[key]
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{path}.", problems)
            continue
        ok, value = _type_ok(value, tp)
        if not ok:
            problems.append(f"{path}: {value!r} is not {_type_name(tp)}")
            continue
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            problems.append(f"{path}: {value!r} is not allowed (choose one of: {', '.join(f.metadata['choices'])})")
            continue
        if "range" in f.metadata and isinstance(value, (int, float)) and value is not None:
            lo, hi, lo_open = f.metadata["range"]
            bad = (isinstance(value, float) and not math.isfinite(value)) or (
                lo is not None and (value <= lo if lo_open else value < lo)
            ) or (hi is not None and value > hi)
            if bad:
                lo_s = "" if lo is None else (f"> {lo}" if lo_open else f">= {lo}")
                hi_s = "" if hi is None else f"<= {hi}"
                problems.append(f"{path}: {value!r} is out of range (must be {' and '.join(s for s in (lo_s, hi_s) if s)})")
                continue
        kwargs[key] = value
    return cls(**kwargs)


def _cross_checks(cfg: RunConfig, problems: list[str]) -> None:
    if not cfg.model.name_or_path.strip():
        problems.append("model.name_or_path: must not be empty (use 'demo' for the offline demo model)")
    if not cfg.data.path.strip():
        problems.append("data.path: must not be empty (use 'sample' for the bundled sample dataset)")
    tm = cfg.lora.target_modules
    if isinstance(tm, str) and tm != "all-linear":
        problems.append(f"lora.target_modules: {tm!r} is not allowed (use 'all-linear' or a list of module names)")
    if isinstance(tm, list) and not tm:
        problems.append("lora.target_modules: the list is empty (use 'all-linear' or name modules such as q_proj)")
    g = cfg.gpu
    if isinstance(g, int) and g < 0:
        problems.append(f"gpu: {g} is not a GPU index (use 0, 1, … as `nvidia-smi -L` lists them, 'auto' or 'cpu')")
    if isinstance(g, str) and not (g.strip().lower() in ("auto", "cpu") or g.strip().isdigit()
                                   or g.strip().upper().startswith(("GPU-", "MIG-"))):
        problems.append(f"gpu: {g!r} is not allowed (an index such as 0, a UUID GPU-… or MIG-… from "
                        "`nvidia-smi -L`, 'auto' or 'cpu')")
    if cfg.train.max_steps == 0:
        problems.append("train.max_steps: 0 trains nothing (use -1 to train num_epochs, or a positive number)")


def from_dict(data: Any, source: str = "config") -> RunConfig:
    problems: list[str] = []
    cfg = _build(RunConfig, data, "", problems)
    if not problems:
        _cross_checks(cfg, problems)
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, seen[key], line)
                    seen[key] = line
                except TypeError:  # an unhashable key: the base class reports it
                    continue
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(Exception):
    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"key {key!r} given twice (line {first} and line {again})")
        self.key, self.first, self.again = key, first, again


def load_config(path: str | Path) -> RunConfig:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"config file not found: {p}", hint="pass the path of a YAML file, e.g. presets/demo.yaml")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError:
        raise UserError(f"{p}: not UTF-8 text", hint="save the config as UTF-8 YAML") from None
    except DuplicateKeyError as e:
        raise UserError(f"{p}: line {e.again}: {e.key!r} is given twice (first on line {e.first}); "
                        "YAML would silently keep only the last", hint="delete one of the two lines") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{p}:{where}: invalid YAML: {problem}", hint="fix the syntax (indentation, colons, quotes)") from None
    if data is None:
        # An empty file is far more often a failed save or the wrong path than a wish for the demo
        # defaults, and training the defaults silently would waste a run; `{}` asks for them explicitly.
        raise UserError(f"{p}: the config file is empty",
                        hint="write at least model: and data: (see presets/demo.yaml), or `{}` to train every default")
    return from_dict(data, source=str(p))


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(cfg.to_yaml(), encoding="utf-8")
