"""Device and dtype policy, in one place: which device a job runs on, and which dtype its forward passes use.

The dtype is also part of every embedding and score cache key (``effective_dtype``), so the policy that
chooses it and the key that records it cannot disagree.

``torch`` and ``transformers`` are imported inside the functions that use them: loading is slow, and a config error
or ``--help`` answers without waiting for it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from prep.errors import UsageError
from prep.progress import on_terminal

if TYPE_CHECKING:
    from prep.config.schema import Config, HardwareConfig

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def configure_process() -> None:
    """Process settings read when torch first runs a kernel; called when a step starts, never at import.

    oneDNN keeps a compiled kernel (and its scratch memory) per tensor shape; with length-sorted batches
    every batch has new shapes, and the default cache of 1,024 entries grew a run's memory by 0.5 GB.
    Four entries still let the layers of one forward pass share them. A value the user set is kept.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "4")
    if not on_terminal():  # the libraries' own bars would write escape sequences into a log (prep/progress.py)
        for name in ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(name, "1")
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()


def before_model_imports() -> None:
    """Called before FlagEmbedding is first imported: transformers then leaves scikit-learn out.

    transformers imports scikit-learn (and scipy with it) when its generation code loads, which every model class
    pulls in, for one use: the candidate threshold of assisted generation (``roc_curve``). Nothing prep runs
    generates text, and that import is about 1 s of a 2-core machine's start, a fifth of the time before the first
    forward pass. transformers reads its availability flag when that code is imported, so the flag is cleared
    before, unless the code is loaded already (tests/models/test_runtime.py fails if transformers changes this).
    """

    if "transformers.generation.candidate_generator" in sys.modules:
        return
    from transformers.utils import import_utils

    if getattr(import_utils, "_sklearn_available", False):
        import_utils._sklearn_available = False


def check_devices(hardware: HardwareConfig) -> None:
    """A GPU that ``hardware`` asks for must be there: one named in ``hardware.devices``, or every visible one
    (``hardware=multi_gpu``: devices null with the search on the GPU). Said at start-up, not after the data is
    read."""
    devices = hardware.devices
    named = [devices] if isinstance(devices, (str, int)) else list(devices or [])
    wants_gpu = any(isinstance(d, int) or str(d).startswith("cuda") for d in named)
    if not wants_gpu and not (devices is None and hardware.use_gpu_for_searching):
        return
    import torch

    if not torch.cuda.is_available():
        asked = (f"hardware.devices={devices}" if wants_gpu else
                 "hardware.devices=null with hardware.use_gpu_for_searching=true (hardware=multi_gpu)")
        raise UsageError(f"{asked}: torch sees no CUDA GPU on this machine; use hardware=cpu")


def devices_argument(hardware: HardwareConfig) -> Any:
    """``hardware.devices`` as FlagEmbedding takes it (None, "cpu", "cuda:0", [0, 1], ...)."""
    devices = hardware.devices
    if devices is None or isinstance(devices, (str, int)):
        return devices
    return list(devices)


def cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (Linux), or an empty set where they cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def on_cpu(hardware: HardwareConfig) -> bool:
    devices = hardware.devices
    return isinstance(devices, str) and devices.startswith("cpu")


def on_gpu(hardware: HardwareConfig) -> bool:
    """Whether the forward passes run on a GPU: one is named, or none is named and torch sees one."""
    devices = hardware.devices
    if devices is None:
        import torch

        return torch.cuda.is_available()
    return not on_cpu(hardware)


def use_bf16(hardware: HardwareConfig, flags: set[str] | None = None) -> bool:
    """``hardware.use_bf16`` resolved: ``auto`` means bf16 on a CPU with AMX or AVX512-BF16, else not."""
    value = hardware.use_bf16
    if isinstance(value, bool):
        return value
    if not on_cpu(hardware):
        return False  # GPUs take use_fp16
    found = cpu_flags() if flags is None else flags
    return any(flag in found for flag in BF16_CPU_FLAGS)


def effective_dtype(hardware: HardwareConfig) -> str:
    """The dtype the forward passes really run in (FlagEmbedding runs fp16 models in fp32 on the CPU)."""
    if use_bf16(hardware):
        return "bf16"
    if not hardware.use_fp16 or on_cpu(hardware):
        return "fp32"
    if hardware.devices is None:
        import torch

        return "fp16" if torch.cuda.is_available() else "fp32"
    return "fp16"


def describe_dtype(hardware: HardwareConfig) -> str:
    """The dtype in words, with the reason when ``use_bf16=auto`` chose it."""
    dtype = effective_dtype(hardware)
    if hardware.use_bf16 == "auto" and on_cpu(hardware):
        found = sorted(set(BF16_CPU_FLAGS) & cpu_flags())
        reason = f"this CPU has {', '.join(found)}" if found else "this CPU has neither AMX nor AVX512-BF16"
        return f"{dtype} (hardware.use_bf16=auto: {reason})"
    return dtype


def torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def job_device(devices: Any, job_number: int | None, gpu_count: int) -> Any:
    """The device of multirun job ``job_number``: GPU ``job_number mod gpu_count``.

    Applies when ``devices`` names one GPU (``cuda``, ``cuda:0``) or is null and several GPUs are
    visible; a CPU, an explicit list of GPUs (``hardware=multi_gpu``) or a single visible GPU (Slurm
    gives each job its own through ``CUDA_VISIBLE_DEVICES``) is left as it is.
    """
    if job_number is None or gpu_count <= 1:
        return devices
    if devices is None or (isinstance(devices, str) and devices.startswith("cuda")):
        return f"cuda:{job_number % gpu_count}"
    return devices


def multirun_job_number() -> int | None:
    """This job's number in a Hydra multirun, or None in a single run (or outside Hydra)."""

    if not HydraConfig.initialized():
        return None
    config = HydraConfig.get()
    return int(config.job.num) if config.mode == RunMode.MULTIRUN else None


def with_job_device(settings: Config) -> Config:
    """``settings`` with this multirun job's device, when ``hardware.per_job_device`` is on (see ``job_device``)."""
    hardware = settings.hardware
    devices = hardware.devices
    if not hardware.per_job_device or (isinstance(devices, str) and devices.startswith("cpu")):
        return settings
    number = multirun_job_number()
    if number is None:
        return settings
    import torch

    chosen = job_device(devices, number, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if chosen == devices:
        return settings
    log.info("multirun job %d runs on %s (hardware.per_job_device=true)", number, chosen)
    return dataclasses.replace(settings, hardware=dataclasses.replace(hardware, devices=chosen))
