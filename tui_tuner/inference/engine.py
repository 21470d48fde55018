"""The model side of chat: load a base (4-bit as trained) + PEFT adapters, generate with streaming.

Imports torch/transformers/peft, so it runs only in the inference process (`server.py`), the
one-shot CLI and the bench — never in the UI process.

- The tokenizer (and so the chat template) comes from the adapter folder: the worker saves the
  exact template it trained with there. A model without a template gets the same fallback the
  training pipeline would have used (`data.templates.resolve_chat_template`).
- One model in memory: every adapter of a run is loaded into the same `PeftModel` under its own
  name, and the base answer is produced inside `with model.disable_adapter():`.
- Streaming: `TokenStreamer` decodes token by token (TextIteratorStreamer holds text back until a
  space and yields empty strings meanwhile), and generation is cancelled by a StoppingCriteria that
  reads a threading.Event.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tui_tuner.config import QuantizationConfig
from tui_tuner.errors import UserError
from tui_tuner.inference.params import SamplingParams
from tui_tuner.inference.target import FINAL, ChatTarget

ProgressFn = Callable[[str, "float | None"], None]


@dataclass
class Reply:
    text: str
    tokens: int  # generated tokens (the end-of-turn token included)
    prompt_tokens: int
    seconds: float
    first_token_seconds: float | None
    finish: str  # "eos" | "length" | "cancelled"
    adapter: str | None  # checkpoint name, or None for the base model
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class TokenStreamer:
    """A generate() streamer that turns each new token into text at once.

    Incremental detokenization (as vLLM/TGI do it): decode a short window of ids twice — up to the
    last emitted token, and including the new one — and emit the difference; hold back while the
    text ends in U+FFFD (half of a multi-byte character). The window starts with a few prompt ids
    so a SentencePiece leading space comes out as it would in a full decode.
    """

    def __init__(self, tokenizer, on_text: Callable[[str, int], None], context: int = 5):
        self.tok = tokenizer
        self.on_text = on_text
        self.context = context
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0
        self.generated = 0
        self.prompt_seen = False
        self.first_token_at: float | None = None

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate() first hands over the prompt
            self.prompt_seen = True
            tail = value[0].tolist()[-self.context:] if value.dim() > 1 else value.tolist()[-self.context:]
            self.ids = list(tail)
            self.prefix = 0
            self.read = len(self.ids)
            return
        new = value.reshape(-1).tolist()
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        for t in new:
            self.ids.append(t)
            self.generated += 1
            prefix_text = self.tok.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
            full_text = self.tok.decode(self.ids[self.prefix:], skip_special_tokens=True)
            held = len(self.ids) - self.read
            # A UTF-8 character is at most 4 bytes: text still ending in U+FFFD after 4 held tokens
            # holds invalid bytes (a model can produce those) and is shown as it is.
            if len(full_text) > len(prefix_text) and (not full_text.endswith("\ufffd") or held >= 4):
                delta = full_text[len(prefix_text):]
                self.prefix, self.read = self.read, len(self.ids)
                self.on_text(delta, self.generated)
            else:
                self.on_text("", self.generated)  # a token with no visible text yet still counts

    def end(self) -> None:
        pass


def _compute_dtype(quant: QuantizationConfig, torch):
    # Same choice as the training worker, so the answers match what training saw.
    from tui_tuner.devices import compute_dtype

    return compute_dtype(quant.compute_dtype, torch, torch.cuda.is_available())


def _cpu_threads(torch, *, model_path: str | None = None, model=None) -> int:
    """Threads for CPU inference. Measured on the shared 2-core box: a 120k-parameter toy made
    50 tokens in 0.28 s with 1 thread and 5.7-7.0 s with 2 while other processes held the CPU
    (OpenMP threads spin-wait for a busy sibling core; loading the 4M demo: 0.3 s vs 3.2 s).
    Splitting small matmuls gains nothing anyway, so small models (< ~200M parameters, judged
    from the weight files before loading, or the parameter count after) get 1 thread;
    TUI_TUNER_INFER_THREADS overrides."""
    import os

    env = os.environ.get("TUI_TUNER_INFER_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        n = int(env)
    elif model is not None:
        n = 1 if model.num_parameters() < 200_000_000 else torch.get_num_threads()
    else:
        d = Path(model_path) if model_path else None
        weights = sum(f.stat().st_size for f in d.iterdir() if f.suffix in (".safetensors", ".bin")) \
            if d is not None and d.is_dir() else None
        n = 1 if weights is not None and weights < 800_000_000 else torch.get_num_threads()
    torch.set_num_threads(n)
    return n


def chat_prompt(tok, messages: list[dict[str, str]], chat_format=None, **kwargs):
    """The prompt for the next reply, built exactly as training built the text before each reply:
    the same template, the same system-prompt handling (data.templates.ChatFormat), then
    add_generation_prompt=True (data/masking.py starts each trained reply at this very prompt)."""
    from tui_tuner.data.templates import ChatFormat

    fmt = chat_format if chat_format is not None else ChatFormat.probe(tok, tok.chat_template)
    return tok.apply_chat_template(fmt.apply(list(messages)), add_generation_prompt=True, **kwargs)


def end_of_turn_ids(tok, generation_config=None) -> list[int]:
    """Ids that end a reply: the tokenizer's EOS, the model's, and the template's end-of-turn
    token when it is a special token (e.g. <|im_end|> on a base whose EOS is <|endoftext|>)."""
    ids: list[int] = []
    for src in (tok.eos_token_id, getattr(generation_config, "eos_token_id", None)):
        for i in (src if isinstance(src, (list, tuple)) else [src]):
            if isinstance(i, int) and i not in ids:
                ids.append(i)
    with contextlib.suppress(Exception):
        marker = "\ue000END\ue000"  # private-use, not whitespace: templates that `| trim` the content keep it
        text = tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}],
                                       tokenize=False)
        suffix = text.split(marker, 1)[1]
        first = tok(suffix.lstrip(" "), add_special_tokens=False)["input_ids"][:1]
        special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
        if first and first[0] in special and first[0] not in ids:
            ids.append(first[0])
    return ids


class Engine:
    """One base model (+ a run's adapters) in memory, ready to chat."""

    def __init__(self, target: ChatTarget, progress: ProgressFn | None = None, *, trust_remote_code: bool = False):
        self.target = target
        self.trust_remote_code = trust_remote_code  # confirmed by this process's caller, never read from the run
        self.progress = progress or (lambda msg, frac=None: None)
        self.model = None
        self.tok = None
        self.adapter: str | None = None  # active adapter (checkpoint name)
        self.loaded_adapters: dict[str, str] = {}  # checkpoint name → PEFT adapter name
        self.info: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        target = self.target
        self.progress(f"resolving model {target.model_ref}", 0.02)
        from tui_tuner import hub
        from tui_tuner.models.refs import resolve_model_ref

        quant = QuantizationConfig()
        trust, revision, attn = False, None, "sdpa"
        if target.is_run:
            from tui_tuner.config import load_config

            cfg = load_config(Path(target.run_path) / "config.yaml")
            quant = cfg.quantization
            revision, attn = cfg.model.revision, cfg.model.attn_implementation
            from tui_tuner.remote_code import require_confirmation

            trust = require_confirmation(cfg.model.trust_remote_code, self.trust_remote_code, target.model_ref,
                                         revision, command="tui-tuner chat TARGET")
        else:
            trust = self.trust_remote_code
        model_path = resolve_model_ref(  # a .gguf is dequantized once: its steps fill 2–9 % of the bar
            target.model_ref, progress=lambda m, f=None: self.progress(m, 0.02 + 0.07 * (f or 0.0)))
        hub.go_offline_if_unreachable()

        self.progress("importing torch / transformers", 0.1)
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        cuda = torch.cuda.is_available()
        dtype = _compute_dtype(quant, torch)
        common = dict(trust_remote_code=trust, revision=revision)
        if not cuda:
            _cpu_threads(torch, model_path=model_path)

        # The run's adapter folder holds the tokenizer + the exact template it trained with.
        tok_dir = model_path
        template_source = "model"
        if target.is_run:
            for name in [target.checkpoint, FINAL, *reversed(target.checkpoints)]:
                d = target.adapter_dir(name) if name else None
                if d is not None and (d / "tokenizer_config.json").is_file():
                    tok_dir, template_source = str(d), f"run ({name})"
                    break
        self.progress("loading tokenizer", 0.2)
        tok = AutoTokenizer.from_pretrained(tok_dir, **(common if tok_dir == model_path else {}))
        if not tok.chat_template:
            from tui_tuner.data.templates import resolve_chat_template

            tok.chat_template, label = resolve_chat_template(tok, "auto")
            template_source = f"fallback '{label}' (the model ships none)"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self.tok = tok
        from tui_tuner.data.templates import ChatFormat

        self.chat_format = ChatFormat.probe(tok, tok.chat_template)

        what = f"4-bit {quant.quant_type}" if quant.load_in_4bit else str(dtype).replace("torch.", "")
        self.progress(f"loading model ({what})", 0.35)
        from tui_tuner.models.attention import usable_attn_implementation

        attn, attn_note = usable_attn_implementation(model_path, attn, **common)
        if attn_note:
            self.progress(attn_note, 0.35)
        load_kwargs: dict[str, Any] = dict(dtype=dtype, attn_implementation=attn, **common)
        if quant.load_in_4bit:
            load_kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type=quant.quant_type,
                bnb_4bit_use_double_quant=quant.double_quant, bnb_4bit_compute_dtype=dtype)
        if cuda:
            load_kwargs["device_map"] = {"": torch.cuda.current_device()}
            self._check_gpu_memory(torch, target, quant)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_pretrained(model_path, **load_kwargs)
        model.eval()
        self.model = model
        self.threads = _cpu_threads(torch, model=model) if not cuda else None
        self.eos_ids = end_of_turn_ids(tok, model.generation_config)

        if target.is_run and target.checkpoint:
            self.progress(f"loading adapter {target.checkpoint}", 0.85)
            self.set_adapter(target.checkpoint)

        self.info = {
            "target": target.to_dict(),
            "model_path": model_path,
            "device": "cuda" if cuda else "cpu",
            "dtype": str(dtype).replace("torch.", ""),
            "load_in_4bit": quant.load_in_4bit,
            "quant_type": quant.quant_type if quant.load_in_4bit else None,
            "chat_template_source": template_source,
            "system_prompt": self.chat_format.to_dict()["system_prompt"],
            "adapter": self.adapter,
            "cpu_threads": self.threads,
            "load_seconds": round(time.perf_counter() - t0, 3),
        }
        self.progress("ready", 1.0)
        return self.info

    def _check_gpu_memory(self, torch, target: ChatTarget, quant: QuantizationConfig) -> None:
        """Refuse to load when the chat model would not fit next to what the GPU holds (a training
        run on the same GPU keeps what it may still claim)."""
        from tui_tuner.inference import gpu_memory

        try:
            from tui_tuner.models.vram import TrainSettings, arch_for_ref, chat_bytes

            arch, _ = arch_for_ref(target.model_ref)
            need = chat_bytes(arch, TrainSettings(load_in_4bit=quant.load_in_4bit, double_quant=quant.double_quant,
                                                  compute_dtype=quant.compute_dtype))
        except Exception:  # no offline estimate for this model: nothing to compare
            return
        free, total = torch.cuda.mem_get_info()
        held = gpu_memory.training_run_on(gpu_memory.assigned_gpu())
        gpu_memory.check_chat_fits(need, free, total, training_run=held[0] if held else None,
                                   run_estimate_bytes=held[1] if held else None,
                                   gpu_name=torch.cuda.get_device_name())

    def set_adapter(self, checkpoint: str) -> str:
        """Make a run's adapter (final or checkpoint-N) the active one; loads it on first use."""
        from tui_tuner.inference.target import normalize_checkpoint

        name = normalize_checkpoint(checkpoint)
        if not self.target.is_run:
            raise UserError(f"'{self.target.label}' is a model, not a run: it has no adapters")
        if name not in self.target.checkpoints:
            from tui_tuner.inference.target import run_adapters

            self.target.checkpoints = run_adapters(Path(self.target.run_path))  # new checkpoints since start
            if name not in self.target.checkpoints:
                raise UserError(f"run {self.target.label} has no adapter '{name}'",
                                hint="available: " + ", ".join(self.target.checkpoints))
        path = str(self.target.adapter_dir(name))
        peft_name = name.replace(".", "_")
        with self._lock:
            from peft import PeftModel

            if self.loaded_adapters == {}:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=peft_name)
            elif name not in self.loaded_adapters:
                self.model.load_adapter(path, adapter_name=peft_name)
            self.loaded_adapters[name] = peft_name
            self.model.set_adapter(peft_name)
            self.model.eval()
            self.adapter = name
            self.target.checkpoint = name
        return name

    # -- generation ------------------------------------------------------------------------------
    def encode(self, messages: list[dict[str, str]]):
        try:
            enc = chat_prompt(self.tok, messages, getattr(self, "chat_format", None), return_dict=True, return_tensors="pt")
        except Exception as e:  # a template that refuses e.g. a system role
            raise UserError(f"the chat template cannot render this conversation: {e}",
                            hint="clear the system prompt, or alternate user/assistant turns") from None
        return {k: v.to(self.model.device) for k, v in enc.items()}

    def generation_kwargs(self, params: SamplingParams) -> dict[str, Any]:
        from transformers import GenerationConfig

        # Every sampling field is set explicitly: generate() fills unset ones from the model's own
        # generation_config (e.g. Qwen's repetition_penalty 1.05), and our controls must be the truth.
        gc = dict(max_new_tokens=params.max_new_tokens, eos_token_id=self.eos_ids,
                  pad_token_id=self.tok.pad_token_id, do_sample=params.temperature > 0,
                  temperature=params.temperature if params.temperature > 0 else 1.0,
                  top_p=params.top_p, top_k=params.top_k, repetition_penalty=params.repetition_penalty,
                  min_new_tokens=params.min_new_tokens or 0)
        return {"generation_config": GenerationConfig(**gc)}

    def generate(self, messages: list[dict[str, str]], params: SamplingParams | None = None, *,
                 use_adapter: bool = True, on_text: Callable[[str, int], None] | None = None,
                 cancel: threading.Event | None = None) -> Reply:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        params = params or SamplingParams()
        cancel = cancel or threading.Event()

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        t0 = time.perf_counter()
        enc = self.encode(messages)
        prompt_len = int(enc["input_ids"].shape[1])
        streamer = TokenStreamer(self.tok, on_text or (lambda text, n: None))
        kwargs = self.generation_kwargs(params)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with self._lock:
            adapter_off = self.model.disable_adapter() if (not use_adapter and self.loaded_adapters) \
                else contextlib.nullcontext()
            with adapter_off, torch.inference_mode():
                out = self.model.generate(**enc, **kwargs, streamer=streamer,
                                          stopping_criteria=StoppingCriteriaList([_Cancel()]))
        seconds = time.perf_counter() - t0
        gen = out[0, prompt_len:].tolist()
        text = self.tok.decode(gen, skip_special_tokens=True)
        if cancel.is_set():
            finish = "cancelled"
        elif gen and gen[-1] in self.eos_ids:
            finish = "eos"
        else:
            finish = "length"
        ttft = (streamer.first_token_at - t0) if streamer.first_token_at else None
        return Reply(text=text, tokens=len(gen), prompt_tokens=prompt_len, seconds=seconds,
                     first_token_seconds=ttft, finish=finish,
                     adapter=self.adapter if (use_adapter and self.loaded_adapters) else None)
