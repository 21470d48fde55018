"""Measuring memory of the real QLoRA path, to check `vram.py` against reality (torch required).

Used by `bench/vram_calibration.py` and the tests, never by the UI. Two instruments:
- exact static bytes of a model loaded in 4-bit by bitsandbytes (packed weights + every
  quantization constant), to compare with `vram.weight_bytes`;
- `LiveBytes`, a dispatch-mode tracker of the tensor storages created during a training step and
  still alive: its peak is the dynamic memory of the step (activations, logits, gradients,
  optimizer temporaries) on any device, CPU included. On a GPU, `torch.cuda.max_memory_reserved`
  is the real thing; on this CPU-only box the tracker is the closest exact measurement.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tui_tuner.models.vram import TrainSettings


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storages created inside this mode that are still alive, and their peak.

    Each storage counts once; outputs that alias an input (views, in-place ops) are not new memory.
    Storages are released through weakref callbacks, so the count follows Python's freeing exactly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[tuple[int, int], Any] = {}

    def _release(self, key: tuple[int, int], n: int) -> None:
        if self._live.pop(key, None) is not None:
            self.current -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor) and t.device.type != "meta"}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            st = t.untyped_storage()
            n = st.nbytes()
            key = (st.data_ptr(), n)
            if n == 0 or key[0] in inputs or key in self._live:
                continue
            self._live[key] = weakref.ref(st, lambda _r, k=key, n=n: self._release(k, n))
            self.current += n
            self.peak = max(self.peak, self.current)
        return out


def build_random_model(config: dict[str, Any], directory: Path, *, seed: int = 0, dtype=torch.bfloat16) -> Path:
    """Save a randomly initialised model of this config.json shape (no download needed)."""
    from transformers import AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cfg = CONFIG_MAPPING[config["model_type"]].from_dict({k: v for k, v in config.items() if k != "model_type"})
    for tok in ("pad_token_id", "bos_token_id", "eos_token_id"):
        v = getattr(cfg, tok, None)
        if isinstance(v, int) and v >= cfg.vocab_size:
            setattr(cfg, tok, 0)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    directory = Path(directory)
    model.save_pretrained(directory)
    return directory


def load_qlora(path: str | Path, s: TrainSettings, *, device: str = "cpu", dtype=torch.bfloat16):
    """Load like the worker does: 4-bit base, compute dtype everywhere else, PEFT LoRA, checkpointing."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from tui_tuner.models.arch import arch_from_config
    from tui_tuner.models.vram import attention_impl

    import json

    arch = arch_from_config(json.loads((Path(path) / "config.json").read_text()))
    kw: dict[str, Any] = dict(dtype=dtype, attn_implementation=attention_impl(arch, s))
    if s.load_in_4bit:
        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=s.double_quant,
            bnb_4bit_compute_dtype=dtype)
    if device != "cpu":
        kw["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kw)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=s.lora_r, lora_alpha=2 * s.lora_r, lora_dropout=s.lora_dropout,
                                             target_modules=s.target_modules, bias="none", task_type="CAUSAL_LM"))
    if s.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model


def _tensor_bytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def static_bytes(model) -> dict[str, int]:
    """Exact bytes of a loaded (4-bit) model: packed weights + quantization constants, the rest."""
    import bitsandbytes as bnb

    q = other = packed = 0
    seen_codes: set[int] = set()
    for _, p in model.named_parameters():
        if isinstance(p, bnb.nn.Params4bit):
            q += _tensor_bytes(p.data)
            packed += _tensor_bytes(p.data)
            st = p.quant_state
            q += _tensor_bytes(st.absmax) + _tensor_bytes(st.code) + _tensor_bytes(getattr(st, "offset", None))
            if getattr(st, "state2", None) is not None:
                q += _tensor_bytes(st.state2.absmax)
                code2 = st.state2.code
                if code2.data_ptr() not in seen_codes:  # the nested code is one shared tensor
                    seen_codes.add(code2.data_ptr())
                    q += _tensor_bytes(code2)
        elif not p.requires_grad:
            other += _tensor_bytes(p)
    return {"weights_4bit": q, "weights_16bit": other, "packed": packed, "footprint": model.get_memory_footprint()}


def batch(vocab: int, b: int, s: int, *, device: str = "cpu", seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, max(4, vocab), (b, s), generator=g).to(device)


def train_step(model, ids: torch.Tensor, *, autocast_dtype=torch.bfloat16) -> float:
    """One forward + backward the way HF Trainer runs it (loss only; outputs dropped before backward)."""
    with torch.autocast(ids.device.type, dtype=autocast_dtype):
        out = model(input_ids=ids, labels=ids)
    loss = out.loss
    del out
    loss.backward()
    return float(loss.detach())


def dynamic_peak_cpu(model, vocab: int, b: int, s: int) -> int:
    """Peak bytes created and alive during one training step on CPU (dispatch-level exact)."""
    import gc

    for p in model.parameters():
        p.grad = None
    gc.collect()
    ids = batch(vocab, b, s)
    with LiveBytes() as t:
        train_step(model, ids)
    for p in model.parameters():
        p.grad = None
    return t.peak
