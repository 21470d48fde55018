"""The Hugging Face hub: can it be reached, and what is already in its local cache.

A hub id without network retries for ~46 s inside transformers, so callers ask first and we set
HF_HUB_OFFLINE=1 whenever the hub cannot be reached: later loads then fail at once. Which kind of
model a reference names (demo, local folder, hub id, .gguf) is decided in `tui_tuner.models.refs`.
"""

from __future__ import annotations

import os
import socket

HUB_HOST = "huggingface.co"
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
