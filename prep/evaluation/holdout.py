"""The probe's dev set: a seeded hold-out of training rows that shares no positive with the rows left to train on.

Rows that share a positive are kept on one side: a dev query whose positive was also a training positive
would be answered from memory, and the probe would reward the setting that memorised best. Pure functions:
the same rows, fraction and seed give the same split.
"""

from __future__ import annotations

from prep import seeds


def linked_groups(positives: list[list[str]]) -> list[list[int]]:
    """Rows grouped so that two rows sharing a positive (directly or through others) are in one group; each
    group lists its rows in order, groups ordered by their first row."""
    parent = list(range(len(positives)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    owner: dict[str, int] = {}
    for index, texts in enumerate(positives):
        for text in texts:
            if text in owner:
                parent[root(index)] = root(owner[text])
            else:
                owner[text] = index
    groups: dict[int, list[int]] = {}
    for index in range(len(positives)):
        groups.setdefault(root(index), []).append(index)
    return sorted(groups.values(), key=lambda group: group[0])


def hold_out(positives: list[list[str]], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training rows, dev rows), each in input order: whole groups of ``linked_groups``, drawn in a seeded order,
    go to dev until it holds ``fraction`` of the rows (rounded, at least one; at least one row left to train)."""
    groups = linked_groups(positives)
    wanted = max(1, round(fraction * len(positives)))
    dev: list[int] = []
    for number in seeds.stream(seed, seeds.HOLDOUT).permutation(len(groups)).tolist():
        if len(dev) >= wanted:
            break
        if len(dev) + len(groups[number]) < len(positives):
            dev += groups[number]
    dev_rows = set(dev)
    return [i for i in range(len(positives)) if i not in dev_rows], sorted(dev_rows)
