"""Which causal-LM loss and which batch layout a run uses, and the chunked loss itself.

`train.loss_impl`:
- standard: the model's own forward (transformers' ForCausalLMLoss on the full [tokens x vocab]
  logits — 12 bytes per logit at the peak of backward, the largest term of a small-model run).
- liger: Liger-Kernel's fused linear cross-entropy (+ its RMSNorm/SwiGLU/RoPE kernels for the
  architecture), applied by the HF Trainer's own `use_liger_kernel`. Triton kernels: CUDA only.
- chunked: the loss from the final hidden states in chunks of positions, so one chunk of logits
  exists at a time. With the frozen lm_head of QLoRA each chunk's gradient for the hidden states
  is computed as the chunk is processed (no recomputation: the standard loss's matmul count); a
  trainable head instead recomputes each chunk's matmul in backward. Runs on CPU and any GPU.
  Hand-written because no maintained library does this off CUDA: Liger's fused linear CE is
  Triton-only, cut-cross-entropy's non-Triton backend (torch_compile) materialises the full
  logits, transformers has no chunked loss, and torchtune's chunked CE wants a model that emits
  chunked logits itself.
- auto: liger on CUDA when liger-kernel is installed and knows the architecture, else chunked
  when vocabulary x tokens per batch is large, else standard.

`train.packing`: padded (rows padded to the longest in the batch) or padding_free
(transformers' DataCollatorWithFlattening: a batch becomes one row with position ids restarting at
every example; transformers' masking utilities turn restarting position ids into a block-diagonal
causal mask, and flash-attention-2 into varlen attention). auto = padding_free only where a varlen
kernel runs (CUDA + flash_attention_2); on CPU and with SDPA padded batches grouped by length
measured faster.

This module imports torch lazily. The chunk size and the auto threshold, which the VRAM estimate
must compute the same way without torch, live in `tui_tuner.models.loss_plan`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

# The chunk size and the auto threshold are shared with the VRAM estimate (torch-free, in models/).
from tui_tuner.models.loss_plan import AUTO_CHUNKED_MIN_LOGITS, chunk_tokens

IGNORE_INDEX = -100


@dataclass
class Choice:
    impl: str
    reason: str


def liger_status(model_type: str | None = None) -> tuple[bool, str]:
    """(can Liger run here, why not). CUDA present, liger-kernel importable, the architecture known to it."""
    import torch

    if not torch.cuda.is_available():
        return False, "Liger's kernels need CUDA (no CUDA device here)"
    if importlib.util.find_spec("liger_kernel") is None:
        return False, "liger-kernel is not installed (pip install 'tui-tuner[fast]')"
    try:
        from transformers.utils import is_liger_kernel_available

        if not is_liger_kernel_available():
            return False, "the installed liger-kernel is too old for transformers"
        if model_type:
            from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

            if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
                return False, f"liger-kernel has no kernels for the {model_type} architecture"
    except Exception as e:  # a broken install (e.g. no triton for this GPU) must not stop training
        return False, f"liger-kernel does not import: {type(e).__name__}: {e}"[:200]
    return True, "CUDA and liger-kernel present"


def choose_loss_impl(requested: str, *, vocab_size: int, tokens_per_batch: int, liger_ok: bool,
                     liger_why: str, chunked_ok: bool = True, chunked_why: str = "") -> Choice:
    """The implementation a run uses and why. Raises ValueError for an explicit request that cannot run."""
    logits = vocab_size * tokens_per_batch
    if requested == "standard":
        return Choice("standard", "train.loss_impl: standard")
    if requested == "liger":
        if not liger_ok:
            raise ValueError(f"train.loss_impl: liger cannot run here: {liger_why}")
        return Choice("liger", "train.loss_impl: liger")
    if requested == "chunked":
        if not chunked_ok:
            raise ValueError(f"train.loss_impl: chunked cannot run for this model: {chunked_why}")
        return Choice("chunked", "train.loss_impl: chunked")
    if liger_ok:
        return Choice("liger", "auto: " + liger_why)
    size = f"vocabulary {vocab_size:,} x {tokens_per_batch:,} tokens per batch = {logits / 1e6:,.1f} M logits"
    if logits < AUTO_CHUNKED_MIN_LOGITS:
        return Choice("standard", f"auto: {size}, under {AUTO_CHUNKED_MIN_LOGITS / 1e6:.0f} M: "
                                  "chunking would save little; liger: " + liger_why)
    if not chunked_ok:
        return Choice("standard", f"auto: chunked unavailable for this model ({chunked_why}); liger: {liger_why}")
    return Choice("chunked", f"auto: {size}: chunks of {chunk_tokens(vocab_size)} positions; liger: {liger_why}")


def choose_packing(requested: str, *, cuda: bool, attn_implementation: str, supported: bool,
                   why_not: str = "") -> Choice:
    """Padded or padding-free batches, and why. Raises ValueError when padding_free cannot run."""
    if requested == "padded":
        return Choice("padded", "train.packing: padded")
    if requested == "padding_free":
        if not supported:
            raise ValueError(f"train.packing: padding_free cannot run for this model: {why_not}")
        return Choice("padding_free", "train.packing: padding_free")
    if not supported:
        return Choice("padded", f"auto: padding-free unsupported for this model ({why_not})")
    if cuda and attn_implementation == "flash_attention_2":
        return Choice("padding_free", "auto: flash_attention_2 runs packed rows as varlen attention, no padding")
    where = "CPU" if not cuda else attn_implementation
    return Choice("padded", f"auto: on {where} packed rows need a full block-diagonal mask; padded batches "
                            "grouped by length measured faster")


# --- the chunked loss (torch) -------------------------------------------------------------------
def _unwrap(model):
    """The transformers *ForCausalLM inside a PEFT wrapper (LoRA layers are injected in place)."""
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def chunked_support(model) -> tuple[bool, str]:
    """Can the chunked loss reproduce this model's forward: backbone → lm_head (→ softcap) → CE?"""
    base = _unwrap(model)
    cfg = getattr(base, "config", None)
    if not type(base).__name__.endswith("ForCausalLM"):
        return False, f"{type(base).__name__} is not a plain causal LM"
    try:
        decoder, head = base.get_decoder(), base.get_output_embeddings()
    except Exception as e:  # noqa: BLE001 - any failure means: not this layout
        return False, f"no decoder/lm_head split ({type(e).__name__})"
    if decoder is None or head is None:
        return False, "no decoder/lm_head split"
    for attr in ("logit_scale", "logits_scaling", "output_multiplier_scale"):
        if getattr(cfg, attr, None) not in (None, 1, 1.0):
            return False, f"the model scales its logits ({attr})"
    return True, ""


def _chunk_loss_sum(head, hidden, labels, softcap):
    import torch

    logits = head(hidden)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    # float upcast and sum-reduced cross-entropy: what transformers' ForCausalLMLoss does per token
    return torch.nn.functional.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")


def _frozen_linear(head) -> bool:
    import torch

    return type(head) is torch.nn.Linear and not any(p.requires_grad for p in head.parameters())


def _fused_chunks_loss_sum(h, y, weight, bias, size: int, softcap):
    """Sum of token cross-entropies of (h @ weight.T + bias) against y, one chunk of positions at a time.

    When h needs a gradient, each chunk's gradient for h is computed right there from the chunk's
    logits (softmax - one-hot, through the softcap) and the logits are freed: the scheme of Liger's
    fused linear cross-entropy, in plain torch. Same matmul count as the standard loss (no
    recomputation) and one chunk of logits alive at a time. Only for a frozen head (the QLoRA case)."""
    import torch

    class _FusedLinearCE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h):
            total = torch.zeros((), dtype=torch.float32, device=h.device)
            grad_h = torch.empty_like(h) if ctx.needs_input_grad[0] else None
            for start in range(0, h.shape[0], size):
                hc, yc = h[start:start + size], y[start:start + size]
                logits = torch.nn.functional.linear(hc, weight, bias)
                t = None
                if softcap:
                    t = torch.tanh(logits / softcap)
                    logits = t * softcap
                lf = logits.float()  # transformers upcasts the logits before its cross-entropy too
                lse = torch.logsumexp(lf, dim=-1)
                total += (lse - lf.gather(1, yc.unsqueeze(1)).squeeze(1)).sum()
                if grad_h is not None:
                    g = lf.sub_(lse.unsqueeze(1)).exp_()  # softmax, in place of the logits
                    g[torch.arange(g.shape[0], device=g.device), yc] -= 1.0
                    if t is not None:
                        g.mul_(1.0 - t.float().square())
                    grad_h[start:start + size] = g.to(h.dtype) @ weight
            ctx.save_for_backward(grad_h)
            return total

        @staticmethod
        def backward(ctx, grad_out):
            (grad_h,) = ctx.saved_tensors
            return grad_h * grad_out.to(grad_h.dtype)

    return _FusedLinearCE.apply(h)


def chunked_causal_lm_loss(hidden, head, labels, *, num_items_in_batch=None, shift_labels=None,
                           chunk_size: int | None = None, softcap: float | None = None):
    """transformers' ForCausalLMLoss(head(hidden), labels, ...) without ever holding all the logits.

    Same shift (labels padded with -100 then shifted left, or `shift_labels` as given), same -100
    handling, same normalisation (sum / num_items_in_batch when given, else mean over trained
    positions). Only trained positions are projected. A frozen nn.Linear head (QLoRA) takes the fused
    path (gradient per chunk computed in forward); any other head (trainable, adapted) runs each
    chunk under non-reentrant checkpointing: logits freed after forward, recomputed in backward.
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    if shift_labels is None:
        shift_labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    shift_labels = shift_labels.reshape(-1).to(hidden.device)
    flat = hidden.reshape(-1, hidden.shape[-1])
    idx = (shift_labels != IGNORE_INDEX).nonzero().squeeze(-1)
    h, y = flat.index_select(0, idx), shift_labels.index_select(0, idx)
    n = int(y.numel())
    size = chunk_size or chunk_tokens(head.weight.shape[0] if hasattr(head, "weight") else 1)
    if _frozen_linear(head):
        total = _fused_chunks_loss_sum(h, y, head.weight, head.bias, size, softcap)
    else:
        total = flat.new_zeros((), dtype=torch.float32) + 0.0 * flat.sum()  # keeps the graph when n == 0
        grad = torch.is_grad_enabled()
        # torch.split: one backward node that concatenates the chunks' gradients once (slicing would
        # allocate a full-size zero gradient per chunk)
        for hc, yc in zip(torch.split(h, size), torch.split(y, size)):
            if grad:
                total = total + checkpoint(_chunk_loss_sum, head, hc, yc, softcap, use_reentrant=False)
            else:
                total = total + _chunk_loss_sum(head, hc, yc, softcap)
    if num_items_in_batch is not None:
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch
    # cross_entropy(reduction="mean") over zero trained positions is nan; so is this
    return total / n if n else total / 0.0


def chunked_model_loss(model, inputs: dict, num_items_in_batch=None, chunk_size: int | None = None):
    """Run the backbone (LoRA, gradient checkpointing and all) and the chunked loss on its output."""
    base = _unwrap(model)
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    kw = {k: v for k, v in inputs.items() if k not in ("labels", "shift_labels", "num_items_in_batch")}
    kw["use_cache"] = False
    out = decoder(**kw)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    softcap = getattr(base.config, "final_logit_softcapping", None)
    return chunked_causal_lm_loss(hidden, head, inputs["labels"], num_items_in_batch=num_items_in_batch,
                                  shift_labels=inputs.get("shift_labels"), chunk_size=chunk_size,
                                  softcap=softcap)


def agreement(model, batch: dict, chunk_size: int | None = None) -> float:
    """Relative difference between the model's own loss and the chunked loss on one small batch (no grad).

    Run once before training: it proves on the real model (architecture, 4-bit base, adapters)
    that the chunked path computes the model's loss, whatever its forward does."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = model(**batch, use_cache=False).loss.float()
            mine = chunked_model_loss(model, batch, chunk_size=chunk_size).float()
    finally:
        model.train(was_training)
    return float((ref - mine).abs() / ref.abs().clamp_min(1e-12))


def packing_agreement(model, rows: list[dict], collate_padded, collate_flat) -> float:
    """Largest relative difference between each row's loss alone and the same row inside a packed batch."""
    import torch

    was_training = model.training
    model.eval()
    worst = 0.0
    try:
        with torch.no_grad():
            flat = collate_flat(rows)
            flat = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in flat.items()}
            logits = model(**{k: v for k, v in flat.items() if k != "labels"}, use_cache=False).logits.float()
            per_tok = per_token_losses(logits, flat["labels"])[0]
            start = 0
            for row in rows:
                n = len(row["input_ids"])
                alone = collate_padded([row])
                alone = {k: v.to(model.device) for k, v in alone.items()}
                ref = model(**alone, use_cache=False).loss.float()
                seg = per_tok[start:start + n]
                seg = seg[~torch.isnan(seg)]
                packed = seg.mean()
                worst = max(worst, float((ref - packed).abs() / ref.abs().clamp_min(1e-12)))
                start += n
    finally:
        model.train(was_training)
    return worst


def per_token_losses(logits, labels):
    """Per-position loss of predicting the next label (nan where the label is -100), shape [batch, seq]."""
    import torch

    shift = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), shift, ignore_index=IGNORE_INDEX,
                                             reduction="none")
    return loss.masked_fill(shift == IGNORE_INDEX, float("nan"))


def trainer_class(base_cls, chunked: bool, chunk_size: int | None = None):
    """The Trainer to run: `base_cls` itself, or a subclass whose compute_loss is the chunked loss."""
    if not chunked:
        return base_cls

    class ChunkedLossTrainer(base_cls):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "labels" not in inputs or self.label_smoother is not None or self.compute_loss_func is not None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # Mirror Trainer: the model normalises by num_items_in_batch only when it accepts loss kwargs,
            # and Trainer's gradient-accumulation scaling assumes exactly that.
            n = num_items_in_batch if self.model_accepts_loss_kwargs else None
            loss = chunked_model_loss(model, inputs, num_items_in_batch=n, chunk_size=chunk_size)
            if (self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs
                    and num_items_in_batch is not None):
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            # no logits to return: evaluation here is loss only (no compute_metrics)
            return (loss, {"loss": loss}) if return_outputs else loss

    return ChunkedLossTrainer


# --- what the worker calls ------------------------------------------------------------------------
def packing_support(model) -> tuple[bool, str]:
    """Does the installed transformers' code for this model turn restarting position ids into
    per-example attention? Its decoder must build its mask with masking_utils (which detects packed
    position ids when no attention mask is given); the run-time check then proves it on real rows."""
    import sys

    base = _unwrap(model)
    try:
        decoder = base.get_decoder()
    except Exception:  # noqa: BLE001
        return False, "no decoder"
    mod = sys.modules.get(type(decoder).__module__)
    if mod is None or not hasattr(mod, "create_causal_mask"):
        return False, f"{type(decoder).__name__} does not build its mask with transformers' masking utilities"
    return True, ""


@dataclass
class Selection:
    loss: Choice
    packing: Choice
    checks: dict

    def to_event(self) -> dict:
        return {"loss_impl": self.loss.impl, "loss_reason": self.loss.reason, "packing": self.packing.impl,
                "packing_reason": self.packing.reason, **self.checks}


def _shortest(train, n: int, max_tokens: int) -> list[dict]:
    """The n shortest rows, each cut to its last max_tokens tokens (the end of a row is trained): the
    checks compare two computations on the same input, and the standard side holds all its logits."""
    lengths = train["length"] if "length" in train.column_names else [len(x) for x in train["input_ids"]]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])[:n]
    rows = []
    for i in order:
        ids, labels = list(train[i]["input_ids"])[-max_tokens:], list(train[i]["labels"])[-max_tokens:]
        labels[0] = IGNORE_INDEX  # never predicted (no token before it); also what the flattening collator does
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def select_for_run(cfg, model, train, *, cuda: bool, attn: str, collate_padded, collate_flat,
                   dtype_bits: int) -> Selection:
    """Choose loss implementation and packing for a run, proving chunked/padding-free on real rows first.

    Raises ValueError (one line, for the user) when an explicit request cannot run here."""
    base = _unwrap(model)
    vocab = int(base.get_output_embeddings().weight.shape[0])
    tol = 1e-4 if dtype_bits == 32 else 1e-2
    checks: dict = {}
    l_ok, l_why = liger_status(getattr(base.config, "model_type", None))
    c_ok, c_why = chunked_support(model)
    req = cfg.train.loss_impl
    tokens = cfg.train.batch_size * cfg.data.max_length
    wants_chunked = req == "chunked" or (req == "auto" and not l_ok and vocab * tokens >= AUTO_CHUNKED_MIN_LOGITS)
    if c_ok and wants_chunked:
        rows = _shortest(train, 2, max(16, chunk_tokens(vocab) // 2))  # at most one chunk of logits
        batch = {k: v.to(model.device) for k, v in collate_padded(rows).items()}
        diff = agreement(model, batch, chunk_size=max(1, sum(len(r["input_ids"]) for r in rows) // 3))
        checks["chunked_vs_standard_rel_diff"] = diff
        if not diff <= tol:  # nan fails too
            c_ok, c_why = False, f"its loss differs from the model's own by {diff:.1e} (relative) on real rows"
    loss = choose_loss_impl(req, vocab_size=vocab, tokens_per_batch=tokens, liger_ok=l_ok, liger_why=l_why,
                            chunked_ok=c_ok, chunked_why=c_why)
    p_ok, p_why = packing_support(model)
    reqp = cfg.train.packing
    if p_ok and (reqp == "padding_free" or (reqp == "auto" and cuda and attn == "flash_attention_2")):
        diff = packing_agreement(model, _shortest(train, 3, max(16, chunk_tokens(vocab) // 3)), collate_padded,
                                 collate_flat)
        checks["packed_vs_alone_rel_diff"] = diff
        # attention with a block mask vs without one: kernels differ in rounding (measured up to 8e-5 in
        # fp32 on the demo); rows attending to each other differ by far more than 1e-3
        if not diff <= max(tol, 1e-3):
            p_ok, p_why = False, f"a row's loss packed differs from alone by {diff:.1e} (relative)"
    packing = choose_packing(reqp, cuda=cuda, attn_implementation=attn, supported=p_ok, why_not=p_why)
    return Selection(loss, packing, checks)
