"""Which attention implementation a model can really load with.

transformers refuses `attn_implementation="sdpa"` for architectures whose attention SDPA cannot
express (Gemma 2's logit softcapping); the default config asks for sdpa, so a user choosing Gemma 2
would otherwise get a crash at load time. Imports transformers lazily: call from a worker only.
"""

from __future__ import annotations


def usable_attn_implementation(model_path: str, requested: str, **config_kwargs) -> tuple[str, str | None]:
    """(implementation to load with, a note for the user when it differs from the request)."""
    if requested != "sdpa":
        return requested, None
    try:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        config = AutoConfig.from_pretrained(model_path, **config_kwargs)
        model_cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    except Exception:  # remote code or an unknown architecture: let from_pretrained decide and explain
        return requested, None
    if getattr(model_cls, "_supports_sdpa", True):
        return requested, None
    return "eager", (f"{config.model_type} has no SDPA attention in transformers; loading with eager attention "
                     "(stores batch x heads x seq² scores; flash_attention_2 avoids that on a GPU)")
