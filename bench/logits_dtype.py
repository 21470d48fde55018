"""Bytes per logit element at the peak of one real 4-bit + LoRA training step, bf16 vs fp32 compute.

    python bench/logits_dtype.py

The slope of the step's peak (measure.LiveBytes: tensor bytes alive, exact on CPU) between two
vocabulary sizes, divided by the added logits, for autocast bf16 and for fp32. It checks whether
fp32 compute needs its own logits term in the VRAM estimate (measured 2026-12-02: 12.0 B per
logit for both, so it does not).
"""
import gc
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tui_tuner.models.measure import LiveBytes, batch, build_random_model, load_qlora, train_step  # noqa: E402
from tui_tuner.models.vram import TrainSettings  # noqa: E402

torch.set_num_threads(1)
for dt_name, dt in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
    peaks = {}
    for V in (8000, 24000):
        cfg = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=V, max_position_embeddings=512, tie_word_embeddings=False)
        d = Path(tempfile.mkdtemp())
        build_random_model(cfg, d, dtype=dt)
        s = TrainSettings(batch_size=2, seq_len=128, lora_r=8, gradient_checkpointing=True, compute_dtype=dt_name,
                          device="cpu", lora_dropout=0.0)
        m = load_qlora(d, s, dtype=dt)
        ids = batch(V, 2, 128)
        for p in m.parameters():
            p.grad = None
        gc.collect()
        with LiveBytes() as t:
            train_step(m, ids, autocast_dtype=dt)
        peaks[V] = t.peak
    slope = (peaks[24000] - peaks[8000]) / (2 * 128 * 16000)
    print(dt_name, peaks, "bytes per logit:", round(slope, 2), flush=True)
