"""Step 2 — VRAM: the detected GPU (or a size to plan for), the estimate as a stacked bar with
numbers, and the auto-fit suggestion applied with one key (ctrl+f)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from tui_tuner.errors import UserError
from tui_tuner.ui.styles import badge
from tui_tuner.ui.widgets.steps.base import WizardStep
from tui_tuner.ui.widgets.vram_bar import VramBar


@dataclass
class Suggestion:
    text: str
    changes: dict[str, Any]


def _divisor_at_most(n: int, cap: int) -> int:
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1


def suggest(cfg: dict[str, Any], est: Any, fit: Any) -> Suggestion | None:
    """One change to the batch / accumulation / max length that the estimate says is best:
    when it does not fit, the largest batch that does (keeping the effective batch through gradient
    accumulation); when it fits with room, a larger batch and fewer accumulation steps (faster)."""
    if fit is None or est is None:
        return None
    b, a, L = cfg["train"]["batch_size"], cfg["train"]["grad_accum"], cfg["data"]["max_length"]
    eff = b * a
    if not est.fits:
        if fit.max_batch >= 1:
            nb = _divisor_at_most(eff, fit.max_batch) if eff >= fit.max_batch else fit.max_batch
            na = math.ceil(eff / nb)
            return Suggestion(f"batch {b} → {nb}, gradient accumulation {a} → {na} "
                              f"(effective batch {nb * na}): fits", {"train.batch_size": nb, "train.grad_accum": na})
        if fit.max_seq_len_batch1 >= 64:
            ml = fit.max_seq_len_batch1
            return Suggestion(f"batch {b} → 1, gradient accumulation {a} → {eff}, max length {L} → {ml}: fits",
                              {"train.batch_size": 1, "train.grad_accum": eff, "data.max_length": ml})
        return Suggestion("does not fit even at batch 1 with 64 tokens: choose a smaller model or a bigger GPU", {})
    if fit.max_batch > b:
        nb = _divisor_at_most(eff, fit.max_batch)
        if nb > b:
            na = eff // nb
            return Suggestion(f"room to spare: batch {b} → {nb}, gradient accumulation {a} → {na} "
                              f"(same effective batch {eff}, faster)", {"train.batch_size": nb, "train.grad_accum": na})
    return None


class VramStep(WizardStep):
    step_id = "vram"
    title = "VRAM"
    DEFAULT_CSS = """
    VramStep #vram-gpu { height: auto; margin-top: 1; }
    VramStep #vram-size-row { height: auto; }
    VramStep #vram-size-label { padding: 0 1 0 0; }
    VramStep #vram-size { width: 14; }
    VramStep #vram-summary { height: auto; margin-top: 1; }
    VramStep VramBar { margin-top: 1; }
    VramStep #vram-fit { height: auto; margin-top: 1; }
    VramStep #vram-apply { margin-top: 1; }
    """
    BINDINGS = [Binding("ctrl+f", "apply_fit", "Apply auto-fit", id="vram-apply-fit")]

    def compose(self) -> ComposeResult:
        yield Static("detecting the GPU…", id="vram-gpu")
        with Horizontal(id="vram-size-row"):
            yield Label("GPU size to plan for (GiB):", id="vram-size-label")
            yield Input(placeholder="e.g. 24", id="vram-size", compact=True)
        yield Static("", id="vram-size-error", classes="step-error")
        yield Static("", id="vram-summary")
        yield VramBar(id="vram-bar")
        yield Static("", id="vram-fit")
        yield Button("Apply auto-fit (ctrl+f)", id="vram-apply", disabled=True)

    def first_focus(self):
        return self.query_one("#vram-size")

    def on_mount(self) -> None:
        self.suggestion: Suggestion | None = None
        self.size_error: str | None = None
        self._show_gpu()

    # -- GPU ------------------------------------------------------------------------------------
    def _show_gpu(self) -> None:
        st = self.state
        w = self.query_one("#vram-gpu", Static)
        if not st.gpu_checked:
            w.update("detecting the GPU…")
            return
        if st.gpu is not None:
            g = st.gpu
            cc = f" · compute {g.compute_capability[0]}.{g.compute_capability[1]}" if g.compute_capability else ""
            w.update(Text.assemble(("GPU  ", "bold"), f"{g.name} · {g.total_gib:.1f} GiB total, "
                                   f"{g.free_gib:.1f} GiB free{cc}" + (" · bf16" if g.supports_bf16 else "")))
        else:
            w.update(Text.assemble(("GPU  ", "bold"), ("no NVIDIA GPU detected (NVML)", "yellow"),
                                   " — type the size of the GPU you will train on; "
                                   "on this machine the run itself trains on the CPU"))
        size = self.query_one("#vram-size", Input)
        if st.vram_gib is not None and not size.value:
            size.value = f"{st.vram_gib:g}" if st.gpu is None else f"{st.vram_gib:.1f}"

    @on(Input.Changed, "#vram-size")
    def _size_changed(self, event: Input.Changed) -> None:
        text = event.input.value.strip()  # the text now: under a burst of keys the event's value is older
        err = None
        value: float | None = None
        if text:
            try:
                value = float(text)
                if not math.isfinite(value) or value <= 0 or value > 4096:
                    err = f"GPU size: {text!r} is out of range (must be > 0 GiB)"
            except ValueError:
                err = f"GPU size: {text!r} is not a number of GiB (e.g. 24)"
        self.size_error = err
        self.query_one("#vram-size-error", Static).update(err or "")
        if err is None and value != self.state.vram_gib:
            self.state.vram_gib = value
            self.screen.config_changed(["gpu"])

    # -- estimate + auto-fit --------------------------------------------------------------------
    def on_show_step(self) -> None:
        self._show_gpu()
        self.refresh_estimate()

    def on_config_changed(self, paths: list[str]) -> None:
        if "gpu" in paths:
            self._show_gpu()
        if self.display and self.screen.current is self:
            self.refresh_estimate()

    def refresh_estimate(self) -> None:
        cfg = self.state.try_config()
        if cfg is None:
            self.query_one("#vram-summary", Static).update(
                Text("fix the invalid fields first (hyperparameters step)", style="yellow"))
            return
        self._estimate(cfg, self.state.vram_gib)

    @work(thread=True, exclusive=True, group="vram-estimate", exit_on_error=False)
    def _estimate(self, cfg: Any, vram: float | None) -> None:
        try:
            est = self.services.estimate(cfg, vram)
            fit = self.services.auto_fit(cfg, vram) if vram else None
            err = None
        except UserError as e:
            est, fit, err = None, None, e.one_line()
        self.app.call_from_thread(self._show_estimate, est, fit, err, vram)

    def _show_estimate(self, est: Any, fit: Any, err: str | None, vram: float | None) -> None:
        from tui_tuner.plan import fit_verdict

        summary = self.query_one("#vram-summary", Static)
        bar = self.query_one(VramBar)
        if err is not None or est is None:
            summary.update(Text(f"no estimate: {err}", style="yellow"))
            bar.display = False
            self.suggestion = None
            self.query_one("#vram-fit", Static).update("")
            self.query_one("#vram-apply", Button).display = False
            return
        bar.display = True
        s = est.settings
        t = Text()
        t.append("Estimate  ", style="bold")
        t.append(f"{est.model} · batch {s['batch_size']} × {s['seq_len']} tokens · LoRA r {s['lora_r']} · "
                 f"checkpointing {'on' if s['gradient_checkpointing'] else 'OFF'} · {s['optim']}\n")
        t.append(f"          {est.total_gib:.2f} GiB peak ({est.phase} pass)  ")
        verdict = fit_verdict(est.fits, est.headroom_gib, vram)
        t.append_text(badge(verdict))
        free = " free" if self.state.gpu is not None else ""  # a detected GPU: its free memory
        if vram and est.headroom_gib is not None and est.headroom_gib >= 0:
            t.append(f"  on {vram:.1f} GiB{free}: {est.headroom_gib:.2f} GiB to spare beyond the "
                     f"{est.margin_gib:.2f} GiB safety margin")
        elif vram and est.headroom_gib is not None:
            t.append(f"  on {vram:.1f} GiB{free}: {-est.headroom_gib:.2f} GiB too much, counting the "
                     f"{est.margin_gib:.2f} GiB safety margin")
        else:
            t.append("  give a GPU size above to check the fit")
        for note in est.notes[:2]:
            t.append(f"\n          note: {note}", style="dim")
        summary.update(t)
        bar.set_data(est.breakdown, vram)
        self.suggestion = suggest(self.state.cfg, est, fit)
        ft = Text()
        if fit is not None:
            ft.append("Auto-fit  ", style="bold")
            ft.append(f"largest batch at {s['seq_len']} tokens: {fit.max_batch or 'none'} · largest max length "
                      f"at batch {s['batch_size']}: {fit.max_seq_len or 'none'} (batch 1: {fit.max_seq_len_batch1 or 'none'})\n")
            if self.suggestion is not None:
                ft.append("ctrl+f    ", style="bold")
                ft.append(self.suggestion.text + "\n")
            else:
                ft.append("          nothing to change: it fits and the batch is already as large as useful\n",
                          style="dim")
            if not est.fits and fit.knobs:
                ft.append("What helps most:\n", style="bold")
                for k in fit.knobs[:3]:
                    ft.append(f"  -{k['saves_gib']:.2f} GiB  {k['change']}" + ("  → fits" if k.get("fits") else "") + "\n")
        summary_fit = self.query_one("#vram-fit", Static)
        summary_fit.update(ft)
        apply = self.query_one("#vram-apply", Button)
        apply.display = fit is not None
        apply.disabled = not (self.suggestion and self.suggestion.changes)

    @on(Button.Pressed, "#vram-apply")
    def _apply_pressed(self) -> None:
        self.action_apply_fit()

    def action_apply_fit(self) -> None:
        sug = self.suggestion
        if not sug or not sug.changes:
            self.notify("no auto-fit change to apply", severity="information")
            return
        changed = [p for p, v in sug.changes.items() if self.state.set(p, v)]
        self.notify(f"applied: {sug.text}")
        self.suggestion = None
        if changed:
            self.screen.config_changed(changed)

    def blocking(self, errors: dict[str, str]) -> list[str]:
        return [self.size_error] if self.size_error else []
