"""Resolving a model reference (demo / local dir / hub id) before anything heavy is loaded.

transformers' own errors here are misleading (a missing local dir reads as "Repo id must be in
the form…") and a hub id without network retries for ~46 s. So we check first and fail in one
line, and we set HF_HUB_OFFLINE=1 whenever the hub cannot be reached so later loads fail at once.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from tui_tuner.errors import UserError

HUB_HOST = "huggingface.co"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_reachable_cache: bool | None = None


def hub_reachable(timeout: float = 2.0) -> bool:
    """One cheap TCP connect to the hub (cached). False when HF_HUB_OFFLINE is already set."""
    global _reachable_cache
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    if _reachable_cache is None:
        try:
            with socket.create_connection((HUB_HOST, 443), timeout=timeout):
                _reachable_cache = True
        except OSError:
            _reachable_cache = False
    return _reachable_cache


def go_offline_if_unreachable() -> bool:
    """Set HF_HUB_OFFLINE=1 (for this process and its children) when the hub is unreachable."""
    if not hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        return True
    return False


def in_hf_cache(repo_id: str, filename: str = "config.json") -> str | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, filename)
    except Exception:
        return None
    return hit if isinstance(hit, str) else None


def resolve_model_ref(ref: str, *, build_demo: bool = True, progress=None) -> str:
    """Return something `from_pretrained` can load: a local directory or a hub id.

    'demo' builds the offline demo model on first use; a .gguf file is dequantized once into a
    model folder (build_demo=False only checks the file). progress(message, fraction) hears about
    that work. Raises UserError with one clear line for a missing local path, a directory without
    config.json, or a hub id that is neither cached nor reachable.
    """
    ref = ref.strip()
    if ref == "demo":
        from tui_tuner import demo

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
    if not _HUB_ID.match(ref):
        raise UserError(f"'{ref}' is neither an existing folder nor a valid Hugging Face model id",
                        hint="use owner/name, e.g. meta-llama/Llama-3.2-1B-Instruct, or a local path")
    if in_hf_cache(ref):
        return ref
    if go_offline_if_unreachable():
        raise UserError(f"cannot reach {HUB_HOST} and '{ref}' is not in the Hugging Face cache",
                        hint="connect to the internet once to download it, or use a local folder or 'demo'")
    return ref
