"""Peak-VRAM estimate for QLoRA training (and for chat), term by term. Pure Python: no torch.

The wizard calls this as the user types, and the worker records it in the run's start event.
It models the recipe the worker actually runs (tui_tuner/worker/train.py): base Linears in
bitsandbytes 4-bit, everything else kept in the compute dtype (no prepare_model_for_kbit_training),
PEFT LoRA adapters in fp32, the HF Trainer with bf16 autocast, activation checkpointing per decoder
layer, padded batches (the longest row sets the length), transformers' default cross-entropy.

Shape of the model: with SDPA/flash attention,
memory is affine in tokens N = batch x seq:  total = static + N * per_token  (+ margin), so the
largest batch / max_length that fit follow directly. Each term carries its provenance:
- exact: 4-bit storage, 16-bit modules, LoRA sizes — checked against bitsandbytes/PEFT on CPU;
- measured on CPU: per-token activation and logits bytes of the real 4-bit+LoRA path;
- assumed: CUDA context and allocator overhead, until `bench/vram_calibration.py` runs on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tui_tuner.models.arch import Arch
from tui_tuner.models.loss_plan import AUTO_CHUNKED_MIN_LOGITS, chunk_tokens

if TYPE_CHECKING:  # pragma: no cover
    from tui_tuner.config import RunConfig

GIB = 2**30
MIB = 2**20

# --- constants and where they come from --------------------------------------------------------
BNB_BLOCKSIZE = 64  # bitsandbytes quantize_4bit default blocksize
BNB_NESTED_BLOCKSIZE = 256  # double quant: absmax re-quantized blockwise in blocks of 256
BNB_OPT_MIN_8BIT = 4096  # bnb Optimizer2State(min_8bit_size): smaller tensors keep 32-bit state
BNB_OPT_BLOCK = 256  # 8-bit optimizer state is quantized blockwise; one fp32 absmax per block per state
# CUDA context with lazy module loading + cuBLAS workspace: 0.3-1.0 GiB, as PyTorch users report it.
CUDA_CONTEXT_BYTES = int(0.5 * GIB)
# PyTorch's caching allocator, reserved minus allocated at peak: a few % to ~10 %; applied to the dynamic part.
ALLOCATOR_OVERHEAD = 0.08
ALLOCATOR_MIN_BYTES = 64 * MIB
# Bytes per [token x vocab] element of transformers' default causal-LM loss at its worst moment,
# early in backward: the saved fp32 log-softmax output, nll_loss's fp32 gradient and
# log_softmax's fp32 grad_input are alive together (12 B). Measured op by op on the real path:
# the step's peak grew by 12.0 B per added logit between vocab 8,000 and 32,000. A no-grad eval
# forward peaks at bf16 logits + fp32 upcast + log-softmax output (10 B).
LOGITS_TRAIN_BYTES = 12
LOGITS_EVAL_BYTES = 10

# cuBLAS workspace: torch allocates one per (cuBLAS handle, stream) through its caching allocator,
# so it is part of the reserved peak. Default size (ATen CublasHandlePool.cpp, no
# CUBLAS_WORKSPACE_CONFIG): 32 MiB on compute capability 9.x/10.x/12.x (Hopper, Blackwell),
# ":4096:2:16:8" = 2 x 4 MiB + 8 x 16 KiB otherwise. Handles are per thread: the forward runs on
# the main thread and autograd's backward on its device thread, so two workspaces are alive.
CUBLAS_WORKSPACE_BYTES_HOPPER = 32 * MIB
CUBLAS_WORKSPACE_BYTES = 4096 * 1024 * 2 + 16 * 1024 * 8
CUBLAS_HANDLES = 2

OPTIM_STATE = {  # bytes of optimizer state per trainable fp32 parameter (32-bit variants)
    "paged_adamw_8bit": 2, "adamw_8bit": 2, "paged_adamw_32bit": 8, "adamw_torch": 8,
    "adamw_torch_fused": 8, "sgd": 0,
}


@dataclass
class TrainSettings:
    """The knobs of a QLoRA run that move memory. Built from a RunConfig or from CLI flags."""

    batch_size: int = 4
    seq_len: int = 1024
    lora_r: int = 16
    target_modules: str | list[str] = "all-linear"
    lora_dropout: float = 0.05
    gradient_checkpointing: bool = True
    optim: str = "paged_adamw_8bit"
    load_in_4bit: bool = True
    double_quant: bool = True
    compute_dtype: str = "auto"  # auto/bf16/fp16 → 2-byte compute on a GPU; fp32 → 4
    attn_implementation: str = "sdpa"
    eval_batch_size: int | None = None  # None = same as batch_size (what the worker does)
    evaluate: bool = True
    device: str = "cuda"  # where training runs: "cuda" (the estimate's purpose) or "cpu"
    loss_impl: str = "auto"  # train.loss_impl: auto / standard / chunked / liger (tui_tuner/worker/loss.py)
    liger_installed: bool = False  # whether auto can pick liger on a GPU (liger-kernel importable)
    # Rows padded to a common length with an attention mask (the worker's collator; on CUDA it pads
    # to a multiple of 8, so even batch 1 usually carries padding). False: no padding mask at all.
    padded: bool = True
    compute_capability: tuple[int, int] | None = None  # of the GPU, when known (cuBLAS workspace size)
    chat_during_training: bool = False  # keep room for a chat process on the same GPU

    @property
    def compute_bytes(self) -> int:
        return 4 if self.compute_dtype == "fp32" else 2

    @property
    def padded_seq(self) -> int:
        return int(math.ceil(self.seq_len / 8) * 8)  # the worker pads to a multiple of 8 on CUDA

    @classmethod
    def from_config(cls, cfg: "RunConfig") -> "TrainSettings":
        return cls(batch_size=cfg.train.batch_size, seq_len=cfg.data.max_length, lora_r=cfg.lora.r,
                   target_modules=cfg.lora.target_modules, lora_dropout=cfg.lora.dropout,
                   gradient_checkpointing=cfg.train.gradient_checkpointing, optim=cfg.train.optim,
                   load_in_4bit=cfg.quantization.load_in_4bit, double_quant=cfg.quantization.double_quant,
                   compute_dtype=cfg.quantization.compute_dtype,
                   attn_implementation=cfg.model.attn_implementation,
                   evaluate=cfg.data.val_ratio > 0, loss_impl=cfg.train.loss_impl,
                   liger_installed=_liger_installed())


@dataclass
class Estimate:
    """A peak-VRAM estimate. `breakdown` is name → GiB and sums to `total_gib`."""

    model: str
    total_gib: float
    breakdown: dict[str, float]
    fits: bool | None
    vram_gib: float | None
    margin_gib: float | None
    phase: str  # which pass sets the peak: "train" or "eval"
    params: int
    trainable_params: int
    static_gib: float  # what does not depend on batch x seq
    per_token_mib: float  # slope: MiB per token of batch x seq (train pass)
    eval_gib: float
    chat_gib: float  # weights + KV cache for one chat at the model's training length
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    exact_arch: bool = True
    loss_impl: str = "standard"  # the loss implementation the estimate assumes (auto resolved)
    loss_saving_gib: float = 0.0  # peak saved against transformers' standard loss at the same settings

    @property
    def headroom_gib(self) -> float | None:
        if self.vram_gib is None or self.margin_gib is None:
            return None
        return self.vram_gib - self.margin_gib - self.total_gib

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["headroom_gib"] = None if self.headroom_gib is None else round(self.headroom_gib, 3)
        return d


# --- exact static terms -----------------------------------------------------------------------
def quantized_tensor_bytes(n: int, double_quant: bool = True, blocksize: int = BNB_BLOCKSIZE) -> int:
    """Bytes bitsandbytes keeps for one 4-bit weight of n elements (bnb.functional.quantize_4bit).

    packed uint8 (2 values/byte) + the 16-entry fp32 code + absmax: fp32 per block, or with
    double quant uint8 per block + fp32 per 256 blocks + one fp32 offset. (The 256-entry fp32
    code of the nested quantization is shared by all tensors and counted once per model.)
    """
    blocks = -(-n // blocksize)
    packed = -(-n // 2)
    code = 16 * 4
    if double_quant:
        # uint8 absmax + fp32 absmax of the nested blocks + fp32 offset + the nested 256-entry fp32
        # code, which bitsandbytes keeps per tensor after loading (measured: not shared)
        return packed + code + blocks + 4 * -(-blocks // BNB_NESTED_BLOCKSIZE) + 4 + 256 * 4
    return packed + code + 4 * blocks


def weight_bytes(arch: Arch, s: TrainSettings) -> dict[str, int]:
    """Base-model weights: the 4-bit Linears and the modules kept in 16-bit."""
    cb = s.compute_bytes
    if not s.load_in_4bit or not arch.quantizable:
        return {"weights_4bit": 0, "weights_16bit": arch.param_count * cb}
    q = arch.num_layers * sum(quantized_tensor_bytes(m.d_in * m.d_out, s.double_quant) for m in arch.layer_linears)
    return {"weights_4bit": q, "weights_16bit": arch.unquantized_params * cb}


def lora_tensor_sizes(arch: Arch, s: TrainSettings) -> list[int]:
    sizes = []
    for m in arch.lora_modules(s.target_modules):
        sizes += [s.lora_r * m.d_in, s.lora_r * m.d_out]
    return sizes * arch.num_layers


def optimizer_state_bytes(sizes: list[int], optim: str) -> int:
    """Optimizer state for the trainable tensors. bnb 8-bit Adam keeps two uint8 states plus one
    fp32 absmax per 256 values each, except for tensors under 4096 values (32-bit state)."""
    if optim not in OPTIM_STATE:
        return 8 * sum(sizes)
    if OPTIM_STATE[optim] == 2:
        total = 0
        for n in sizes:
            if n < BNB_OPT_MIN_8BIT:
                total += 8 * n
            else:
                total += 2 * n + 2 * 4 * -(-n // BNB_OPT_BLOCK)
        return total
    return OPTIM_STATE[optim] * sum(sizes)


def lora_bytes(arch: Arch, s: TrainSettings) -> dict[str, int]:
    sizes = lora_tensor_sizes(arch, s)
    n = sum(sizes)
    # PEFT keeps adapter weights in fp32 (autocast_adapter_dtype) → fp32 weights and fp32 grads;
    # autocast keeps a compute-dtype copy of each adapter weight while the forward runs.
    copies = s.compute_bytes * n if s.compute_bytes < 4 else 0
    return {"lora_weights": 4 * n + copies, "lora_grads": 4 * n, "optimizer": optimizer_state_bytes(sizes, s.optim)}


# --- per-token terms --------------------------------------------------------------------------
# Bytes per element of what LoRA dropout saves for backward: a bool mask from CUDA's fused
# native_dropout; CPU's composite dropout keeps a noise tensor in the input's dtype (fp32 here,
# since PEFT casts the input to the fp32 adapter dtype first). Measured on CPU (measure.LiveBytes).
DROPOUT_MASK_BYTES = {"cuda": 1, "cpu": 4}
# Activations an MLP's nonlinearity keeps, in units of [tokens x intermediate] compute-dtype
# tensors: fused SiLU/GELU keep their input; HF's "gelu_new" is written out in Python (tanh
# formula) and keeps several intermediates.
_ACT_SAVED = {"gelu_new": 4.0}


def layer_activation_bytes_per_token(arch: Arch, s: TrainSettings) -> float:
    """Bytes one decoder layer keeps for backward per token (no checkpointing), SDPA/flash.

    Itemised from what autograd actually saves on the worker's path (checked op by op with
    `measure.LiveBytes` on CPU): RMSNorm's fp32 upcast; rotated q and k, v, the attention output
    and its log-sum-exp; for a gated MLP the gate and up outputs and act(gate) (the product feeds a
    4-bit Linear, which keeps nothing); for every adapted Linear, the compute-dtype copy of its input
    that lora_A's autocast matmul keeps, lora_A's r-wide output, and the dropout mask when
    lora_dropout > 0. bitsandbytes' 4-bit matmul keeps only the (already resident) weight.
    """
    cb = s.compute_bytes
    h, I = arch.hidden_size, arch.intermediate_size
    q_dim = arch.num_heads * arch.head_dim
    kv_dim = arch.num_kv_heads * arch.head_dim
    norm = arch.norms_per_layer * (4 * h + 4)
    attn = cb * (2 * q_dim + 2 * kv_dim) + 4 * arch.num_heads
    if arch.fused_qkv:
        attn += cb * (q_dim + kv_dim)  # the whole fused qkv output stays alive behind v
    if attention_impl(arch, s) == "eager" and arch.num_kv_heads < arch.num_heads:
        attn += cb * 2 * q_dim  # repeat_kv's expanded copies of k and v
    act = _ACT_SAVED.get(arch.hidden_act or "", 1.0)
    if arch.mlp_kind == "gated":
        mlp = cb * (2 + act) * I  # gate out, up out, act(gate)
    else:
        mlp = cb * act * I  # fc1 out (kept by the activation)
    mask = DROPOUT_MASK_BYTES.get(s.device, 1) if s.lora_dropout > 0 else 0
    lora = sum((cb + mask) * m.d_in + cb * s.lora_r for m in arch.lora_modules(s.target_modules))
    return norm + attn + mlp + lora


def attention_impl(arch: Arch, s: TrainSettings) -> str:
    """The attention the run will really use: a model without SDPA support falls back to eager."""
    if s.attn_implementation == "sdpa" and not arch.supports_sdpa:
        return "eager"
    return s.attn_implementation


def sdpa_padding_mask_bytes(arch: Arch, s: TrainSettings, batch: int, seq: int) -> int:
    """A padded batch makes transformers build one boolean [batch, 1, seq, seq] mask for SDPA
    (masking_utils.sdpa_mask; it is skipped only when no position is masked), shared by all layers
    and kept for backward."""
    if attention_impl(arch, s) != "sdpa" or not s.padded:
        return 0
    return batch * seq * seq


def sdpa_attn_bias_bytes_per_layer(arch: Arch, s: TrainSettings, batch: int, seq: int) -> int:
    """torch's scaled_dot_product_attention turns a boolean mask into an additive bias of the query's
    dtype in every call (convert_boolean_attn_mask), and the kernel keeps it for backward: one
    [batch, 1, seq, seq] compute-dtype tensor per layer. Measured on CPU with measure.LiveBytes:
    the peak of a padded step exceeds the unpadded one by exactly (1 + 2 x layers) x b x s x s
    bytes (bool mask + a bf16 bias per layer) without GQA."""
    if attention_impl(arch, s) != "sdpa" or not s.padded:
        return 0
    return s.compute_bytes * batch * seq * seq


def gqa_repeat_bytes_per_token(arch: Arch, s: TrainSettings) -> float:
    """With a mask, SDPA on CUDA loses its grouped-query path (transformers
    integrations/sdpa_attention.use_gqa_in_sdpa needs attention_mask None): k and v are expanded to
    every query head by repeat_kv and those copies are what SDPA saves — per layer, per token,
    (heads - kv_heads) x head_dim x 2 more than the kv-head-sized k and v counted already."""
    if attention_impl(arch, s) != "sdpa" or not s.padded or arch.num_kv_heads >= arch.num_heads:
        return 0.0
    return s.compute_bytes * 2 * (arch.num_heads - arch.num_kv_heads) * arch.head_dim


def logit_softcap_bytes(arch: Arch, s: TrainSettings, tokens: int) -> float:
    """Gemma 2 caps its final logits (logits / cap, tanh, * cap): tanh keeps its compute-dtype output
    for backward, one more [tokens x vocab] tensor on top of the cross-entropy's."""
    if not arch.final_logit_softcapping:
        return 0.0
    return tokens * arch.vocab_size * s.compute_bytes


def cublas_workspace_bytes(s: TrainSettings) -> int:
    if s.device != "cuda":
        return 0
    cc = s.compute_capability
    size = CUBLAS_WORKSPACE_BYTES_HOPPER if cc and cc[0] in (9, 10, 12) else CUBLAS_WORKSPACE_BYTES
    return CUBLAS_HANDLES * size


def eager_attention_bytes(arch: Arch, s: TrainSettings, batch: int, seq: int) -> float:
    """Eager attention keeps [batch, heads, seq, seq] tensors per layer: the fp32 softmax output,
    its compute-dtype copy for the value matmul (+ the tanh output with logit softcapping)."""
    if attention_impl(arch, s) != "eager":
        return 0.0
    per = 4 + s.compute_bytes + (s.compute_bytes if arch.attn_softcapping else 0)
    return batch * arch.num_heads * seq * seq * per


def _liger_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("liger_kernel") is not None
    except (ImportError, ValueError):
        return False


def resolved_loss_impl(arch: Arch, s: TrainSettings) -> str:
    """What train.loss_impl resolves to in the worker (tui_tuner/worker/loss.py, same rule)."""
    if s.loss_impl != "auto":
        return s.loss_impl
    if s.device == "cuda" and s.liger_installed:
        return "liger"
    # the worker decides on batch_size x max_length (before padding to a multiple of 8)
    return "chunked" if arch.vocab_size * s.batch_size * s.seq_len >= AUTO_CHUNKED_MIN_LOGITS else "standard"


def logits_bytes(arch: Arch, s: TrainSettings, N: int, *, train: bool) -> float:
    """Peak bytes of the loss over N tokens, per loss implementation.

    standard: transformers' cross-entropy over all [N x vocab] logits (12 B per logit in backward,
    10 B in a no-grad eval). chunked: one chunk of positions at a time (its compute-dtype logits plus
    the same cross-entropy buffers), plus the trained positions' hidden states gathered for the loss
    and their fp32 gradient. liger: Liger's fused linear cross-entropy keeps one chunk of
    compute-dtype logits (gradient written in place), chunk = next power of two of
    N / ceil(vocab / hidden), plus its gradient for the hidden states and fp32 per-token losses
    (liger_kernel/ops/fused_linear_cross_entropy.py; not yet measured on a GPU).
    """
    V, h, cb = arch.vocab_size, arch.hidden_size, s.compute_bytes
    per = LOGITS_TRAIN_BYTES if train else LOGITS_EVAL_BYTES
    impl = resolved_loss_impl(arch, s)
    if impl == "chunked":
        return min(N, chunk_tokens(V)) * V * (per + cb) + N * h * (cb + (4 if train else 0))
    if impl == "liger":
        inc = -(-V // h)
        chunk = min(N, 1 << max(0, math.ceil(math.log2(max(1, -(-N // inc))))))
        return chunk * V * cb + N * h * cb + 4 * N
    return N * V * per


@dataclass
class _Parts:
    static: dict[str, int]
    train: dict[str, float]
    eval: dict[str, float]


def _parts(arch: Arch, s: TrainSettings, batch: int, seq: int) -> _Parts:
    cb = s.compute_bytes
    N = batch * seq
    static: dict[str, int] = {"cuda_context": CUDA_CONTEXT_BYTES}
    static.update(weight_bytes(arch, s))
    static.update(lora_bytes(arch, s))
    # bnb dequantizes each 4-bit weight to the compute dtype for its matmul (one at a time).
    static["dequant_buffer"] = arch.max_linear_weight * cb if (s.load_in_4bit and arch.quantizable) else 0
    static["cublas_workspace"] = cublas_workspace_bytes(s)
    if s.chat_during_training:
        # a chat process on the same GPU: its own CUDA context, 4-bit weights, adapter, KV cache
        static["chat_process"] = chat_bytes(arch, s)

    per_layer = layer_activation_bytes_per_token(arch, s) * N + eager_attention_bytes(arch, s, batch, seq)
    h = arch.hidden_size
    # eager attention also builds one [batch, 1, seq, seq] causal mask for the whole model
    mask = batch * seq * seq * cb if attention_impl(arch, s) == "eager" else 0
    logits = logits_bytes(arch, s, N, train=True)
    grads = 2 * N * h * cb  # incoming and outgoing hidden-state gradients during backward
    if s.gradient_checkpointing:
        # Each layer's input is kept. The peak is either at the loss (checkpoints + logits buffers)
        # or while one layer is recomputed during its backward — whichever is larger.
        ckpt = arch.num_layers * N * h * cb
        # While a layer is recomputed, transients come on top of what it saves: the widest LoRA
        # input's fp32 cast (and fp32 dropout output) and, in a gated MLP, the act(gate)*up product.
        widest = max((m.d_in for m in arch.lora_modules(s.target_modules)), default=0)
        transient = widest * (4 + cb + (4 if s.lora_dropout > 0 else 0))
        transient += cb * arch.intermediate_size if arch.mlp_kind == "gated" else 0
        recompute = per_layer + grads + N * transient
        # only the recomputed layer holds its attention bias and repeated k/v
        gqa_one = gqa_repeat_bytes_per_token(arch, s) * N
        bias_one = sdpa_attn_bias_bytes_per_layer(arch, s, batch, seq)
        if logits >= recompute + gqa_one + bias_one:
            train = {"activations": ckpt + grads + mask, "logits": logits, "gqa_repeat_kv": 0.0, "sdpa_attn_bias": 0.0}
        else:
            train = {"activations": ckpt + recompute + mask, "logits": 0.0, "gqa_repeat_kv": gqa_one,
                     "sdpa_attn_bias": bias_one}
    else:
        # Everything every layer saved is alive when the loss is computed.
        train = {"activations": arch.num_layers * per_layer + grads + mask, "logits": logits,
                 "gqa_repeat_kv": gqa_repeat_bytes_per_token(arch, s) * N * arch.num_layers,
                 "sdpa_attn_bias": sdpa_attn_bias_bytes_per_layer(arch, s, batch, seq) * arch.num_layers}
    train["padding_mask"] = sdpa_padding_mask_bytes(arch, s, batch, seq)
    # tanh's saved output is alive from the forward through the loss's backward
    train["logit_softcap"] = logit_softcap_bytes(arch, s, N)
    eb = s.eval_batch_size or batch
    eval_N = eb * seq if s.evaluate else 0
    # no_grad forward: nothing is kept per layer; one layer's temporaries, then the logits/loss.
    ev = {"activations": (layer_activation_bytes_per_token(arch, s) * eval_N / 2
                          + eager_attention_bytes(arch, s, eb, seq) / 2) if eval_N else 0.0,
          "logits": logits_bytes(arch, s, eval_N, train=False) if eval_N else 0.0}
    if eval_N:
        ev["padding_mask"] = sdpa_padding_mask_bytes(arch, s, eb, seq)
        ev["gqa_repeat_kv"] = gqa_repeat_bytes_per_token(arch, s) * eval_N  # one layer's transient copies
        ev["sdpa_attn_bias"] = sdpa_attn_bias_bytes_per_layer(arch, s, eb, seq)
        ev["logit_softcap"] = logit_softcap_bytes(arch, s, eval_N)  # one more [tokens x vocab] transient
    return _Parts(static, train, ev)


def _allocator(dynamic: float) -> float:
    return max(ALLOCATOR_MIN_BYTES, ALLOCATOR_OVERHEAD * dynamic)


def safety_margin_gib(vram_gib: float) -> float:
    """Headroom kept free when deciding 'fits': the larger of 0.5 GiB and 5 % of the GPU."""
    return max(0.5, 0.05 * vram_gib)


def chat_bytes(arch: Arch, s: TrainSettings, context: int | None = None) -> int:
    """Memory to chat with base + adapter: weights, adapter, KV cache for one conversation."""
    ctx = context or s.padded_seq
    w = weight_bytes(arch, s)
    kv = 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim * ctx * s.compute_bytes
    # prefill temporaries of one layer (no_grad: nothing is kept across layers)
    prefill = ctx * (4 * arch.hidden_size + 3 * arch.intermediate_size) * s.compute_bytes
    lora = 4 * sum(lora_tensor_sizes(arch, s))
    logits = arch.vocab_size * 4 * 4  # last-token logits, fp32, a few copies
    return CUDA_CONTEXT_BYTES + w["weights_4bit"] + w["weights_16bit"] + lora + kv + int(prefill) + logits


def estimate(arch: Arch, s: TrainSettings, *, vram_gib: float | None = None, model: str = "") -> Estimate:
    """Peak VRAM of a QLoRA training run with settings `s` on the model `arch`."""
    seq = s.padded_seq
    p = _parts(arch, s, s.batch_size, seq)
    static = sum(p.static.values())
    train_dyn = sum(p.train.values())
    eval_dyn = sum(p.eval.values())
    train_total = static + train_dyn + _allocator(train_dyn)
    eval_total = static + eval_dyn + _allocator(eval_dyn)
    phase = "eval" if eval_total > train_total else "train"
    dyn = p.eval if phase == "eval" else p.train
    breakdown_b: dict[str, float] = dict(p.static)
    breakdown_b.update({k: v for k, v in dyn.items()})
    breakdown_b["allocator"] = _allocator(sum(dyn.values()))
    total = sum(breakdown_b.values())
    margin = safety_margin_gib(vram_gib) if vram_gib else None
    fits = None if vram_gib is None else total / GIB <= vram_gib - margin
    N = s.batch_size * seq
    slope = (train_dyn * (1 + ALLOCATOR_OVERHEAD)) / N if N else 0.0
    notes = list(arch.notes)
    impl = resolved_loss_impl(arch, s)
    saving = 0.0
    if impl != "standard":
        saving = estimate(arch, replace(s, loss_impl="standard"), vram_gib=vram_gib).total_gib - total / GIB
    if s.attn_implementation == "eager" and arch.supports_sdpa:
        notes.append("eager attention stores batch x heads x seq² scores: use sdpa to save memory")
    return Estimate(
        model=model, total_gib=total / GIB, breakdown={k: v / GIB for k, v in breakdown_b.items()},
        fits=fits, vram_gib=vram_gib, margin_gib=margin, phase=phase, params=arch.param_count,
        trainable_params=sum(lora_tensor_sizes(arch, s)), static_gib=static / GIB,
        per_token_mib=slope / MIB, eval_gib=eval_total / GIB, chat_gib=chat_bytes(arch, s) / GIB,
        settings=asdict(s), notes=notes, exact_arch=arch.exact, loss_impl=impl, loss_saving_gib=saving)


# --- auto-fit ---------------------------------------------------------------------------------
@dataclass
class FitResult:
    vram_gib: float
    margin_gib: float
    max_batch: int  # at the given seq len (0: not even batch 1 fits)
    max_seq_len: int  # at the given batch (0: not even 64 tokens fit)
    max_seq_len_batch1: int
    knobs: list[dict[str, Any]]  # what helps most when it does not fit, largest saving first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fits(arch: Arch, s: TrainSettings, vram_gib: float) -> bool:
    return bool(estimate(arch, s, vram_gib=vram_gib).fits)


def _largest(ok, lo: int, hi: int, step: int = 1) -> int:
    """Largest multiple of `step` in [lo, hi] with ok(x) True, assuming ok is monotone (0 if none)."""
    if not ok(lo):
        return 0
    lo_i, hi_i = lo // step, hi // step
    while lo_i < hi_i:
        mid = (lo_i + hi_i + 1) // 2
        if ok(mid * step):
            lo_i = mid
        else:
            hi_i = mid - 1
    return lo_i * step


def auto_fit(arch: Arch, s: TrainSettings, vram_gib: float, *, max_batch: int = 1024,
             max_seq: int | None = None) -> FitResult:
    """The largest batch (at s.seq_len) and the largest max_length (at s.batch_size, in steps of
    64) whose own estimate fits in `vram_gib` minus the safety margin, and the knobs that help."""
    cap_seq = max_seq or max(arch.max_position_embeddings or 0, s.seq_len, 2048)
    b = _largest(lambda x: _fits(arch, replace(s, batch_size=x), vram_gib), 1, max_batch)
    seq = _largest(lambda x: _fits(arch, replace(s, seq_len=x), vram_gib), 64, cap_seq, 64)
    seq1 = _largest(lambda x: _fits(arch, replace(s, seq_len=x, batch_size=1), vram_gib), 64, cap_seq, 64)
    return FitResult(vram_gib=vram_gib, margin_gib=safety_margin_gib(vram_gib), max_batch=b, max_seq_len=seq,
                     max_seq_len_batch1=seq1, knobs=rank_knobs(arch, s, vram_gib))


def rank_knobs(arch: Arch, s: TrainSettings, vram_gib: float | None = None) -> list[dict[str, Any]]:
    """Each single change that lowers the peak, with how much it saves, largest first."""
    base = estimate(arch, s, vram_gib=vram_gib).total_gib
    cands: list[tuple[str, TrainSettings]] = []
    if not s.gradient_checkpointing:
        cands.append(("turn gradient checkpointing on", replace(s, gradient_checkpointing=True)))
    if s.batch_size > 1:
        nb = max(1, s.batch_size // 2)
        cands.append((f"batch {s.batch_size} → {nb} (raise grad_accum ×2 to keep the effective batch)",
                      replace(s, batch_size=nb)))
    if s.seq_len > 256:
        ns = max(256, s.seq_len // 2)
        cands.append((f"max_length {s.seq_len} → {ns}", replace(s, seq_len=ns)))
    if s.lora_r > 8:
        cands.append((f"LoRA r {s.lora_r} → 8", replace(s, lora_r=8)))
    if OPTIM_STATE.get(s.optim, 8) > 2:
        cands.append(("8-bit optimizer (paged_adamw_8bit)", replace(s, optim="paged_adamw_8bit")))
    if s.lora_dropout > 0:
        cands.append(("LoRA dropout 0 (no dropout masks saved)", replace(s, lora_dropout=0.0)))
    if s.target_modules == "all-linear" and {"q_proj", "v_proj"} <= set(arch.linear_names()):
        cands.append(("LoRA on q_proj, v_proj only", replace(s, target_modules=["q_proj", "v_proj"])))
    if not s.double_quant and s.load_in_4bit:
        cands.append(("double quantization on", replace(s, double_quant=True)))
    if resolved_loss_impl(arch, s) == "standard":
        cands.append(("chunked loss (train.loss_impl: chunked): one chunk of logits at a time",
                      replace(s, loss_impl="chunked")))
    if s.attn_implementation == "eager" and arch.supports_sdpa:
        cands.append(("sdpa attention instead of eager", replace(s, attn_implementation="sdpa")))
    out = []
    for label, s2 in cands:
        e2 = estimate(arch, s2, vram_gib=vram_gib)
        saves = base - e2.total_gib
        if saves > 1e-4:
            out.append({"change": label, "saves_gib": round(saves, 3), "total_gib": round(e2.total_gib, 3),
                        "fits": e2.fits})
    out.sort(key=lambda d: -d["saves_gib"])
    return out


# --- entry points for the worker and the wizard ----------------------------------------------
def arch_for_ref(ref: str) -> tuple[Arch, str]:
    """Architecture of a model reference without network, torch or building anything."""
    from tui_tuner.models.sources import load_model_config

    src = load_model_config(ref, allow_download=False, build_demo=False)
    from tui_tuner.models.arch import arch_from_config

    return arch_from_config(src.config, source=src.label), src.name


def estimate_for_config(cfg: "RunConfig", vram_gib: float | None = None,
                        compute_capability: tuple[int, int] | None = None) -> Estimate:
    """The estimate for a run config (what the worker records and the wizard shows live)."""
    arch, name = arch_for_ref(cfg.model.name_or_path)
    s = replace(TrainSettings.from_config(cfg), compute_capability=compute_capability)
    return estimate(arch, s, vram_gib=vram_gib, model=name)


def compare_with_measured(est: Estimate, peak_reserved_bytes: int | None) -> dict[str, Any] | None:
    """Compare an estimate with torch.cuda.max_memory_reserved() from a run's `memory` event.

    max_memory_reserved excludes the CUDA context, so the context term is taken off first.
    Returns {measured_gib, estimated_gib, error_gib, error_pct} (positive = over-estimate)."""
    if not peak_reserved_bytes:
        return None
    measured = peak_reserved_bytes / GIB
    estimated = est.total_gib - est.breakdown.get("cuda_context", 0.0)
    err = estimated - measured
    return {"measured_gib": round(measured, 3), "estimated_gib": round(estimated, 3),
            "error_gib": round(err, 3), "error_pct": round(100 * err / measured, 1) if measured else None}
