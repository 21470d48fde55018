"""What `tui-tuner chat TARGET` talks to, worked out without torch.

TARGET is a run (id, id prefix or directory) — its base model plus one of its adapters (the final
`adapter/` or any saved `checkpoints/checkpoint-N/`) — or a model (hub id, local folder, 'demo')
alone. The UI calls `describe_target` to validate the argument and list checkpoints before any
process is started; the inference process calls it again and then loads what it names.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tui_tuner.errors import RunError, UserError

FINAL = "final"  # the checkpoint name of the run's final adapter/
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass
class ChatTarget:
    kind: str  # "run" | "model"
    ref: str  # what the user typed
    label: str  # run id, or the model reference
    model_ref: str  # base model as the run config names it ('demo', hub id or path; unresolved)
    run_path: str | None = None
    checkpoints: list[str] = field(default_factory=list)  # "final" and/or "checkpoint-N", oldest first
    checkpoint: str | None = None  # the one to use (None: no adapter, base model alone)
    note: str | None = None  # one line for the user when the choice differs from what they would expect

    @property
    def is_run(self) -> bool:
        return self.kind == "run"

    def adapter_dir(self, checkpoint: str | None = None) -> Path | None:
        name = checkpoint if checkpoint is not None else self.checkpoint
        if not self.run_path or not name:
            return None
        run = Path(self.run_path)
        return run / "adapter" if name == FINAL else run / "checkpoints" / name

    def to_dict(self) -> dict:
        return asdict(self)


def adapter_problem(d: Path) -> str | None:
    """Why the PEFT adapter in `d` cannot be loaded (missing, empty or cut-short file), or None if whole.

    Parses adapter_config.json and the safetensors header, and checks that the file is as long as
    the header says (a save cut by a kill or a full disk leaves it shorter). Torch-free and reads
    only the header, so the UI can list checkpoints with it.
    """
    cfg, weights = d / ADAPTER_FILES[0], d / ADAPTER_FILES[1]
    for f in (cfg, weights):
        if not f.is_file():
            return f"{f.name} is missing"
    try:
        if not isinstance(json.loads(cfg.read_text(encoding="utf-8")), dict):
            return f"{cfg.name} is not a JSON object"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{cfg.name} is not valid JSON (cut short?)"
    try:
        size = weights.stat().st_size
        with open(weights, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{weights.name} is empty" if not head else f"{weights.name} is cut short ({size} bytes)"
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100 << 20):
                return f"{weights.name} is cut short ({size} bytes, its header alone needs {n + 8})"
            header = json.loads(fh.read(n))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{weights.name} has an unreadable header"
    if not isinstance(header, dict):
        return f"{weights.name} has an unreadable header"
    end = max((int(t["data_offsets"][1]) for k, t in header.items()
               if k != "__metadata__" and isinstance(t, dict) and "data_offsets" in t), default=0)
    if 8 + n + end > size:
        return f"{weights.name} is cut short ({size:,} of {8 + n + end:,} bytes)"
    return None


def _has_adapter(d: Path) -> bool:
    return adapter_problem(d) is None


def run_adapters(run_path: Path) -> list[str]:
    """Adapters a run holds: its checkpoints (by step) then 'final' when training finished."""
    names: list[tuple[int, str]] = []
    cps = run_path / "checkpoints"
    if cps.is_dir():
        for d in cps.iterdir():
            m = re.fullmatch(r"checkpoint-(\d+)", d.name)
            if m and d.is_dir() and _has_adapter(d):
                names.append((int(m.group(1)), d.name))
    out = [n for _, n in sorted(names)]
    if _has_adapter(run_path / "adapter"):
        out.append(FINAL)
    return out


def normalize_checkpoint(name: str) -> str:
    """'6' / 'checkpoint-6' / 'final' / 'adapter' → 'checkpoint-6' or 'final'."""
    name = name.strip().rstrip("/")
    name = Path(name).name if "/" in name else name
    if name.lower() in (FINAL, "adapter", "last"):
        return FINAL
    if name.isdigit():
        return f"checkpoint-{int(name)}"
    return name


def describe_target(ref: str, checkpoint: str | None = None) -> ChatTarget:
    """Validate TARGET (+ --checkpoint) and say what will be loaded. Raises UserError in one line."""
    from tui_tuner import rundir

    ref = (ref or "").strip()
    if not ref:
        raise UserError("no chat target given", hint="pass a run id, a run directory, or a model (id, path, 'demo')")
    run = None
    if ref != "demo":
        try:
            run = rundir.resolve_run(ref)
        except RunError as e:
            if "ambiguous" in e.message:
                raise
    if run is not None:
        return _describe_run(ref, run, checkpoint)
    if checkpoint:
        raise UserError(f"--checkpoint {checkpoint}: '{ref}' is a model, not a run",
                        hint="checkpoints belong to runs; see `tui-tuner runs`")
    _check_model_ref(ref)
    return ChatTarget(kind="model", ref=ref, label=ref, model_ref=ref)


def _check_model_ref(ref: str) -> None:
    from tui_tuner.models.refs import resolve_model_ref

    try:
        resolve_model_ref(ref, build_demo=False)
    except UserError as e:
        raise UserError(f"'{ref}' is neither a run nor a usable model: {e.message}",
                        hint=e.hint or "see `tui-tuner runs` for run ids") from None


def _describe_run(ref: str, run, checkpoint: str | None) -> ChatTarget:
    from tui_tuner.config import load_config

    try:
        cfg = load_config(run.config_path)
    except FileNotFoundError:
        raise UserError(f"{run.path}: run has no config.yaml", hint="it is not a complete tui-tuner run") from None
    available = run_adapters(run.path)
    final_dir = run.path / "adapter"
    torn = adapter_problem(final_dir) if final_dir.is_dir() and any(final_dir.iterdir()) else None
    note = None
    if checkpoint:
        name = normalize_checkpoint(checkpoint)
        if name not in available:
            d = final_dir if name == FINAL else run.path / "checkpoints" / name
            why = adapter_problem(d) if d.is_dir() else None
            raise UserError(f"--checkpoint {checkpoint}: run {run.run_id} has no "
                            + (f"whole adapter '{name}' ({why})" if why else f"adapter '{name}'"),
                            hint="available: " + (", ".join(available) or "none yet"))
    elif available:
        name = FINAL if FINAL in available else available[-1]  # newest checkpoint while still training
        if torn:  # e.g. the final save was cut by a kill or a full disk
            note = f"adapter/ of run {run.run_id} is incomplete ({torn}); using {name}, the newest complete checkpoint"
    elif torn:
        raise UserError(f"run {run.run_id}: adapter/ is incomplete ({torn}) and no complete checkpoint is left",
                        hint=f"resume or retrain the run, or chat with the base model: "
                             f"tui-tuner chat {cfg.model.name_or_path}")
    else:
        raise UserError(f"run {run.run_id} has no adapter yet (no checkpoint saved)",
                        hint=f"wait for its first checkpoint, or chat with the base model: "
                             f"tui-tuner chat {cfg.model.name_or_path}")
    return ChatTarget(kind="run", ref=ref, label=run.run_id, model_ref=cfg.model.name_or_path,
                      run_path=str(run.path), checkpoints=available, checkpoint=name, note=note)
