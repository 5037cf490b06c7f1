"""Checks that a model can be loaded here, before any data is read.

``huggingface_hub`` is imported inside the functions that use it: loading is slow, and a config error or ``--help``
answers without waiting for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from prep.errors import UsageError

OFFLINE_HELP = ("this machine is offline (HF_HUB_OFFLINE=1): download the model where there is a network "
                "(`huggingface-cli download NAME`, then copy the folder) and pass its folder as {key}=/path, "
                "or use the bundled offline defaults (miner=minilm, reranker=embedder)")


def looks_like_path(name: str) -> bool:
    """A hub name is ``org/name`` or ``name``; anything absolute, relative, deeper or existing is a path."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or Path(name).expanduser().exists()


def in_hub_cache(name: str, cache_dir: str | None = None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json", cache_dir=cache_dir)
    return isinstance(found, str)


def check_model_source(name: str | None, key: str, cache_dir: str | None = None) -> None:
    """A local folder must exist; a hub name must be cached when the hub is off (HF_HUB_OFFLINE=1)."""
    if not name:
        raise UsageError(f"{key} is not set: name a local folder or a hub model")
    if looks_like_path(name):
        if not Path(name).expanduser().exists():
            raise UsageError(f"{key}: no such folder '{name}'")
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline and not in_hub_cache(name, cache_dir):
        raise UsageError(f"{key}: '{name}' is a hub name that is not in the local Hugging Face cache, and "
                         + OFFLINE_HELP.format(key=key))
