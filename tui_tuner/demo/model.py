"""The offline demo model: a tiny Llama built locally, trained on the bundled sample FAQ.

No weights can be downloaded everywhere tui-tuner runs (tests, air-gapped boxes), so `demo` is a
model we build ourselves, once, into `paths.demo_dir()`:

* a byte-level BPE tokenizer trained with `tokenizers` on bundled text (the sample FAQ plus
  `assets/tokenizer_corpus.txt`). All 256 bytes are in the initial alphabet, so ANY UTF-8 text
  (Chinese, emoji) round-trips even where no merge was learned;
* a chat template with `{% generation %}` markers around the assistant reply AND its end-of-turn
  token, so assistant-only loss masks include the token the model must learn to stop on;
* a randomly initialised `LlamaForCausalLM` (fixed seed) sized so that QLoRA on the sample FAQ
  makes it answer the FAQ verbatim after about a minute of CPU training (presets/demo.yaml).

The build is deterministic (same bytes every time), takes a few seconds, is atomic (temp dir +
rename) and guarded by a file lock so concurrent callers (tests, a worker) never see half a model.
A fingerprint of the recipe and assets is stored with it; a changed recipe triggers a rebuild.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

from tui_tuner import paths
from tui_tuner.demo.sample import SAMPLE_DATASET, sample_conversations
from tui_tuner.errors import UserError

Progress = Callable[[str, "float | None"], None]

TOKENIZER_CORPUS = "tokenizer_corpus.txt"
MARKER_FILE = "tui_tuner_demo.json"
LOCK_FILE = ".demo-model.lock"

SEED = 1234
# Merges are learned only from the bundled corpus, so the real vocabulary may stay below this.
VOCAB_SIZE = 1536
PAD, EOT = "<pad>", "<|end|>"
SPECIAL_TOKENS = (PAD, "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", EOT)

# Sized by bench/demo_fit.py: big enough to learn the FAQ verbatim with LoRA in ~a minute on 2 CPU
# cores, small enough to build in seconds. Dimensions are multiples of 64 (the NF4 block size).
ARCH = dict(
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    initializer_range=0.02,
    tie_word_embeddings=False,
)

# The output layer is frozen under LoRA (PEFT's all-linear skips it), so its scale caps how confident
# the model can ever get: with std 0.02 over 256 dims a logit cannot exceed ~5, i.e. p < 15% over the
# vocabulary, and nothing is reproduced verbatim. A wider init lets LoRA reach confident logits.
LM_HEAD_INIT_STD = 0.08

# Bump when the build changes in a way the fingerprint (assets + ARCH + constants) does not catch.
RECIPE_VERSION = 1

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|assistant|>\n' }}{% generation %}{{- message['content'] + '<|end|>' }}{% endgeneration %}{{- '\n' }}"
    "{%- elif message['role'] in ['system', 'user'] %}"
    "{{- '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- else %}"
    "{{- raise_exception('unknown role: ' + message['role'] + ' (use system, user or assistant)') }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\n' }}{%- endif %}"
)


# ---------------------------------------------------------------------------------------------
# Where it lives


def demo_path() -> Path:
    """Where the demo model lives (it may not be built yet; see `ensure_demo_model`)."""
    return paths.demo_dir()


# ---------------------------------------------------------------------------------------------
# Building


def _say(progress: Progress | None, msg: str, fraction: float | None = None) -> None:
    if progress is not None:
        progress(msg, fraction)


def _asset_bytes() -> list[bytes]:
    return [(paths.ASSETS_DIR / name).read_bytes() for name in (SAMPLE_DATASET, TOKENIZER_CORPUS)]


def fingerprint() -> str:
    """Hash of everything that determines the built files (but not library versions)."""
    h = hashlib.sha256()
    recipe = dict(version=RECIPE_VERSION, seed=SEED, lm_head_std=LM_HEAD_INIT_STD, vocab=VOCAB_SIZE, specials=SPECIAL_TOKENS, arch=ARCH,
                  template=CHAT_TEMPLATE)
    h.update(json.dumps(recipe, sort_keys=True).encode())
    for b in _asset_bytes():
        h.update(hashlib.sha256(b).digest())
    return h.hexdigest()[:16]


def is_built(path: Path | None = None) -> bool:
    """True when `path` (default: the demo dir) holds a complete demo model of the current recipe."""
    d = Path(path) if path is not None else demo_path()
    try:
        marker = json.loads((d / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("fingerprint") == fingerprint() and all(
        (d / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"))


def _corpus() -> Iterator[str]:
    """The tokenizer's training text, in a fixed order (BPE ties are broken deterministically)."""
    for conv in sample_conversations():
        for m in conv:
            yield m["content"]
    text = (paths.ASSETS_DIR / TOKENIZER_CORPUS).read_text(encoding="utf-8")
    yield from (para for para in text.split("\n\n") if para.strip())


def build_tokenizer():
    """A `PreTrainedTokenizerFast` with a byte-level BPE trained on the bundled corpus + chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())  # byte-level: no unknown token can occur
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=2, show_progress=False,
                                  special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOT, pad_token=PAD,
                                  model_max_length=ARCH["max_position_embeddings"],
                                  clean_up_tokenization_spaces=False)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_model(tok):
    """The randomly initialised LlamaForCausalLM (fixed seed, global RNG left untouched)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    eot, pad = tok.convert_tokens_to_ids(EOT), tok.convert_tokens_to_ids(PAD)
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=None, eos_token_id=eot, pad_token_id=pad,
                         head_dim=ARCH["hidden_size"] // ARCH["num_attention_heads"], **ARCH)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = LlamaForCausalLM(config).to(torch.float32)
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, LM_HEAD_INIT_STD)
    model.generation_config = GenerationConfig(eos_token_id=eot, pad_token_id=pad, bos_token_id=None)
    model.eval()
    return model


def _build_into(dest: Path, progress: Progress | None) -> None:
    t0 = time.perf_counter()
    _say(progress, "training the byte-level BPE tokenizer on the bundled corpus", 0.05)
    tok = build_tokenizer()
    _say(progress, f"tokenizer: {len(tok):,} tokens; importing torch", 0.2)
    model = build_model(tok)
    n = model.num_parameters()
    _say(progress, f"model: LlamaForCausalLM, {n / 1e6:.1f} M parameters (random init, seed {SEED}); saving", 0.7)
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our own progress lines instead of a tqdm bar on stderr
    try:
        model.save_pretrained(str(dest))
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    tok.save_pretrained(str(dest))
    # Written last: its presence marks a complete build. No timestamps, so builds are byte-identical.
    (dest / MARKER_FILE).write_text(json.dumps({
        "fingerprint": fingerprint(), "parameters": n, "vocab_size": len(tok),
    }, indent=2) + "\n", encoding="utf-8")
    _say(progress, f"built in {time.perf_counter() - t0:.1f} s", 0.95)


@contextlib.contextmanager
def _build_lock(on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive lock across processes (fcntl.flock: released by the OS if the holder dies).
    on_wait is called only when another process holds it (so a fresh home says nothing about it)."""
    lock_path = paths.home() / LOCK_FILE
    fh = open(lock_path, "a+")
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process guard, the atomic rename still holds
            yield
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def ensure_demo_model(rebuild: bool = False, progress: Progress | None = None) -> Path:
    """Build the demo model once (or again with rebuild=True) and return its directory."""
    dest = demo_path()
    if not rebuild and is_built(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(lambda: _say(progress, "another process is building the demo model: waiting for it "
                                            f"({paths.home() / LOCK_FILE})", None)):
        if not rebuild and is_built(dest):  # someone else built it while we waited
            _say(progress, f"demo model ready: {dest}", 1.0)
            return dest
        _say(progress, f"building the demo model into {dest}", 0.0)
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        # We hold the lock, so any other temp dir is the leftover of a build that was killed.
        for p in (*dest.parent.glob(f".{dest.name}.tmp-*"), *dest.parent.glob(f".{dest.name}.old-*")):
            shutil.rmtree(p, ignore_errors=True)
        try:
            tmp.mkdir()
            _build_into(tmp, progress)
            if dest.is_symlink() or dest.is_file():
                dest.unlink()
            elif dest.exists():
                dest.rename(old)
            tmp.rename(dest)
        except OSError as e:
            raise UserError(f"could not build the demo model in {dest.parent}: {e.strerror or e}",
                            hint="check free disk space and permissions of the tui-tuner home "
                                 "(set TUI_TUNER_HOME to use another folder)") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    _say(progress, f"demo model ready: {dest}", 1.0)
    return dest
