"""🤗 datasets' own folders and logging: whether a folder holds a ``save_to_disk`` dataset, and ``datasets``'
progress bars kept out of the run's log."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


def is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Keeps ``datasets``' progress bars out of the run's log while it converts, loads or saves a table."""
    from datasets.utils import logging as datasets_logging

    was_enabled = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            datasets_logging.enable_progress_bar()
