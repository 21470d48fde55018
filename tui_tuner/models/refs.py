"""Resolving a model reference (demo / local folder / hub id / .gguf) before anything heavy is loaded.

transformers' own errors here are misleading (a missing local dir reads as "Repo id must be in
the form…"), so we check first and fail in one line. A hub id that is neither cached nor
reachable fails at once too (`tui_tuner.hub` sets HF_HUB_OFFLINE=1 for later loads).

- `resolve_model_ref`  what `from_pretrained` can load (builds the demo / converts a .gguf once).
- `local_model_dir`    the folder already on this machine, if any (no network, nothing built).
"""

from __future__ import annotations

import re
from pathlib import Path

from tui_tuner import demo, hub
from tui_tuner.errors import UserError

# owner/name (or a bare name) as the Hugging Face hub spells model ids
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def resolve_model_ref(ref: str, *, build_demo: bool = True, progress=None) -> str:
    """Return something `from_pretrained` can load: a local directory or a hub id.

    'demo' builds the offline demo model on first use; a .gguf file is dequantized once into a
    model folder (build_demo=False only checks the file). progress(message, fraction) hears about
    that work. Raises UserError with one clear line for a missing local path, a directory without
    config.json, or a hub id that is neither cached nor reachable.
    """
    ref = ref.strip()
    if ref == "demo":
        return str(demo.ensure_demo_model() if build_demo else demo.demo_path())
    if ref.lower().endswith(".gguf"):
        from tui_tuner.models import gguf_source

        if not build_demo:
            return str(gguf_source.find_converted(ref) or gguf_source.identify(ref).path)
        return str(gguf_source.ensure_converted(ref, progress))
    p = Path(ref).expanduser()
    is_pathy = ref.startswith(("/", ".", "~")) or p.exists() or ref.count("/") > 1
    if is_pathy:
        if not p.exists():
            raise UserError(f"model path does not exist: {p}",
                            hint="check the path, or give a Hugging Face id like Qwen/Qwen2.5-0.5B-Instruct")
        if not p.is_dir():
            raise UserError(f"model path is not a directory: {p}", hint="point to the folder holding config.json")
        if not (p / "config.json").is_file():
            raise UserError(f"{p} has no config.json", hint="point to a folder saved with save_pretrained")
        return str(p.resolve())
    if not HUB_ID.match(ref):
        raise UserError(f"'{ref}' is neither an existing folder nor a valid Hugging Face model id",
                        hint="use owner/name, e.g. meta-llama/Llama-3.2-1B-Instruct, or a local path")
    if hub.in_hf_cache(ref):
        return ref
    if hub.go_offline_if_unreachable():
        raise UserError(f"cannot reach {hub.HUB_HOST} and '{ref}' is not in the Hugging Face cache",
                        hint="connect to the internet once to download it, or use a local folder or 'demo'")
    return ref


def local_model_dir(name_or_path: str, revision: str | None = None) -> Path | None:
    """The local folder holding the model's files (a path, the demo, or a cached hub snapshot), or
    None when it is not on this machine. No network and no building: the UI calls this."""
    if name_or_path.strip() == "demo":
        return demo.demo_path()
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p.resolve()
    try:  # a hub id: its snapshot in the Hugging Face cache, if downloaded
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name_or_path.strip(), "config.json", revision=revision)
        return Path(hit).parent if isinstance(hit, str) else None
    except Exception:
        return None
