"""Architecture numbers from a config.json dict, in pure Python (no torch, no transformers).

The wizard shows parameter counts and VRAM estimates while the user types, in the UI process,
where importing torch/transformers would cost ~3 s. So the structure of each supported decoder
family is written out here as the list of `nn.Linear` modules in one decoder layer plus its norms;
everything else (parameter count, 4-bit storage, LoRA sizes, activation sizes) derives from it.
`tests/models/test_models_arch.py` proves the analytic count equals the count of the model transformers
builds on the meta device, for every family below, at tiny sizes and at the model cards' real sizes.

Families not listed fall back to a Llama-shaped approximation (`Arch.exact` is then False).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tui_tuner.errors import UserError


@dataclass(frozen=True)
class Linear:
    """One nn.Linear inside a decoder layer: quantized to 4-bit, a LoRA target under all-linear."""

    name: str
    d_in: int
    d_out: int
    bias: bool = False

    @property
    def params(self) -> int:
        return self.d_in * self.d_out + (self.d_out if self.bias else 0)


# Config-class defaults that matter for the shape, per model_type (transformers 5.x config classes;
# checked against the installed classes in tests). A config.json usually sets these explicitly.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {"tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False},
    "mistral": {"tie_word_embeddings": False, "num_key_value_heads": 8},
    "qwen2": {"tie_word_embeddings": False, "num_key_value_heads": 32},
    "qwen3": {"tie_word_embeddings": False, "attention_bias": False, "head_dim": 128, "num_key_value_heads": 32},
    "gemma": {"tie_word_embeddings": True, "attention_bias": False, "head_dim": 256},
    "gemma2": {"tie_word_embeddings": True, "attention_bias": False, "head_dim": 256},
    "gemma3_text": {"tie_word_embeddings": True, "attention_bias": False, "head_dim": 256},
    "phi": {"tie_word_embeddings": False, "qk_layernorm": False, "hidden_act": "gelu_new"},
    "phi3": {"tie_word_embeddings": False},
    "falcon": {"tie_word_embeddings": True, "bias": False, "multi_query": True, "parallel_attn": True,
               "new_decoder_architecture": False, "alibi": False},
    "granite": {"tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False},
    "olmo2": {"tie_word_embeddings": False, "attention_bias": False},
}
LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "granite", "olmo2"}
SUPPORTED = set(_DEFAULTS)

# Old or alternative key names some config.json files use.
_ALIASES = {
    "num_hidden_layers": ("n_layer", "num_layers", "n_layers"),
    "num_attention_heads": ("n_head", "num_heads"),
    "hidden_size": ("n_embd", "d_model"),
    "num_key_value_heads": ("num_kv_heads", "n_head_kv", "multi_query_group_num"),
    "max_position_embeddings": ("n_positions", "seq_length", "max_seq_len"),
    "intermediate_size": ("ffn_hidden_size", "n_inner"),
}


@dataclass
class Arch:
    """The shape of a decoder-only causal LM, enough to count and size everything."""

    model_type: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int | None
    tie_word_embeddings: bool
    layer_linears: list[Linear] = field(default_factory=list)
    layer_norm_params: int = 0  # per decoder layer, everything that is not a Linear (norm weights/biases)
    final_norm_params: int = 0
    lm_head_bias: bool = False
    mlp_kind: str = "gated"  # "gated" (SwiGLU/GeGLU: gate, up, down) or "dense" (fc1, fc2)
    norm_kind: str = "rms"  # "rms" or "layer"
    norms_per_layer: int = 2  # how many hidden-size norms run per layer (activation memory)
    hidden_act: str | None = None
    exact: bool = True  # False: unknown family, Llama-shaped approximation
    # bitsandbytes 4-bit replaces only modules whose type *is* nn.Linear (transformers 5.x
    # integrations/bitsandbytes.py); Falcon's FalconLinear subclass stays in 16-bit.
    quantizable: bool = True
    # Gemma 2's attention softcapping has no SDPA path in transformers 5.x: eager or flash only.
    supports_sdpa: bool = True
    fused_qkv: bool = False  # one qkv Linear whose output storage stays alive through the v view (Phi-3)
    attn_softcapping: bool = False
    final_logit_softcapping: bool = False  # Gemma 2: tanh cap on the logits (one more [tokens x vocab] tensor)
    notes: list[str] = field(default_factory=list)

    # -- counts ----------------------------------------------------------------------------------
    @property
    def embed_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """Parameters of lm_head that are not shared with the input embedding."""
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        return head + (self.vocab_size if self.lm_head_bias else 0)

    @property
    def layer_linear_weight_params(self) -> int:
        return sum(m.d_in * m.d_out for m in self.layer_linears)

    @property
    def layer_params(self) -> int:
        return sum(m.params for m in self.layer_linears) + self.layer_norm_params

    @property
    def quantized_params(self) -> int:
        """Weights that bitsandbytes stores in 4-bit: every Linear in the decoder layers (not lm_head)."""
        return self.num_layers * self.layer_linear_weight_params

    @property
    def unquantized_params(self) -> int:
        """Embedding, lm_head (kept 16-bit), norms and Linear biases."""
        return self.param_count - self.quantized_params

    @property
    def param_count(self) -> int:
        """Exact number of parameters (a tied lm_head counted once, as `model.num_parameters()` does)."""
        return (self.embed_params + self.num_layers * self.layer_params + self.final_norm_params
                + self.lm_head_params)

    @property
    def max_linear_weight(self) -> int:
        return max((m.d_in * m.d_out for m in self.layer_linears), default=0)

    def linear_names(self) -> list[str]:
        """The LoRA target names that `all-linear` resolves to (every Linear except lm_head)."""
        seen: list[str] = []
        for m in self.layer_linears:
            if m.name not in seen:
                seen.append(m.name)
        return seen

    def lora_modules(self, target_modules: str | list[str]) -> list[Linear]:
        """The per-layer Linears a LoRA config adapts. Raises UserError for names the model lacks."""
        if target_modules == "all-linear":
            return list(self.layer_linears)
        wanted = [target_modules] if isinstance(target_modules, str) else list(target_modules)
        names = self.linear_names()
        missing = [t for t in wanted if t not in names]
        if missing and self.exact:
            raise UserError(f"lora.target_modules: {', '.join(missing)} not in this {self.model_type} model",
                            hint=f"its linear layers are: {', '.join(names)} (or use all-linear)")
        return [m for m in self.layer_linears if m.name in wanted]

    def lora_params(self, r: int, target_modules: str | list[str] = "all-linear") -> int:
        return self.num_layers * sum(r * (m.d_in + m.d_out) for m in self.lora_modules(target_modules))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "params": self.param_count,
            "layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "heads": self.num_heads,
            "kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "context_length": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "lora_targets": self.linear_names(),
            "exact": self.exact,
        }


def _get(cfg: dict[str, Any], key: str, default: Any = None) -> Any:
    if cfg.get(key) is not None:
        return cfg[key]
    for alt in _ALIASES.get(key, ()):
        if cfg.get(alt) is not None:
            return cfg[alt]
    return default


def _need_int(cfg: dict[str, Any], key: str, source: str) -> int:
    v = _get(cfg, key)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise UserError(f"{source}: config.json has no usable '{key}' ({v!r})",
                        hint="is this a decoder-only causal language model?")
    return v


def text_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The language-model part of a config (multimodal configs nest it under text_config)."""
    if "hidden_size" not in cfg and isinstance(cfg.get("text_config"), dict):
        inner = dict(cfg["text_config"])
        inner.setdefault("model_type", cfg.get("model_type", ""))
        return inner, [f"{cfg.get('model_type')} is multimodal: only its language model is counted"]
    return cfg, []


def arch_from_config(config: dict[str, Any], source: str = "config.json") -> Arch:
    """Build an `Arch` from a config.json dict. Raises UserError when the shape cannot be read."""
    cfg, notes = text_config(config)
    mt = str(cfg.get("model_type") or "").lower()
    defaults = _DEFAULTS.get(mt, _DEFAULTS["llama"])
    # Gemma2Config defaults both caps (attention 50.0, final logits 30.0): a config.json that does
    # not name them has them; only an explicit null turns them off.
    softcap = {k: cfg.get(k, d) is not None for k, d in (("attn_logit_softcapping", 50.0),
                                                         ("final_logit_softcapping", 30.0))}
    cfg = {**defaults, **{k: v for k, v in cfg.items() if v is not None}}

    h = _need_int(cfg, "hidden_size", source)
    L = _need_int(cfg, "num_hidden_layers", source)
    a = _need_int(cfg, "num_attention_heads", source)
    V = _need_int(cfg, "vocab_size", source)
    if h % a and _get(cfg, "head_dim") is None:
        raise UserError(f"{source}: hidden_size {h} is not divisible by num_attention_heads {a}")
    kv = _get(cfg, "num_key_value_heads") or a
    hd = _get(cfg, "head_dim") or h // a
    I = _get(cfg, "intermediate_size") or 4 * h
    tie = bool(cfg.get("tie_word_embeddings", False))
    maxpos = _get(cfg, "max_position_embeddings")
    common = dict(model_type=mt or "unknown", hidden_size=h, intermediate_size=I, num_layers=L, num_heads=a,
                  num_kv_heads=kv, head_dim=hd, vocab_size=V, max_position_embeddings=maxpos,
                  tie_word_embeddings=tie, notes=notes,
                  hidden_act=cfg.get("hidden_activation") or cfg.get("hidden_act") or cfg.get("activation"))

    if mt == "phi":
        qk_ln = 2 * 2 * hd if cfg.get("qk_layernorm") else 0
        return Arch(**common, mlp_kind="dense", norm_kind="layer", norms_per_layer=1, lm_head_bias=True,
                    layer_linears=[Linear("q_proj", h, a * hd, True), Linear("k_proj", h, kv * hd, True),
                                   Linear("v_proj", h, kv * hd, True), Linear("dense", a * hd, h, True),
                                   Linear("fc1", h, I, True), Linear("fc2", I, h, True)],
                    layer_norm_params=2 * h + qk_ln, final_norm_params=2 * h)
    if mt == "phi3":
        return Arch(**common, fused_qkv=True, layer_linears=[Linear("qkv_proj", h, a * hd + 2 * kv * hd),
                                             Linear("o_proj", a * hd, h),
                                             Linear("gate_up_proj", h, 2 * I), Linear("down_proj", I, h)],
                    layer_norm_params=2 * h, final_norm_params=h)
    if mt == "falcon":
        # FalconConfig: head_dim = hidden/heads; ffn = ffn_hidden_size or 4h; kv heads depend on the variant.
        hd = h // a
        I = cfg.get("ffn_hidden_size") or 4 * h
        new_arch = bool(cfg.get("new_decoder_architecture"))
        if new_arch:
            kv = cfg.get("num_kv_heads") or cfg.get("n_head_kv") or a
            qkv_out = (2 * kv + a) * hd
        elif cfg.get("multi_query", True):
            kv, qkv_out = 1, h + 2 * hd
        else:
            kv, qkv_out = a, 3 * h
        bias = bool(cfg.get("bias"))
        if not cfg.get("parallel_attn", True):
            n_ln = 2
        elif new_arch:
            n_ln = cfg.get("num_ln_in_parallel_attn") or 2
        else:
            n_ln = cfg.get("num_ln_in_parallel_attn") or 1
        common.update(head_dim=hd, intermediate_size=I, num_kv_heads=kv)
        common["notes"] = notes + ["transformers' 4-bit loading skips FalconLinear (a subclass of nn.Linear): "
                                   "Falcon's weights stay 16-bit, so 'QLoRA' costs 2 bytes per parameter"]
        return Arch(**common, mlp_kind="dense", norm_kind="layer", norms_per_layer=n_ln, quantizable=False,
                    layer_linears=[Linear("query_key_value", h, qkv_out, bias), Linear("dense", h, h, bias),
                                   Linear("dense_h_to_4h", h, I, bias), Linear("dense_4h_to_h", I, h, bias)],
                    layer_norm_params=n_ln * 2 * h, final_norm_params=2 * h)

    # Llama-shaped: q/k/v/o + gate/up/down, RMSNorms.
    exact = mt in LLAMA_LIKE
    if not exact:
        common["notes"] = notes + [f"model_type '{mt or '?'}' is not one tui-tuner knows exactly: "
                                   "counted as a Llama-shaped model (approximate)"]
    qkv_bias = bool(cfg.get("attention_bias")) or mt == "qwen2"
    o_bias = bool(cfg.get("attention_bias")) and mt != "qwen2"
    mlp_bias = bool(cfg.get("mlp_bias"))
    norms = 2
    extra = 0
    if mt in ("gemma2", "gemma3_text"):
        norms = 4
    if mt in ("qwen3", "gemma3_text"):
        extra = 2 * hd  # q_norm, k_norm over head_dim
    if mt == "olmo2":
        extra = a * hd + kv * hd  # q_norm over all heads, k_norm over kv heads
    if mt == "gemma2":
        common["notes"] = notes + ["Gemma 2 has no SDPA attention in transformers 5.x (logit softcapping): "
                                   "use model.attn_implementation eager (stores batch x heads x seq² scores) "
                                   "or flash_attention_2"]
    return Arch(**common, exact=exact, norms_per_layer=norms, supports_sdpa=mt != "gemma2",
                attn_softcapping=mt == "gemma2" and softcap["attn_logit_softcapping"],
                final_logit_softcapping=mt == "gemma2" and softcap["final_logit_softcapping"],
                layer_linears=[Linear("q_proj", h, a * hd, qkv_bias), Linear("k_proj", h, kv * hd, qkv_bias),
                               Linear("v_proj", h, kv * hd, qkv_bias), Linear("o_proj", a * hd, h, o_bias),
                               Linear("gate_proj", h, I, mlp_bias), Linear("up_proj", h, I, mlp_bias),
                               Linear("down_proj", I, h, mlp_bias)],
                layer_norm_params=norms * h + extra, final_norm_params=h)
