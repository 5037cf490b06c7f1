"""The Python API: the command line's steps as functions for notebooks and other tools.

    import prep
    mined, summary = prep.mine("train.parquet", miner={"negative_number": 7}, sampling="top_k")
    scored, _ = prep.score(mined, reranker="bge_reranker_base", output_format="n-tuple")
    buckets, _ = prep.split(scored)          # a DatasetDict, one dataset per length bucket

``data`` is a path or source the command line takes as ``input`` (a file, a folder, a dataset id) or a
``datasets.Dataset`` (saved into the run folder first). Keyword arguments are the command line's keys:
a string for a config group picks its option (``miner="bge_base_en"``, ``sampling="top_k"``), a dict
sets keys inside a group (``miner={"negative_number": 7}``), and a dotted name sets one key
(``**{"miner.negative_number": 7}``). The config is composed from the same ``conf/`` files as
``run.py``, so the keys, defaults, checks and cache are the same. Each call writes its run folder under
``outputs/<step>/<time>/`` (or ``run_dir=``) and returns ``Result(dataset, summary)``: the output
read back through ``datasets`` (memory-mapped), and the run's ``summary.json``.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict

from prep.config.dotted import dotted
from prep.config.schema import OPTION_GROUPS, register
from prep.config.settings import settings_of
from prep.errors import PrepError, UsageError
from prep.io.saved import quiet_datasets
from prep.steps import run_step

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
OPTION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a config file's name: what Hydra reads as a choice


class Result(NamedTuple):
    dataset: Dataset | DatasetDict  # a DatasetDict of buckets for split
    summary: dict[str, Any]


def compose(step: str, overrides: dict[str, Any]) -> DictConfig:
    """The config ``python run.py step=STEP ...`` would get, with ``overrides`` applied (checked as the command
    line's are: an unknown key or a wrong type raises, naming the key)."""

    register()
    if "step" in overrides:
        raise UsageError(f"step={overrides['step']!r}: each function runs its own step (prep.mine, prep.score, "
                         "prep.split, ...); leave step out")
    for name in OPTION_GROUPS:
        if isinstance(overrides.get(name), str) and not OPTION_NAME.fullmatch(overrides[name]):
            raise UsageError(f"{name}={overrides[name]!r}: not an option's name (a file of conf/{name}/, e.g. "
                             f"{name}=...); set keys inside the group with a dict: {name}={{'key': value}}")
    choices = [f"{name}={overrides.pop(name)}" for name in OPTION_GROUPS if isinstance(overrides.get(name), str)]
    values = dotted(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            cfg = hydra_compose(config_name="config", overrides=[f"step={step}", *choices])
    except HydraException as exc:  # an option that is not in conf/ (miner="nope", hardware="tpu")
        raise UsageError(f"{' '.join(choices)}: {str(exc).splitlines()[0]}") from None
    finally:
        GlobalHydra.instance().clear()
    for key, value in values.items():
        if not _has_key(cfg, key):
            raise UsageError(f"unknown config key '{key}' (see prep/config/schema.py for the keys)")
        try:
            OmegaConf.update(cfg, key, value, merge=False)
        except Exception as exc:
            raise UsageError(f"{key}={value!r}: {str(exc).splitlines()[0]}") from None
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg



def _has_key(cfg: DictConfig, key: str) -> bool:
    """Whether the dotted ``key`` is in ``cfg``, without resolving its value (a default such as the bundled model's
    ``${pkg_model:...}`` is replaced, never looked up: its package may be missing)."""

    parent_key, _, name = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    return isinstance(parent, DictConfig) and name in parent.keys()


def _run(step: str, data: Any, overrides: dict[str, Any]) -> Result:
    overrides = dict(overrides)
    run_dir = Path(overrides.pop("run_dir", None) or Path(overrides.get("outputs_dir", "outputs")) / step /
                   time.strftime("%Y-%m-%d_%H-%M-%S")).absolute()
    run_dir = _fresh(run_dir)
    overrides["run_dir"] = str(run_dir)
    cfg = compose(step, overrides)  # a bad key or value fails here, before anything is written
    settings_of(cfg)  # and so do the checks of values (a negative seed, a margin past 1)
    run_dir.mkdir(parents=True)
    try:
        if data is not None:
            cfg.input = _input_of(data, run_dir)
        summary = run_step(cfg)
    except PrepError:  # refused at its start (a device that is not there, bad rows): the fresh folder goes too
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return Result(read_output(summary, step), summary)


def _fresh(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3`` ... when two calls start in the same second."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def _input_of(data: Any, run_dir: Path) -> str:
    """A path or dataset id as it is; a ``datasets.Dataset`` saved into the run folder (``input/``)."""
    if isinstance(data, (str, Path)):
        return str(data)
    import datasets

    if isinstance(data, datasets.Dataset):
        if len(data) == 0:
            raise UsageError("data: the Dataset holds no rows")

        folder = run_dir / "input"
        with quiet_datasets():
            data.save_to_disk(str(folder))
        return str(folder)
    raise UsageError(f"data: a path, a dataset id or a datasets.Dataset, got {type(data).__name__}")


def read_output(summary: dict[str, Any], step: str) -> Dataset | DatasetDict:
    """The step's output through ``datasets``: a Dataset, or for ``split`` a DatasetDict of its buckets."""
    import datasets

    output = Path(summary["output"])
    arrow_cache = Path(summary["summary"]).parent / ".datasets"  # the Arrow copies of JSON lines, in the run folder
    if step == "split":
        buckets = {}
        for path in sorted(output.iterdir()):
            if not path.name.startswith("."):
                buckets[path.name.split(".")[0]] = _load(path, datasets, arrow_cache)
        return datasets.DatasetDict(buckets)
    return _load(output, datasets, arrow_cache)


def _load(path: Path, datasets: ModuleType, arrow_cache: Path) -> Dataset:
    if path.is_dir():
        return datasets.load_from_disk(str(path))
    builder = "parquet" if path.suffix == ".parquet" else "json"
    if builder == "json" and path.stat().st_size == 0:  # every row left out (n-tuple rows short): no rows to load
        return datasets.Dataset.from_dict({})
    with quiet_datasets():
        return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=str(arrow_cache))


def mine(data: Any = None, **overrides: Any) -> Result:
    """``step=mine`` on ``data`` (default: the bundled sample)."""
    return _run("mine", data, overrides)


def score(data: Any = None, **overrides: Any) -> Result:
    """``step=score`` on ``data`` (mined rows: a path, a dataset id or a ``datasets.Dataset``)."""
    return _run("score", data, overrides)


def split(data: Any = None, **overrides: Any) -> Result:
    """``step=split`` on ``data``; the buckets come back as a ``DatasetDict`` keyed by bucket name."""
    return _run("split", data, overrides)
