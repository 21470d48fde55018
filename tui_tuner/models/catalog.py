"""Model cards: architecture numbers of popular open models, so estimates work offline by hub id.

Each `presets/models/*.yaml` holds one model: its hub id, whether it is a chat/instruct or a base
model, the shape keys copied from its config.json, and `source` saying where they were read.
Pure Python + PyYAML: the wizard lists these without torch or network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from tui_tuner import paths
from tui_tuner.errors import UserError

KINDS = ("chat", "base")

# The advice the wizard and `tui-tuner models` show next to a model's kind.
ADVICE = {
    "chat": "chat/instruct model: the best start with few examples (hundreds) — it already follows "
            "instructions and has a chat template; LoRA only nudges it",
    "base": "base model: only continues text; worth it with many examples (thousands+) or a new format, "
            "otherwise start from its chat/instruct sibling",
    "unknown": "unknown whether chat or base: with few examples prefer a chat/instruct model",
}

_CHAT_NAME = re.compile(r"(instruct|chat|[-_.]it\b|[-_]it[-_]|-sft|-dpo|assistant)", re.IGNORECASE)
_BASE_NAME = re.compile(r"([-_]base\b|[-_]pt\b|-pretrain)", re.IGNORECASE)


def guess_kind(name: str, has_chat_template: bool | None = None) -> str:
    """'chat', 'base' or 'unknown' from a model name (and whether its tokenizer has a chat template)."""
    base = name.rsplit("/", 1)[-1]
    if _BASE_NAME.search(base):
        return "base"
    if _CHAT_NAME.search(base):
        return "chat"
    if has_chat_template is False:
        return "base"
    return "unknown"


def advice_for(kind: str, n_examples: int | None = None) -> str:
    """The seeds' rule: few examples → start from a chat model; many → a base model is fine."""
    if n_examples is not None:
        if n_examples < 1000 and kind == "base":
            return (f"only {n_examples:,} examples: a base model will struggle to learn to answer — "
                    "prefer a chat/instruct model")
        if n_examples >= 10000 and kind == "chat":
            return (f"{n_examples:,} examples: enough to start from a base model too; "
                    "a chat model is still fine when your data is conversations")
    return ADVICE.get(kind, ADVICE["unknown"])


@dataclass
class ModelCard:
    id: str
    family: str
    kind: str
    config: dict[str, Any]
    source: list[str]
    path: Path
    notes: str | None = None
    aliases: list[str] = field(default_factory=list)
    # other hub ids of the family whose config differs in a few keys: id → {config overrides, source}
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def arch(self):
        from tui_tuner.models.arch import arch_from_config

        return arch_from_config(self.config, source=str(self.path))


def cards_dir() -> Path:
    return paths.presets_dir() / "models"


def _as_list(v) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def _read_card(p: Path) -> ModelCard:
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{p}: invalid YAML in model card: {str(e).splitlines()[0]}") from None
    if not isinstance(d, dict) or not isinstance(d.get("config"), dict) or not d.get("id"):
        raise UserError(f"{p}: a model card needs 'id' and a 'config' mapping")
    kind = d.get("kind", "unknown")
    if kind not in KINDS:
        raise UserError(f"{p}: kind {kind!r} must be one of {', '.join(KINDS)}")
    variants = d.get("variants") or {}
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise UserError(f"{p}: 'variants' must map hub ids to {{config: {{…}}, source: …}}")
    return ModelCard(id=str(d["id"]), family=str(d.get("family", "")), kind=kind, config=dict(d["config"]),
                     source=_as_list(d.get("source")), path=p, notes=d.get("notes"),
                     aliases=[str(a) for a in d.get("aliases", [])], variants={str(k): v for k, v in variants.items()})


@lru_cache(maxsize=4)
def _load(dir_str: str, stamp: tuple) -> tuple[ModelCard, ...]:
    return tuple(_read_card(p) for p in sorted(Path(dir_str).glob("*.yaml")))


def load_cards(directory: Path | None = None) -> list[ModelCard]:
    d = directory or cards_dir()
    if not d.is_dir():
        return []
    files = sorted(d.glob("*.yaml"))
    stamp = tuple((f.name, f.stat().st_mtime_ns) for f in files)
    return list(_load(str(d), stamp))


def find_card(ref: str, directory: Path | None = None) -> ModelCard | None:
    """The card whose hub id (or alias) equals `ref`, case-insensitively."""
    key = ref.strip().lower()
    for c in load_cards(directory):
        if c.id.lower() == key or key in (a.lower() for a in c.aliases):
            return c
    return None


# --- variants: base/instruct siblings, org mirrors, pre-quantized re-uploads -------------------
# A family's base and chat/instruct models share every shape number (same entries in litgpt's
# config.py for Qwen2.5, Llama 3.x, Gemma, Mistral, Falcon, SmolLM2 …), and mirrors such as
# unsloth/… or …-bnb-4bit re-uploads keep the architecture. So the name without its org, its
# kind marker and its quantization suffix names the shape.
_QUANT_SUFFIX = re.compile(r"(-unsloth)?(-bnb)?-(4bit|8bit)$|-(gptq|awq)(-int[48])?$|-(fp16|bf16|gguf|mlx)$",
                           re.IGNORECASE)
_KIND_TOKEN = re.compile(r"-(instruct|chat|it|hf|base|pt)(?=-|$)", re.IGNORECASE)


def family_key(name: str) -> str:
    """'unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit' → 'llama-3.1-8b' (shape-equivalent names)."""
    key = name.strip().split("@", 1)[0].rsplit("/", 1)[-1].lower()
    prev = None
    while prev != key:
        prev, key = key, _QUANT_SUFFIX.sub("", key)
    key = _KIND_TOKEN.sub("", key)
    if key.startswith("meta-llama-"):
        key = key[len("meta-"):]
    return key


def find_variant(ref: str, directory: Path | None = None) -> ModelCard | None:
    """A card standing for `ref` when `ref` is a variant of a carded model (see family_key): a
    copy of the card under `ref`'s name, with its kind and a note saying whose numbers it uses."""
    import dataclasses

    key = family_key(ref)
    cards = load_cards(directory)
    for c in cards:  # an explicitly listed variant (its own overrides) wins
        for vid, v in c.variants.items():
            if vid.lower() == ref.strip().lower() or family_key(vid) == key:
                note = f"shape from the {c.id} card with {vid}'s differences ({', '.join(sorted(v.get('config', {})))})"
                return dataclasses.replace(c, id=ref, kind=_variant_kind(ref, c), config={**c.config, **v.get("config", {})},
                                           source=_as_list(v.get("source")) or c.source, notes=note, variants={})
    matches = [c for c in cards if family_key(c.id) == key or any(family_key(a) == key for a in c.aliases)]
    if not matches:
        return None
    kinds = [_variant_kind(ref, c) for c in matches]
    best = next((c for c, k in zip(matches, kinds) if c.kind == k), matches[0])
    return dataclasses.replace(best, id=ref, kind=_variant_kind(ref, best), variants={},
                               notes=f"shape from the {best.id} card (same family and size: base, instruct and "
                                     "mirrors share the architecture)")


def _variant_kind(ref: str, card: ModelCard) -> str:
    g = guess_kind(ref)
    if g != "unknown":
        return g
    # no marker in the name: the card's kind when its name has none either, else the base sibling
    return card.kind if guess_kind(card.id) == "unknown" else "base"
