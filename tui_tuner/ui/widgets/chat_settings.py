"""The chat side panel: adapter/checkpoint switcher, compare switch, system prompt, sampling controls."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select, Switch, TextArea

from tui_tuner.errors import UserError
from tui_tuner.inference.params import LABELS, SamplingParams
from tui_tuner.inference.target import FINAL

# (field, input type, tooltip)
FIELDS = [
    ("temperature", "number", "0 = greedy (deterministic); higher = more random"),
    ("top_p", "number", "sample only from the smallest set of tokens whose probability adds up to this"),
    ("top_k", "integer", "sample only from the k most likely tokens (0 = off)"),
    ("max_new_tokens", "integer", "the longest reply, in tokens"),
    ("repetition_penalty", "number", "> 1 discourages repeating tokens (1 = off)"),
]


def checkpoint_label(name: str) -> str:
    return "final adapter" if name == FINAL else name


class ChatSettings(VerticalScroll):
    DEFAULT_CSS = """
    ChatSettings { width: 38; border-left: solid $secondary; padding: 0 1; }
    ChatSettings > Label { margin-top: 1; text-style: bold; }
    ChatSettings .row { height: 3; }
    ChatSettings .row > Label { width: 20; padding-top: 1; }
    ChatSettings .row > Input { width: 1fr; }
    ChatSettings #chat-system { height: 6; }
    ChatSettings .row > Switch { width: auto; }
    """

    class CheckpointChosen(Message):
        def __init__(self, checkpoint: str) -> None:
            super().__init__()
            self.checkpoint = checkpoint

    class CompareToggled(Message):
        def __init__(self, on: bool) -> None:
            super().__init__()
            self.on = on

    def __init__(self, *, system: str = "", params: SamplingParams | None = None, compare: bool = False,
                 id: str | None = None):
        super().__init__(id=id)
        self.system = system
        self.params = params or SamplingParams()
        self.compare = compare

    def compose(self) -> ComposeResult:
        yield Label("Adapter")
        yield Select([], prompt="loading…", allow_blank=True, id="chat-checkpoint")
        with Horizontal(classes="row"):
            yield Label("Compare with base")
            yield Switch(self.compare, id="chat-compare")
        yield Label("System prompt")
        yield TextArea(self.system, id="chat-system", soft_wrap=True, show_line_numbers=False)
        yield Label("Sampling")
        for name, kind, tip in FIELDS:
            with Horizontal(classes="row"):
                yield Label(LABELS[name])
                inp = Input(str(getattr(self.params, name)), type=kind, id=f"chat-{name.replace('_', '-')}")
                inp.tooltip = tip
                yield inp

    # -- checkpoints ---------------------------------------------------------------------------------
    def set_checkpoints(self, names: list[str], current: str | None, *, is_run: bool) -> None:
        """Fill the switcher; the screen ignores the change events for the adapter already answering."""
        select = self.query_one("#chat-checkpoint", Select)
        if not is_run:
            select.set_options([("model alone (no adapter)", "__none__")])
            select.value = "__none__"
            select.disabled = True
            self.query_one("#chat-compare", Switch).disabled = True
            return
        # The blank "loading…" entry served until the list was known: it must not stay in the list.
        # (Select reads _allow_blank when options are set; textual/widgets/_select.py, 8.2.)
        if not names:
            select.set_options([])
            select.prompt = "no checkpoints yet"
            return
        select._allow_blank = False
        select.set_options([(checkpoint_label(n), n) for n in reversed(names)])  # newest first
        if current in names:
            select.value = current

    @on(Select.Changed, "#chat-checkpoint")
    def _checkpoint_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value in (Select.NULL, "__none__", None):
            return
        self.post_message(self.CheckpointChosen(str(event.value)))

    @on(Switch.Changed, "#chat-compare")
    def _compare_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.compare = event.value
        self.post_message(self.CompareToggled(event.value))

    def set_compare(self, on: bool) -> None:
        self.query_one("#chat-compare", Switch).value = on

    # -- values --------------------------------------------------------------------------------------
    @property
    def system_prompt(self) -> str:
        return self.query_one("#chat-system", TextArea).text

    def read_params(self) -> SamplingParams:
        """The sampling controls as SamplingParams; UserError naming the field when one is invalid."""
        values = {}
        for name, kind, _ in FIELDS:
            raw = self.query_one(f"#chat-{name.replace('_', '-')}", Input).value.strip()
            try:
                values[name] = int(raw) if kind == "integer" else float(raw)
            except ValueError:
                raise UserError(f"{LABELS[name]}: '{raw}' is not a{'n integer' if kind == 'integer' else ' number'}",
                                hint="fix it in the side panel (f2)") from None
        params = SamplingParams(**{**self.params.to_dict(), **values})  # keeps fields the panel does not show
        params.validate()
        return params
