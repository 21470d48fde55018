"""The loss implementation's sizes that both the worker and the VRAM estimate compute (torch-free).

`tui_tuner.worker.loss` trains with them; `tui_tuner.models.vram` estimates the memory the loss
takes with the same numbers, so the two cannot drift apart.
"""

from __future__ import annotations

# One chunk holds at most this many logits (chunk positions x vocabulary): 32 Mi logits = 384 MiB at
# the 12 bytes per logit of a cross-entropy backward. Qwen2.5's 151,936 vocabulary → 220 positions.
CHUNK_LOGIT_ELEMENTS = 1 << 25
MIN_CHUNK_TOKENS = 64
# auto chooses chunked from more than one chunk's worth of logits per micro-batch: below that there
# is nothing to save and the recomputed lm_head matmul would only cost time. At this threshold the
# chunk (plus its compute-dtype logits) costs slightly more than the standard loss, so the estimated
# peak keeps growing with batch x length across the switch (auto-fit's search relies on that).
AUTO_CHUNKED_MIN_LOGITS = CHUNK_LOGIT_ELEMENTS + 1


def chunk_tokens(vocab_size: int) -> int:
    """Positions per chunk for a vocabulary of this size."""
    return max(MIN_CHUNK_TOKENS, CHUNK_LOGIT_ELEMENTS // max(1, vocab_size))
