"""Exact architecture from the model transformers builds on the meta device (no weights, torch).

The analytic `arch.arch_from_config` is exact for the families it knows (proven by the tests);
for any other family the CLI asks transformers instead: build the model on the meta device
(~0.05 s, no memory), read one decoder layer's Linear modules and count every parameter.
"""

from __future__ import annotations

from typing import Any

from tui_tuner.errors import UserError
from tui_tuner.models.arch import Arch, Linear, arch_from_config


def meta_model(config: dict[str, Any], *, trust_remote_code: bool = False):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    mt = config.get("model_type")
    try:
        if mt in CONFIG_MAPPING:
            cfg = CONFIG_MAPPING[mt].from_dict({k: v for k, v in config.items() if k != "model_type"})
        else:
            cfg = AutoConfig.for_model(mt, **config)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(cfg, trust_remote_code=trust_remote_code)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"transformers cannot build a causal LM of type {mt!r}: {str(e).splitlines()[0]}",
                        hint="is it a decoder-only text model? (multimodal and custom-code models are not supported)")


def _decoder_layers(model):
    import torch

    for _, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0 and any(
                isinstance(m, torch.nn.Linear) for m in mod[0].modules()):
            return mod
    raise UserError("could not find the decoder layers of this model")


def arch_from_meta(config: dict[str, Any], **kw) -> Arch:
    """An `Arch` whose counts and Linear list come from the real module tree."""
    import torch

    model = meta_model(config, **kw)
    layers = _decoder_layers(model)
    first = layers[0]
    linears, quantizable = [], True
    for name, m in first.named_modules():
        if isinstance(m, torch.nn.Linear):
            linears.append(Linear(name.rsplit(".", 1)[-1], m.in_features, m.out_features, m.bias is not None))
            quantizable &= type(m) is torch.nn.Linear
    layer_linear = sum(lin.params for lin in linears)
    layer_total = sum(p.numel() for p in first.parameters())
    base = arch_from_config(config)
    total = model.num_parameters()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is model.get_input_embeddings().weight
    head_params = 0 if head is None or tied else head.weight.numel()
    head_bias = head is not None and getattr(head, "bias", None) is not None
    if head_bias:
        head_params += head.bias.numel()
    arch = Arch(
        model_type=base.model_type, hidden_size=base.hidden_size, intermediate_size=base.intermediate_size,
        num_layers=len(layers), num_heads=base.num_heads, num_kv_heads=base.num_kv_heads, head_dim=base.head_dim,
        vocab_size=base.vocab_size, max_position_embeddings=base.max_position_embeddings, tie_word_embeddings=tied,
        layer_linears=linears, layer_norm_params=layer_total - layer_linear, lm_head_bias=head_bias,
        mlp_kind=base.mlp_kind, norm_kind=base.norm_kind, norms_per_layer=base.norms_per_layer,
        hidden_act=base.hidden_act, exact=True, quantizable=quantizable, supports_sdpa=base.supports_sdpa,
        fused_qkv=base.fused_qkv, attn_softcapping=base.attn_softcapping,
        notes=[n for n in base.notes if "approximate" not in n] + ["shape read from the model built on the meta device"],
    )
    # whatever is left (final norm, extra projections) is counted as global 16-bit parameters
    arch.final_norm_params = total - (arch.param_count - arch.final_norm_params)
    return arch
