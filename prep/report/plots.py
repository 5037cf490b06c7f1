"""PNG plots of mined similarities: one run's histogram, and a sweep's jobs side by side.

``matplotlib`` is imported inside the functions that use it: only the plots need it, after a run's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prep.io.atomic import atomic_file


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> None:
    """Write the PNG atomically, like every other output."""
    with atomic_file(path, overwrite=True, binary=True) as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")


def similarity_histogram(path: Path, positives: Sequence[float], negatives: Sequence[float], title: str) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4))
    values = np.concatenate([np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)])
    low, high = (values.min(), values.max()) if values.size else (0.0, 1.0)
    bins = np.linspace(low, high, 41) if high > low else np.linspace(low - 0.5, high + 0.5, 41)
    # Densities: there are many more negatives than positives, and the shapes are what matter. A kind with no
    # value (miner.negative_number=0) is named in the legend but not drawn: its density is undefined.
    for name, series, colour in (("negatives", negatives, "tab:red"), ("positives", positives, "tab:blue")):
        label = f"{name} ({len(series)})"
        if len(series):
            axes.hist(series, bins=bins, alpha=0.6, density=True, label=label, color=colour)
        else:
            axes.plot([], [], color=colour, label=label)
    axes.set_xlabel("similarity to the query")
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend()
    _save(figure, path)
    plt.close(figure)


def sweep_boxplot(path: Path, jobs: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> None:
    """Per job, the negatives' similarity distribution beside the positives' (box plots)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(max(6, 1.3 * len(jobs) + 2), 5))
    positions = np.arange(len(jobs)) * 3.0
    negatives = [np.asarray(n, dtype=float) for _, _, n in jobs]
    positives = [np.asarray(p, dtype=float) for _, p, _ in jobs]
    box_n = axes.boxplot(negatives, positions=positions, widths=1.0, patch_artist=True, showfliers=False)
    box_p = axes.boxplot(positives, positions=positions + 1.1, widths=1.0, patch_artist=True, showfliers=False)
    for patch in box_n["boxes"]:
        patch.set_facecolor("tab:red")
    for patch in box_p["boxes"]:
        patch.set_facecolor("tab:blue")
    axes.set_xticks(positions + 0.55, [label for label, _, _ in jobs], fontsize=8)
    axes.set_ylabel("similarity to the query")
    axes.legend([box_n["boxes"][0], box_p["boxes"][0]], ["negatives", "positives"]) if jobs else None
    axes.set_title("mined negatives against positives, per job")
    _save(figure, path)
    plt.close(figure)


def bar_chart(path: Path, labels: Sequence[str], values: Sequence[float], title: str, xlabel: str,
              highlight: int | None = None) -> None:
    """Horizontal bars, one per label, each with its value written beside it; ``highlight`` in another colour."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.4))
    colours = ["tab:orange" if index == highlight else "tab:gray" for index in range(len(labels))]
    positions = np.arange(len(labels))
    axes.barh(positions, values, color=colours)
    axes.set_yticks(positions, labels, fontsize=9)
    axes.invert_yaxis()  # the first label on top, as in the tables
    for position, value in zip(positions, values):
        axes.text(value, position, f" {value:g}", va="center", fontsize=8)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    axes.margins(x=0.15)
    _save(figure, path)
    plt.close(figure)


def difference_plot(path: Path, labels: Sequence[str], differences: Sequence[tuple[float, float, float]],
                    metric: str) -> None:
    """Each setting's difference from the best (a point) with its interval (a bar), a line at 0: a bar that
    crosses the line is a setting not distinguishable from the best."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(labels) + 1.5))
    positions = np.arange(len(labels))[::-1]
    means = np.asarray([d[0] for d in differences])
    errors = np.asarray([[d[0] - d[1] for d in differences], [d[2] - d[0] for d in differences]])
    tied = [d[1] <= 0.0 <= d[2] for d in differences]
    colours = ["tab:blue" if t else "tab:grey" for t in tied]
    for position, mean, low, high, colour in zip(positions, means, errors[0], errors[1], colours):
        axes.errorbar(mean, position, xerr=[[low], [high]], fmt="o", color=colour, capsize=4)
    axes.axvline(0.0, color="tab:orange", linewidth=1)
    axes.set_yticks(positions, labels)
    axes.set_xlabel(f"{metric} minus the best setting's (95% interval; blue: not distinguishable from it)")
    _save(figure, path)
    plt.close(figure)
