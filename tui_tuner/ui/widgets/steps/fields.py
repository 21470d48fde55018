"""One config field as a form row: label, editor, one line of help, and the core's error inline.

The help lines say what a field does, its typical range, and the advice of the fine-tuning guides
this project follows (learning rate matters most; LoRA likes a higher rate than full fine-tuning;
gradient accumulation trades speed for memory; chat vs base models).
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select, Static

from tui_tuner.ui.widgets.steps.state import choices, field_kind, from_text, to_text

LABELS: dict[str, str] = {
    "model.name_or_path": "model", "model.trust_remote_code": "trust remote code",
    "model.revision": "revision", "model.attn_implementation": "attention",
    "quantization.load_in_4bit": "4-bit base (QLoRA)", "quantization.quant_type": "4-bit type",
    "quantization.double_quant": "double quantization", "quantization.compute_dtype": "compute dtype",
    "lora.r": "LoRA rank r", "lora.alpha": "LoRA alpha", "lora.dropout": "LoRA dropout",
    "lora.target_modules": "target modules",
    "data.path": "dataset", "data.format": "format", "data.columns": "column mapping",
    "data.val_ratio": "validation split", "data.max_length": "max length (tokens)",
    "data.chat_template": "chat template", "data.skip_bad_lines": "skip bad JSONL lines",
    "data.clean.drop_empty": "drop empty rows", "data.clean.dedupe": "drop duplicates",
    "data.clean.drop_disclaimers": "drop 'as an AI' rows", "data.clean.disclaimer_phrases": "disclaimer phrases",
    "data.clean.too_long": "rows over max length",
    "train.num_epochs": "epochs", "train.max_steps": "max steps", "train.batch_size": "batch size",
    "train.grad_accum": "gradient accumulation", "train.learning_rate": "learning rate",
    "train.lr_scheduler": "LR schedule", "train.warmup_ratio": "warmup ratio", "train.optim": "optimizer",
    "train.weight_decay": "weight decay", "train.max_grad_norm": "max grad norm",
    "train.gradient_checkpointing": "gradient checkpointing", "train.group_by_length": "group by length",
    "train.seed": "seed", "train.logging_steps": "log every (steps)", "train.save_steps": "checkpoint every",
    "train.eval_steps": "evaluate every", "train.save_total_limit": "checkpoints kept",
    "train.early_stopping_patience": "early stopping patience",
    "train.system_sample_interval": "GPU sample interval (s)", "name": "run name",
}

HELP: dict[str, str] = {
    "model.trust_remote_code": "runs Python code shipped in the model repo; only for repos you trust",
    "model.revision": "hub branch, tag or commit to use; empty = main",
    "model.attn_implementation": "sdpa: fast, built in (default) · eager: slow, stores seq² scores · "
                                 "flash_attention_2: needs flash-attn and an Ampere+ GPU",
    "quantization.load_in_4bit": "QLoRA: base weights in 4-bit (~0.5 byte/parameter); off = 16-bit base, ~4× the memory",
    "quantization.quant_type": "nf4 (QLoRA's choice, best for normally distributed weights) or fp4",
    "quantization.double_quant": "quantizes the quantization constants too: ~0.4 bit/parameter saved, no quality cost",
    "quantization.compute_dtype": "dtype the matmuls run in; auto = bf16 on Ampere+ GPUs, else fp16",
    "lora.r": "rank of the update matrices: 8–64 typical (4/8/16 are common starts); "
              "higher = more capacity, more memory",
    "lora.alpha": "update scale = alpha / r; usually 2 × r (r 16 → 32); keep alpha/r fixed when you change r",
    "lora.dropout": "dropout on the adapter input: 0.05–0.1 against overfitting small data; 0 saves memory",
    "lora.target_modules": "all-linear (QLoRA default, best quality) or names, e.g. q_proj, v_proj "
                           "(fewer adapters, less memory)",
    "data.path": "a JSON/JSONL/CSV/TSV/Parquet/TXT file, a save_to_disk folder, or 'sample'",
    "data.format": "auto detects messages/sharegpt/alpaca/prompt_completion/text from the columns",
    "data.columns": "map roles to your column names, e.g. prompt=question, completion=answer",
    "data.val_ratio": "share held out to measure eval loss: 0.02–0.1 (0 = no evaluation)",
    "data.max_length": "longest row in tokens; memory grows with batch × max length",
    "data.chat_template": "auto = the model's own template; a name picks a fallback for base models",
    "data.skip_bad_lines": "skip (and count) malformed JSONL lines instead of refusing the file",
    "data.clean.drop_empty": "drop rows whose prompt or answer is empty",
    "data.clean.dedupe": "drop exact duplicate rows",
    "data.clean.drop_disclaimers": "drop rows containing 'as an AI language model'-style refusals",
    "data.clean.disclaimer_phrases": "phrases that mark a row as a disclaimer, separated by |",
    "data.clean.too_long": "drop rows over max length, or truncate them (the cut part is not trained)",
    "train.num_epochs": "passes over the data: 1–3 typical; more epochs on small data overfit (watch eval loss)",
    "train.max_steps": "stop after this many optimizer steps; -1 = train num_epochs (a few steps = a quick test)",
    "train.batch_size": "rows per forward pass: more = more VRAM; on a small GPU use 1–2 and raise accumulation",
    "train.grad_accum": "sums gradients of N batches per update: effective batch = batch × N (16–64 common "
                        "for SFT); saves memory at the same quality, no faster",
    "train.learning_rate": "matters most. LoRA likes a higher rate than full fine-tuning: 1e-4–3e-4 (2e-4 is "
                           "QLoRA's default) vs 1e-5–5e-5. Loss spikes or NaN → lower it",
    "train.lr_scheduler": "how the rate moves: cosine (default) decays smoothly after warmup; constant keeps it",
    "train.warmup_ratio": "share of steps ramping the rate up from 0: 0.03–0.1 avoids early loss spikes",
    "train.optim": "paged_adamw_8bit: QLoRA's default, 8-bit Adam states; 32-bit variants use 4× the state memory",
    "train.weight_decay": "L2 pull on the adapter weights: 0–0.1; 0 is fine for LoRA",
    "train.max_grad_norm": "clips gradient norm: 1.0 typical (0.3 in the QLoRA paper); 0 = no clipping",
    "train.gradient_checkpointing": "recompute activations in backward: far less VRAM for ~20–30 % more time",
    "train.group_by_length": "batch rows of similar length: less padding, faster",
    "train.seed": "same seed + data + settings = the same run",
    "train.logging_steps": "write the loss every N steps (1 = the smoothest live chart)",
    "train.save_steps": "checkpoint every N steps: resume continues from the newest one",
    "train.eval_steps": "evaluate on the validation split every N steps",
    "train.save_total_limit": "keep only the newest N checkpoints",
    "train.early_stopping_patience": "stop when eval loss has not improved for N evaluations; empty = never",
    "train.system_sample_interval": "seconds between GPU/CPU samples shown by the monitor",
    "name": "optional; part of the run id (e.g. support-bot-v1)",
}


class ConfigField(Vertical):
    """A labelled editor for one config path. Posts `ConfigField.Changed` with the parsed value."""

    DEFAULT_CSS = """
    ConfigField { height: auto; margin: 0 0 0 0; }
    ConfigField > Horizontal { height: auto; }
    ConfigField .field-label { width: 24; padding: 0 1 0 0; text-align: right; }
    ConfigField Input { width: 1fr; }
    ConfigField Select { width: 1fr; }
    ConfigField Checkbox { width: 1fr; border: none; padding: 0; }
    ConfigField .field-help { color: $text-muted; padding-left: 24; height: auto; }
    ConfigField.-help-on-focus .field-help { display: none; }
    ConfigField.-help-on-focus.-focused .field-help { display: block; }
    ConfigField .field-error { color: $error; padding-left: 24; height: auto; display: none; }
    ConfigField.-invalid .field-error { display: block; }
    ConfigField.-invalid Input { background: $error 30%; }
    """

    class Changed(Message):
        def __init__(self, field: "ConfigField", path: str, value: Any) -> None:
            super().__init__()
            self.field = field
            self.path = path
            self.value = value

        @property
        def control(self) -> "ConfigField":
            return self.field

    def __init__(self, path: str, value: Any, *, label: str | None = None, help: str | None = None,
                 placeholder: str = "", show_help: bool | str = True, id: str | None = None) -> None:
        """show_help: True (always), "focus" (only while the field has focus), or False."""
        super().__init__(id=id or "f-" + path.replace(".", "-"), classes="-help-on-focus" if show_help == "focus" else "")
        self.path = path
        self.kind = field_kind(path)
        self.initial = value
        self.label_text = label or LABELS.get(path, path)
        self.help_text = help if help is not None else HELP.get(path, "")
        self.placeholder = placeholder
        self.show_help = show_help

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(self.label_text, classes="field-label")
            yield self._editor()
        if self.show_help and self.help_text:
            yield Static(self.help_text, classes="field-help")
        yield Static("", classes="field-error")

    def _editor(self):
        eid = "e-" + self.path.replace(".", "-")
        if self.kind == "bool":
            return Checkbox("", bool(self.initial), id=eid, compact=True)
        if self.kind == "choice":
            opts = [(c, c) for c in choices(self.path)]
            value = self.initial if self.initial in choices(self.path) else Select.NULL
            return Select(opts, value=value, allow_blank=False, id=eid, compact=True)
        return Input(to_text(self.path, self.initial), placeholder=self.placeholder, id=eid, compact=True)

    @property
    def editor(self):
        return self.query_one("#e-" + self.path.replace(".", "-"))

    def set_value(self, value: Any, *, announce: bool = False) -> None:
        """Show a value set elsewhere (a preset, auto-fit, the file browser).

        The editor's own Changed is suppressed: the value came from the state, so echoing it back
        as an edit would only re-apply it (and an echo of an older value, still queued while the user
        types, would overwrite newer text). announce: the value is new to the state too (the file
        browser), so post it once as this field's Changed."""
        ed = self.editor
        with ed.prevent(Input.Changed, Checkbox.Changed, Select.Changed):
            if isinstance(ed, Checkbox):
                ed.value = bool(value)
            elif isinstance(ed, Select):
                if value in choices(self.path):
                    ed.value = value
            elif isinstance(ed, Input):
                if from_text(self.path, ed.value) != value:
                    ed.value = to_text(self.path, value)
                    ed.cursor_position = len(ed.value)
        if announce:
            self._emit(self.value)

    @property
    def value(self) -> Any:
        """The config value of what the editor shows right now."""
        ed = self.editor
        if isinstance(ed, Input):
            return from_text(self.path, ed.value)
        if isinstance(ed, Select):
            return ed.value if ed.value is not Select.NULL else self.initial
        return ed.value

    def show_error(self, message: str | None) -> None:
        self.set_class(bool(message), "-invalid")
        self.query_one(".field-error", Static).update(message or "")

    @property
    def error(self) -> str | None:
        return str(self.query_one(".field-error", Static).content) if self.has_class("-invalid") else None

    def on_descendant_focus(self) -> None:
        self.add_class("-focused")

    def on_descendant_blur(self) -> None:
        self.remove_class("-focused")

    def _emit(self, value: Any) -> None:
        self.post_message(self.Changed(self, self.path, value))

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        # The editor's text now, not the event's: keys that arrive in a burst (a paste, a fast
        # typist, tmux send-keys) queue one Changed per key, handled after the text has moved on.
        event.stop()
        self._emit(self.value)

    @on(Checkbox.Changed)
    def _checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._emit(event.value)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.NULL:
            self._emit(event.value)
