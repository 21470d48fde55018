"""Where models come from, and reading a model's config.json without loading its weights.

Sources, in the order a reference is resolved:
- `demo`: the offline demo model built by `tui_tuner.demo`;
- a local directory holding config.json (+ weights);
- a .gguf file, dequantized once into a model folder under the tool's cache (models/gguf_source.py);
- the Hugging Face cache (`scan_cache_dir`; a missing cache is simply empty);
- a model card in presets/models/ (architecture numbers only: estimates work offline);
- a hub id: only config.json (and tokenizer files) are fetched; the weights come when training starts.
Everything here is torch-free so the wizard can call it in the UI process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tui_tuner import demo, hub
from tui_tuner.errors import UserError
from tui_tuner.models.catalog import ModelCard, find_card, guess_kind, load_cards
from tui_tuner.models.refs import HUB_ID, resolve_model_ref

TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json", "chat_template.jinja")


@dataclass
class ModelSource:
    """A model reference resolved to its config.json dict (no weights loaded)."""

    name: str  # what the user typed / the hub id
    origin: str  # demo | local | gguf | cache | card | hub
    config: dict[str, Any]
    path: str | None = None  # local directory or cached snapshot holding config.json
    card: ModelCard | None = None
    has_chat_template: bool | None = None
    size_on_disk: int | None = None
    revision: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.origin})"

    @property
    def kind(self) -> str:
        if self.card is not None:
            return self.card.kind
        if self.origin == "demo":
            return "chat" if self.has_chat_template else "base"
        return guess_kind(self.name, self.has_chat_template)


def _read_json(p: Path, what: str) -> dict[str, Any]:
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{p}: cannot read {what}: {str(e).splitlines()[0]}",
                        hint="is the model folder complete? re-download or re-save it") from None
    if not isinstance(d, dict):
        raise UserError(f"{p}: {what} is not a JSON object")
    return d


def _chat_template_in(directory: Path) -> bool | None:
    if (directory / "chat_template.jinja").is_file() or (directory / "chat_template.json").is_file():
        return True
    tc = directory / "tokenizer_config.json"
    if tc.is_file():
        try:
            return bool(json.loads(tc.read_text(encoding="utf-8")).get("chat_template"))
        except (OSError, ValueError):
            return None
    return None


def _from_dir(name: str, origin: str, directory: Path, **kw: Any) -> ModelSource:
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{directory} has no config.json", hint="point to a folder saved with save_pretrained")
    return ModelSource(name=name, origin=origin, config=_read_json(cfg_path, "config.json"), path=str(directory),
                       has_chat_template=_chat_template_in(directory), card=find_card(name), **kw)


def load_model_config(ref: str, *, allow_download: bool = False, build_demo: bool = False,
                      revision: str | None = None) -> ModelSource:
    """Resolve `ref` to its config.json without loading weights.

    allow_download: fetch config.json + tokenizer files of an uncached hub id (CLI path; the UI
    passes False to stay instant). build_demo: build the demo model when it is missing (CLI path).
    Raises UserError with one clear line for a bad path, an unknown id offline, etc.
    """
    ref = (ref or "").strip()
    if not ref:
        raise UserError("model: no model given", hint="give a hub id, a local folder, or 'demo'")
    if ref == "demo":
        d = demo.demo_path()
        if not (d / "config.json").is_file():
            if not build_demo:
                raise UserError("the demo model is not built yet", hint="run `tui-tuner demo --build-only` once")
            d = Path(resolve_model_ref("demo", build_demo=True))
        return _from_dir("demo", "demo", d)
    if ref.lower().endswith(".gguf"):
        return _from_gguf(ref, convert=build_demo, in_child=allow_download)
    p = Path(ref).expanduser()
    if ref.startswith(("/", ".", "~")) or p.exists() or ref.count("/") > 1:
        local = Path(resolve_model_ref(ref, build_demo=False))  # one-line errors for bad paths
        return _from_dir(ref, "local", local)
    if "@" in ref and revision is None:  # owner/name@revision
        ref, revision = (x.strip() for x in ref.split("@", 1))
    if not HUB_ID.match(ref):
        raise UserError(f"'{ref}' is neither an existing folder nor a valid Hugging Face model id",
                        hint="use owner/name, e.g. Qwen/Qwen2.5-0.5B-Instruct, a local path, or 'demo'")
    cached = _cached_config(ref, revision)
    if cached is not None:
        return _from_dir(ref, "cache", cached.parent, revision=revision)
    card = find_card(ref)
    if card is not None:
        return ModelSource(name=card.id, origin="card", config=dict(card.config), card=card, revision=revision)
    from tui_tuner.models.catalog import find_variant

    variant = find_variant(ref)
    online = allow_download and hub.hub_reachable()
    if variant is None and allow_download and not online:
        raise UserError(f"'{ref}' has no model card, is not in the Hugging Face cache, and {hub.HUB_HOST} cannot be "
                        "reached to read its config.json",
                        hint="run once online (its config.json is cached after), or save its config.json in a "
                             "folder and give that folder as the model; `tui-tuner models` lists the families known "
                             "offline (their base/instruct variants and mirrors work too)")
    if online:
        try:  # its own config.json is exact; a variant card is the offline answer
            return _download_config(ref, revision)
        except UserError:
            if variant is None:
                raise
    if variant is not None:
        return ModelSource(name=ref, origin="card", config=dict(variant.config), card=variant, revision=revision)
    if not allow_download:
        raise UserError(f"'{ref}' is not in the Hugging Face cache and has no model card",
                        hint=f"run `tui-tuner estimate --model {ref}` online to fetch its config.json, put its "
                             "config.json in a folder and give that folder, or pick a model from `tui-tuner models`")
    return _download_config(ref, revision)


def _from_gguf(ref: str, *, convert: bool, in_child: bool) -> ModelSource:
    """A .gguf file: config.json and tokenizer come from its folder dequantized once under the tool's
    cache. convert: do that here (imports torch; CLI and workers). in_child: do it in a child process,
    so a torch-free caller (the wizard) still gets the real config. Neither: only find it."""
    import sys

    from tui_tuner.models import gguf_source

    info = gguf_source.identify(ref)
    folder = gguf_source.find_converted(ref)
    if folder is None and convert:
        folder = gguf_source.ensure_converted(
            ref, lambda message, fraction=None: print(message, file=sys.stderr, flush=True))
    elif folder is None and in_child:
        import subprocess

        proc = subprocess.run([sys.executable, "-m", "tui_tuner.models.gguf_source", str(info.path)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            errs = [ln for ln in lines if ln.startswith("error: ")]
            raise UserError(errs[-1][len("error: "):] if errs else
                            f"{info.path.name}: dequantizing failed ({lines[-1] if lines else proc.returncode})",
                            hint="run `python -m tui_tuner.models.gguf_source FILE.gguf` to see the whole error")
        folder = gguf_source.find_converted(ref)
    if folder is None:
        raise UserError(f"{info.path.name} is not dequantized yet (done once; a minute or more)",
                        hint="it happens when training starts, or now with "
                             f"`tui-tuner estimate --model {ref}`")
    return _from_dir(ref, "gguf", folder, size_on_disk=info.size)


def hub_cache_dir() -> str:
    """The Hugging Face hub cache, resolved from the environment now (huggingface_hub reads it once
    at import): HF_HUB_CACHE, the legacy HUGGINGFACE_HUB_CACHE, HF_HOME/hub, else the default."""
    import os

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _cached_config(repo_id: str, revision: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json", revision=revision, cache_dir=hub_cache_dir())
    except Exception:  # malformed id for the cache layout, unreadable cache…
        return None
    return Path(hit) if isinstance(hit, str) else None


def _download_config(repo_id: str, revision: str | None) -> ModelSource:
    """Fetch config.json + tokenizer files only (a few KB); one clear line when that fails."""
    resolve_model_ref(repo_id, build_demo=False)  # raises the offline UserError when unreachable
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    try:
        cfg = Path(hf_hub_download(repo_id, "config.json", revision=revision, cache_dir=hub_cache_dir()))
    except GatedRepoError:
        raise UserError(f"{repo_id} is gated on the Hugging Face hub",
                        hint="accept its license on huggingface.co and run `hf auth login`") from None
    except RepositoryNotFoundError:
        raise UserError(f"{repo_id}: no such model on the Hugging Face hub (or it is private)",
                        hint="check the spelling, e.g. Qwen/Qwen2.5-0.5B-Instruct") from None
    except RevisionNotFoundError:
        raise UserError(f"{repo_id}: revision {revision!r} not found") from None
    except EntryNotFoundError:
        raise UserError(f"{repo_id} has no config.json", hint="is it a transformers model repository?") from None
    except LocalEntryNotFoundError:
        raise UserError(f"cannot download config.json of {repo_id} (offline?) and no model card matches it",
                        hint="connect to the internet once (it is cached after), or save its config.json in a folder "
                             "and give that folder as the model; `tui-tuner models` lists the families known "
                             "offline (their base/instruct variants and mirrors work too)") from None
    for fn in TOKENIZER_FILES:  # small; needed to show the chat template and tokenize later
        try:
            hf_hub_download(repo_id, fn, revision=revision, cache_dir=hub_cache_dir())
        except Exception:  # optional files
            pass
    return _from_dir(repo_id, "hub", cfg.parent, revision=revision)


# --- discovery -------------------------------------------------------------------------------
@dataclass
class ModelEntry:
    """One row of `tui-tuner models` / the wizard's model list."""

    name: str
    origin: str  # demo | cache | card
    kind: str
    params: int | None = None
    layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    context_length: int | None = None
    model_type: str | None = None
    lora_targets: list[str] = field(default_factory=list)
    size_on_disk: int | None = None
    revision: str | None = None
    path: str | None = None
    family: str | None = None
    exact: bool = True
    problem: str | None = None  # why its config could not be read

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def entry_for(src: ModelSource) -> ModelEntry:
    from tui_tuner.models.arch import arch_from_config

    e = ModelEntry(name=src.name, origin=src.origin, kind=src.kind, size_on_disk=src.size_on_disk,
                   revision=src.revision, path=src.path, family=src.card.family if src.card else None)
    try:
        a = arch_from_config(src.config, source=src.label)
    except UserError as err:
        e.problem = err.message
        return e
    e.params, e.layers, e.hidden_size = a.param_count, a.num_layers, a.hidden_size
    e.vocab_size, e.context_length, e.model_type = a.vocab_size, a.max_position_embeddings, a.model_type
    e.lora_targets, e.exact = a.linear_names(), a.exact
    return e


def cached_models(cache_dir: str | Path | None = None) -> list[ModelSource]:
    """Models in the Hugging Face cache that have a config.json (a missing cache is no error)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir or hub_cache_dir())
    except CacheNotFound:
        return []
    except OSError:
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model":
            continue
        revs = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
        for rev in revs:
            snap = Path(rev.snapshot_path)
            if (snap / "config.json").is_file():
                try:
                    src = _from_dir(repo.repo_id, "cache", snap, size_on_disk=repo.size_on_disk,
                                    revision=rev.commit_hash)
                except UserError:
                    continue
                if src.config.get("model_type") or src.config.get("architectures"):
                    out.append(src)
                break
    return out


def discover_models(*, include_cache: bool = True, include_cards: bool = True,
                    on_progress: Callable[[str], None] | None = None) -> list[ModelEntry]:
    """Demo + HF cache + model cards, as rows for a list (no network, no torch)."""
    rows: list[ModelEntry] = []
    d = demo.demo_path()
    if (d / "config.json").is_file():
        rows.append(entry_for(_from_dir("demo", "demo", d)))
    else:
        rows.append(ModelEntry(name="demo", origin="demo", kind="chat",
                               problem="not built yet: `tui-tuner demo --build-only`"))
    seen = {"demo"}
    if include_cache:
        if on_progress:
            on_progress("scanning the Hugging Face cache")
        for src in cached_models():
            rows.append(entry_for(src))
            seen.add(src.name.lower())
    if include_cards:
        for card in load_cards():
            if card.id.lower() in seen:
                continue
            rows.append(entry_for(ModelSource(name=card.id, origin="card", config=dict(card.config), card=card)))
    return rows
