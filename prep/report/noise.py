"""How far a sweep's settings lie from its best one, beyond noise: paired differences over the dev queries.

Every job of a probe sweep at one seed is judged on the same dev queries (the hold-out depends on the rows and the
seed, not on the mining settings), so two settings can be compared query by query: the difference of their
per-query metric (``probe_queries.json`` beside each job's summary), paired within each seed, then pooled over the
seeds. Its interval comes from a paired bootstrap, seeded, in two levels: the seeds are drawn with replacement
(the training's own noise: with one seed the interval knows nothing of it), then each drawn seed's queries (the
dev set's). The bootstrap rather than a paired t-test because per-query nDCG@10 and reciprocal rank are bounded,
lumpy (many queries score 1 or 0 under both settings) and skewed, where a t interval's normal approximation is
poor on a few hundred queries; the percentile bootstrap assumes nothing of their shape (it is the usual test of
IR metrics: Sakai, SIGIR 2006). A setting whose interval holds 0 is not distinguishable from the best: tied.
Pure functions: the same per-query figures give the same intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prep.config.values import parse_rank_range, parse_similarity_range
from prep.errors import UsageError

RESAMPLES = 4000
LEVEL = 0.95


@dataclass(frozen=True)
class Difference:
    """A setting's metric minus the best setting's, pooled over the seeds both ran, with its interval."""

    mean: float
    low: float
    high: float
    seeds: int  # seeds paired
    queries: int  # dev queries paired, over those seeds

    @property
    def tied(self) -> bool:
        """Not distinguishable from the best: the interval holds 0."""
        return self.low <= 0.0 <= self.high


def paired_difference(pairs: list[tuple[np.ndarray, np.ndarray]], resamples: int = RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> Difference:
    """``pairs``: per seed, (this setting's per-query metric, the best's), aligned query by query. The mean over
    the seeds of the mean per-query difference, and its ``level`` percentile interval (two-level bootstrap)."""
    differences = [np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) for a, b in pairs]
    if not differences or any(d.size == 0 for d in differences):
        raise ValueError("need at least one seed of paired queries")
    rng = np.random.default_rng(seed)
    # Per seed, the mean difference of each resample of its queries: (seeds, resamples).
    query_means = np.stack([d[rng.integers(0, d.size, (resamples, d.size))].mean(axis=1) for d in differences])
    if len(differences) > 1:
        drawn = rng.integers(0, len(differences), (resamples, len(differences)))
        statistic = query_means[drawn, np.arange(resamples)[:, None]].mean(axis=1)
    else:
        statistic = query_means[0]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(statistic, [tail, 100.0 - tail])
    mean = float(np.mean([d.mean() for d in differences]))
    return Difference(round(mean, 6), round(float(low), 6), round(float(high), 6), len(differences),
                      int(sum(d.size for d in differences)))


def default_setting(configs: dict[tuple[str, ...], dict[str, Any]], defaults: dict[str, Any]
                    ) -> tuple[str, ...] | None:
    """The setting a user runs without a sweep, when the sweep ran it: every judged key (``defaults``: dotted
    names, ``miner.*`` sampling keys and ``probe.*``) that varies across the settings (``configs``: each setting's
    values by those names) at its schema default, FlagEmbedding's ranks 2-200 counting as the default window as
    much as the schema's 10-210 (``sampling=flagembedding``'s). Keys every setting shares are the sweep's context."""
    if len(configs) < 2:
        return None
    keys = sorted({key for config in configs.values() for key in config} & set(defaults))
    varying = [key for key in keys if len({repr(_normal(key, config.get(key))) for config in configs.values()}) > 1]
    for setting, config in configs.items():
        if all(_is_default(key, config.get(key), defaults[key]) for key in varying):
            return setting
    return None


def _is_default(key: str, value: Any, default: Any) -> bool:
    if key.endswith("range_for_sampling") and _normal(key, value) == (2, 200):
        return True
    return _normal(key, value) == _normal(key, default)


def _normal(key: str, value: Any) -> Any:
    """A setting's value as summaries and the schema both give it: ``"2-200"`` and ``[2, 200]`` alike."""
    try:
        if key.endswith("range_for_sampling"):
            return parse_rank_range(value)
        if key.endswith("similarity_range"):
            return parse_similarity_range(value)
    except UsageError:
        return value
    if isinstance(value, list):
        return tuple(value)
    return getattr(value, "value", value)


def verdict(labels: dict[tuple[str, ...], str], best: tuple[str, ...],
            differences: dict[tuple[str, ...], Difference | None], default: tuple[str, ...] | None) -> str:
    """The sweep's verdict in one line: the best and the settings it cannot be told from, or that nothing beats
    the default beyond noise."""
    if default is not None:
        against = differences.get(default)
        if default == best or (against is not None and against.tied):
            return f"no setting beats the default ({labels[default]}) beyond noise: keep the default"
    tied = [labels[s] for s, d in differences.items() if s != best and d is not None and d.tied]
    others = "not distinguishable from: " + ", ".join(tied) if tied else "every other setting is worse beyond noise"
    return f"best: {labels[best]}; {others}"
