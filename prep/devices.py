"""Per-job GPU assignment in a multirun, so parallel jobs do not all pile onto GPU 0."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


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
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    config = HydraConfig.get()
    return int(config.job.num) if config.mode == RunMode.MULTIRUN else None


def assign(cfg: Any) -> None:
    """Set ``cfg.hardware.devices`` for this multirun job when ``hardware.per_job_device`` is on."""
    devices = cfg.hardware.devices
    if not cfg.hardware.per_job_device or (isinstance(devices, str) and devices.startswith("cpu")):
        return
    number = multirun_job_number()
    if number is None:
        return
    import torch

    chosen = job_device(devices, number, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if chosen != devices:
        log.info("multirun job %d runs on %s (hardware.per_job_device=true)", number, chosen)
        cfg.hardware.devices = chosen
