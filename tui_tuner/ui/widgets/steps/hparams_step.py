"""Step 4 — hyperparameters: a preset, then every remaining field of the config with one line of
help each, validated as you type; the VRAM estimate and time per epoch follow every change."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Select, Static

from tui_tuner.errors import UserError
from tui_tuner.ui.widgets.steps.base import WizardStep
from tui_tuner.ui.widgets.steps.fields import ConfigField
from tui_tuner.ui.styles import badge
from tui_tuner.ui.widgets.steps.presets import apply_preset, list_presets

SECTIONS: list[tuple[str, tuple[str, ...]]] = [
    ("Training", ("train.learning_rate", "train.num_epochs", "train.max_steps", "train.batch_size",
                  "train.grad_accum", "train.lr_scheduler", "train.warmup_ratio", "train.optim",
                  "train.weight_decay", "train.max_grad_norm", "train.gradient_checkpointing",
                  "train.group_by_length")),
    ("LoRA", ("lora.r", "lora.alpha", "lora.dropout", "lora.target_modules")),
    ("Quantization", ("quantization.load_in_4bit", "quantization.quant_type", "quantization.double_quant",
                      "quantization.compute_dtype")),
    ("Model loading", ("model.attn_implementation", "model.trust_remote_code", "model.revision")),
    ("Checkpoints, evaluation, logging", ("train.save_steps", "train.eval_steps", "train.save_total_limit",
                                          "train.early_stopping_patience", "train.logging_steps", "train.seed",
                                          "train.system_sample_interval")),
]


class HparamsStep(WizardStep):
    step_id = "hparams"
    title = "Hyperparameters"
    FIELDS = tuple(p for _, paths in SECTIONS for p in paths)
    DEFAULT_CSS = """
    HparamsStep #hp-preset-row { height: auto; margin-top: 1; }
    HparamsStep #hp-preset-label { width: 24; text-align: right; padding: 0 1 0 0; }
    HparamsStep #hp-preset { width: 1fr; }
    HparamsStep #hp-preset SelectOverlay { background: $surface; }  /* opaque over the labels below */
    HparamsStep #hp-preset-help { color: $text-muted; padding-left: 24; }
    HparamsStep #hp-summary { dock: top; height: auto; border: round $secondary; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        self.presets = list_presets()
        with Horizontal(id="hp-preset-row"):
            yield Label("preset", id="hp-preset-label")
            names = [n for n, _, _ in self.presets]
            yield Select([(f"{n} — {d}" if d else n, n) for n, _, d in self.presets], prompt="(none: keep values)",
                         id="hp-preset", compact=True,
                         value=self.state.preset if self.state.preset in names else Select.NULL)
        yield Static("sets LoRA, quantization and training values; your model and dataset stay", id="hp-preset-help")
        yield Static("", id="hp-summary")
        for title, paths in SECTIONS:
            yield Static(title, classes="section")
            for p in paths:
                yield ConfigField(p, self.state.get(p))

    def first_focus(self):
        return self.query_one("#e-train-learning_rate")

    # -- presets --------------------------------------------------------------------------------
    @on(Select.Changed, "#hp-preset")
    def _preset(self, event: Select.Changed) -> None:
        if event.value is Select.NULL or event.value == self.state.preset:
            return
        self.state.auto_preset = None  # the user's own choice: kept whatever model is chosen later
        self.apply_preset(str(event.value))

    def apply_preset(self, name: str) -> None:
        try:
            changed = apply_preset(self.state, name)
        except ValueError as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"preset {name}: {len(changed)} values changed" if changed else f"preset {name}: nothing to change")
        if changed:
            self.screen.config_changed(changed)

    # -- live summary ---------------------------------------------------------------------------
    def on_show_step(self) -> None:
        select = self.query_one("#hp-preset", Select)
        if self.state.preset and self.state.preset != select.value:  # applied on the model step
            with select.prevent(Select.Changed):
                select.value = self.state.preset
        self.refresh_summary()

    def on_config_changed(self, paths: list[str]) -> None:
        if self.screen.current is self:
            self.refresh_summary()

    def refresh_summary(self) -> None:
        cfg = self.state.try_config()
        box = self.query_one("#hp-summary", Static)
        if cfg is None:
            box.update(Text("estimate paused: fix the fields marked in red", style="yellow"))
            return
        self._summary(cfg, self.state.vram_gib, self.state.data_result)

    @work(thread=True, exclusive=True, group="hp-summary", exit_on_error=False)
    def _summary(self, cfg: Any, vram: float | None, data_report: dict | None) -> None:
        from tui_tuner import plan
        from tui_tuner.progress import fmt_duration

        t = Text()
        try:
            est = self.services.estimate(cfg, vram)
        except UserError as e:
            est = None
            t.append(f"VRAM  no estimate: {e.one_line()}\n", style="yellow")
        if est is not None:
            t.append("VRAM  ", style="bold")
            t.append(f"{est.total_gib:.2f} GiB peak ")
            t.append_text(badge(plan.fit_verdict(est.fits, est.headroom_gib, vram)))
            t.append(f"  on {vram:.1f} GiB\n" if vram else "  (no GPU size: see the VRAM step)\n")
        gpu = self.state.gpu
        summary = plan.DataSummary.from_report(data_report) if data_report else None
        spe, total, epochs = plan.schedule(cfg, summary.train_rows if summary else None)
        history = self.services.throughput_history(cfg.model.name_or_path, gpu.name if gpu else "cpu")
        tps, source = plan.throughput(cfg, est.params if est else None, gpu.name if gpu else None, history)
        t.append("Time  ", style="bold")
        eff = cfg.train.batch_size * cfg.train.grad_accum
        if spe:
            t.append(f"{spe:,} steps per epoch (effective batch {eff}), {total:,} steps in all")
        else:
            t.append(f"effective batch {eff}; steps per epoch known once the dataset is inspected")
        if tps and summary and summary.train_tokens:
            t.append(f" · ≈ {fmt_duration(summary.train_tokens / tps, 'words')} per epoch ({source})")
        elif source:
            t.append(f" · time: {source}", style="dim")
        self.app.call_from_thread(self.query_one("#hp-summary", Static).update, t)
