"""The parsers and checks of settings whose values are more than their type says (ranges written as ``A-B``,
margins, bucket boundaries, the mining rules' combinations): ``settings.check`` runs them all once before any
work, and the code that uses a value parses it with the same function."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prep.errors import UsageError

if TYPE_CHECKING:
    from prep.config.schema import MinerConfig

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE_STRING = re.compile(rf"^\s*({_NUMBER})\s*-\s*({_NUMBER})\s*$")


class RangeError(UsageError):
    """A ``range_for_sampling`` or ``similarity_range`` value that cannot be used."""


def _two_numbers(value: object, key: str) -> tuple[float, float]:
    if isinstance(value, str):
        match = _RANGE_STRING.match(value)
        if not match:
            raise RangeError(f"{key}: '{value}' is not a range; write it as 'LOW-HIGH' (e.g. 2-200) or [LOW, HIGH]")
        return float(match.group(1)), float(match.group(2))
    if isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        items = list(value)
        if len(items) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            bad = [v for v in items if not math.isfinite(v)]
            if bad:
                raise RangeError(f"{key}: {value!r} holds {bad[0]}; give two finite numbers")
            return float(items[0]), float(items[1])
    raise RangeError(f"{key}: {value!r} is not a range; write it as 'LOW-HIGH' (e.g. 2-200) or [LOW, HIGH]")


def parse_rank_range(value: object, key: str = "miner.range_for_sampling") -> tuple[int, int]:
    """``'2-200'`` or ``[2, 200]`` -> ``(2, 200)``: whole ranks, ``0 <= low < high``."""
    low, high = _two_numbers(value, key)
    if low != int(low) or high != int(high):
        raise RangeError(f"{key}: ranks must be whole numbers, got {value!r}")
    if low < 0 or high <= low:
        raise RangeError(f"{key}: need 0 <= LOW < HIGH, got {value!r}")
    return int(low), int(high)


def parse_similarity_range(value: object, key: str = "miner.similarity_range") -> tuple[float, float] | None:
    """``'0.3-0.8'`` or ``[0.3, 0.8]`` -> ``(0.3, 0.8)``, inclusive; ``None`` means no bound."""
    if value is None:
        return None
    low, high = _two_numbers(value, key)
    if high < low:
        raise RangeError(f"{key}: LOW must not exceed HIGH, got {value!r}")
    return low, high


def check_margin(value: float | None, key: str) -> float | None:
    """A margin is null or a number >= 0 (a relative margin also < 1)."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise RangeError(f"{key}: {value} is not a margin; give a finite number or null")
    if value < 0 or (key.endswith("relative_margin") and value >= 1):
        bound = "0 <= value < 1" if key.endswith("relative_margin") else "value >= 0"
        raise RangeError(f"{key}: need {bound}, got {value}")
    return float(value)


def parse_length_list(values: Any) -> list[int]:
    """Sorted, distinct, non-negative whole boundaries; an unsorted list is sorted (as FlagEmbedding)."""
    values = list(values)
    if not values:
        raise UsageError("splitter.length_list is empty: give at least one boundary, e.g. [0, 500, 1000]")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"splitter.length_list: {value!r} is not a whole number >= 0 (got {values})")
    ordered = sorted(values)
    if len(set(ordered)) != len(ordered):
        raise UsageError(f"splitter.length_list: boundaries repeat, so a bucket would be empty (got {values})")
    return ordered


def check_mining(miner: MinerConfig) -> None:
    """The mining rules' values and combinations (each error names the key)."""
    parse_rank_range(miner.range_for_sampling)
    if miner.negative_number < 0:
        raise RangeError(f"miner.negative_number must be >= 0, got {miner.negative_number}")
    if miner.max_positive_rank is not None and miner.max_positive_rank < 1:
        raise RangeError(f"miner.max_positive_rank must be >= 1 (or null), got {miner.max_positive_rank}")
    threshold = miner.other_positive_threshold
    if threshold is not None and (math.isnan(threshold) or not -1 <= threshold <= 1):
        raise RangeError(f"miner.other_positive_threshold: need a similarity in [-1, 1] (or null), got {threshold}")
    if threshold is not None and not miner.exclude_other_positives:
        raise RangeError("miner.other_positive_threshold applies with miner.exclude_other_positives=true")
    similarity_window = parse_similarity_range(miner.similarity_range)
    if similarity_window and miner.normalize_embeddings and not all(-1 <= b <= 1 for b in similarity_window):
        raise RangeError(f"miner.similarity_range: {miner.similarity_range!r} reaches outside [-1, 1], where the "
                         "cosine of normalised embeddings lies")
    for key in ("relative_margin", "absolute_margin", "teacher_relative_margin", "teacher_absolute_margin"):
        check_margin(getattr(miner, key), f"miner.{key}")
