"""What `from_pretrained` + `get_peft_model` would refuse, found without loading any weight.

`--dry-run` (and the worker, just before it loads) builds the model on the meta device from its
config — no memory, a second even for large models — and checks there:

- every name in `lora.target_modules` matches a module PEFT can adapt (PEFT's own matching rule,
  `check_target_module_exists`; a name that matches nothing is dropped by PEFT when another one
  matches, so a typo would silently train less);
- the attention implementation exists for this architecture (transformers' own init-time check);
  where this machine cannot run flash_attention_2 the note says the worker will use sdpa instead.

Imports torch/transformers/peft: call from the CLI or the worker, never from the UI.
"""

from __future__ import annotations

from typing import Any

# Module types PEFT's LoRA can wrap (peft.tuners.lora.model dispatchers).
_LORA_TYPES = ("Linear", "Embedding", "Conv1d", "Conv2d", "Conv3d", "Conv1D", "MultiheadAttention",
               "Linear4bit", "Linear8bitLt")


def _meta_model(config):
    import warnings

    import torch
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return AutoModelForCausalLM.from_config(config, attn_implementation="eager")


def _transformers_config(model_config: dict[str, Any] | None, model_path: str | None):
    from transformers import AutoConfig

    if model_path:
        return AutoConfig.from_pretrained(model_path)  # no remote code: such models are checked at load
    cfg = dict(model_config or {})
    model_type = cfg.pop("model_type", None)
    return AutoConfig.for_model(model_type, **cfg)


def attention_problems(requested: str, model_cls=None) -> list[str]:
    """What the architecture itself refuses. What this machine cannot run (no GPU, no flash-attn,
    capability < 8.0, fp32) is not a problem: the worker falls back to sdpa and says why
    (tui_tuner.devices.usable_attention, the one home of that rule; the dry run shows its note)."""
    if requested == "flash_attention_2" and model_cls is not None and not getattr(model_cls, "_supports_flash_attn", True):
        return [f"model.attn_implementation: {model_cls.__name__} has no flash_attention_2 in transformers (use sdpa)"]
    return []


def attention_note(requested: str, compute_dtype: str, cuda: bool) -> str | None:
    """The worker's fallback note for this machine, or None when the request runs as asked."""
    if requested != "flash_attention_2":
        return None
    import torch

    from tui_tuner.devices import compute_dtype as resolve_dtype, usable_attention

    return usable_attention(requested, torch, cuda, resolve_dtype(compute_dtype, torch, cuda))[1]


def target_module_problems(model, target_modules, model_label: str) -> list[str]:
    """One line per name in target_modules that PEFT would not adapt."""
    if not isinstance(target_modules, list):
        return []  # "all-linear" adapts every linear layer but the output head
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    modules = [(name, m) for name, m in model.named_modules() if name]
    adaptable = sorted({name.rsplit(".", 1)[-1] for name, m in modules
                        if type(m).__name__ in _LORA_TYPES and not list(m.children())})
    problems = []
    for target in target_modules:
        probe = LoraConfig(target_modules=[target])
        hits = [m for name, m in modules if check_target_module_exists(probe, name)]
        if not hits:
            problems.append(f"lora.target_modules: '{target}' matches no module of {model_label} "
                            f"(its layers LoRA can adapt: {', '.join(adaptable[:12])})")
        elif not any(type(m).__name__ in _LORA_TYPES for m in hits):
            kinds = sorted({type(m).__name__ for m in hits})
            problems.append(f"lora.target_modules: '{target}' names {', '.join(kinds)} layers, which LoRA cannot "
                            f"adapt (adaptable: {', '.join(adaptable[:12])})")
    return problems


def load_time_problems(cfg, *, model_config: dict[str, Any] | None = None, model_path: str | None = None,
                       cuda: bool | None = None) -> tuple[list[str], list[str]]:
    """(problems that would stop the run at load time, notes). Needs the model's config only."""
    import logging

    import torch

    # bitsandbytes (imported by peft) logs a missing optional CPU kernel package at import: noise here.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

    if cuda is None:
        cuda = torch.cuda.is_available()
    notes: list[str] = []
    try:
        tconfig = _transformers_config(model_config, model_path)
    except Exception as e:  # remote code, an unknown architecture: the load itself will say
        notes.append(f"model checks skipped: its config cannot be read here ({type(e).__name__}); "
                     "target modules and attention are checked when the model loads")
        return [], notes
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    model_cls = MODEL_FOR_CAUSAL_LM_MAPPING.get(type(tconfig), None)
    problems = attention_problems(cfg.model.attn_implementation, model_cls)
    note = attention_note(cfg.model.attn_implementation, cfg.quantization.compute_dtype, cuda)
    if note:
        notes.append(note)
    if cfg.model.attn_implementation == "sdpa" and model_cls is not None and not getattr(model_cls, "_supports_sdpa", True):
        notes.append(f"{tconfig.model_type} has no SDPA attention in transformers: it will load with eager attention")
    if isinstance(cfg.lora.target_modules, list):
        try:
            model = _meta_model(tconfig)
        except Exception as e:  # noqa: BLE001 - an architecture that cannot be built on meta
            notes.append(f"lora.target_modules not checked: the model could not be built on the meta device "
                         f"({type(e).__name__})")
        else:
            problems += target_module_problems(model, cfg.lora.target_modules, cfg.model.name_or_path)
    return problems, notes
