"""Nested settings and summaries as dotted keys (``miner.range_for_sampling``): the one flattening that the Python
API, step=merge's settings check, the reports and the tracker share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def dotted(data: dict[str, Any], prefix: str = "", leaf: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """Every leaf of nested dicts under its dotted key, in order; lists, empty dicts and dicts ``leaf`` says are
    whole (a distribution's statistics, say) are leaves."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value and not (leaf and leaf(value)):
            flat.update(dotted(value, f"{prefix}{key}.", leaf))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
