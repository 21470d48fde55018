"""What `tui-tuner chat TARGET` talks to, worked out without torch.

TARGET is a run (id, id prefix or directory) — its base model plus one of its adapters (the final
`adapter/` or any saved `checkpoints/checkpoint-N/`) — or a model (hub id, local folder, 'demo')
alone. The UI calls `describe_target` to validate the argument and list checkpoints before any
process is started; the inference process calls it again and then loads what it names.
"""

from __future__ import annotations

import re
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


def _has_adapter(d: Path) -> bool:
    return all((d / f).is_file() for f in ADAPTER_FILES)


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
    from tui_tuner import hub

    try:
        hub.resolve_model_ref(ref, build_demo=False)
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
    if checkpoint:
        name = normalize_checkpoint(checkpoint)
        if name not in available:
            raise UserError(f"--checkpoint {checkpoint}: run {run.run_id} has no adapter '{name}'",
                            hint="available: " + (", ".join(available) or "none yet"))
    elif available:
        name = FINAL if FINAL in available else available[-1]  # newest checkpoint while still training
    else:
        raise UserError(f"run {run.run_id} has no adapter yet (no checkpoint saved)",
                        hint=f"wait for its first checkpoint, or chat with the base model: "
                             f"tui-tuner chat {cfg.model.name_or_path}")
    return ChatTarget(kind="run", ref=ref, label=run.run_id, model_ref=cfg.model.name_or_path,
                      run_path=str(run.path), checkpoints=available, checkpoint=name)
