"""Summary statistics and the short table a run logs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PERCENTILES = (5, 25, 50, 75, 95)


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """Count, mean and percentiles, rounded to 4 places; ``None`` values for an empty list."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return {"count": 0, "mean": None, **{f"p{p}": None for p in PERCENTILES}}
    result: dict[str, float | int | None] = {"count": int(array.size), "mean": round(float(array.mean()), 4)}
    for p, value in zip(PERCENTILES, np.percentile(array, PERCENTILES)):
        result[f"p{p}"] = round(float(value), 4)
    return result


def table(rows: dict[str, dict[str, float | int | None]]) -> str:
    """A fixed-width table of ``describe`` results, one line per name."""
    columns = ["count", "mean"] + [f"p{p}" for p in PERCENTILES]
    width = max(len(name) for name in rows) if rows else 4
    lines = [" " * width + "".join(f"{c:>9}" for c in columns)]
    for name, values in rows.items():
        cells = []
        for column in columns:
            value = values.get(column)
            cells.append(f"{'-':>9}" if value is None else (f"{value:>9d}" if isinstance(value, int)
                                                              else f"{value:>9.4f}"))
        lines.append(f"{name:<{width}}" + "".join(cells))
    return "\n".join(lines)
