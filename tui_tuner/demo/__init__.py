"""The offline demo: a tiny Llama model built locally, and the bundled sample FAQ dataset.

A leaf package: it imports only `paths` and `errors` (and torch/transformers/tokenizers inside
the build functions), so the hub, the model and data sources and the worker can all use it.
The `tui-tuner demo` command that trains it lives in `tui_tuner.commands.demo`.

- `model`   building the demo model once into `paths.demo_dir()` (`ensure_demo_model`).
- `sample`  the sample FAQ dataset (`data.path: sample`) and the demo preset.
"""

from tui_tuner.demo.model import (
    ARCH,
    CHAT_TEMPLATE,
    EOT,
    MARKER_FILE,
    PAD,
    SEED,
    SPECIAL_TOKENS,
    VOCAB_SIZE,
    build_model,
    build_tokenizer,
    demo_path,
    ensure_demo_model,
    fingerprint,
    is_built,
)
from tui_tuner.demo.sample import (
    SAMPLE_DATASET,
    demo_preset_path,
    faq_pairs,
    faq_turns,
    sample_conversations,
    sample_dataset_path,
)

__all__ = [
    "ARCH", "CHAT_TEMPLATE", "EOT", "MARKER_FILE", "PAD", "SAMPLE_DATASET", "SEED", "SPECIAL_TOKENS", "VOCAB_SIZE",
    "build_model", "build_tokenizer", "demo_path", "demo_preset_path", "ensure_demo_model", "faq_pairs",
    "faq_turns", "fingerprint", "is_built", "sample_conversations", "sample_dataset_path",
]
