"""Where and how a run computes: the device, its CPU threads, its numeric precision and its seeds."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

PRECISIONS = ("bf16", "fp16", "fp32")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is cuda when a GPU is visible, else cpu; cuda without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here (torch {torch.__version__}); "
                         "train on CPUs instead: model.train --device cpu, search.run --gpus-per-trial 0")
    return device


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(threads: int) -> int:
    """Give torch ``threads`` intra-op threads (0: every CPU we may use).

    Ray sets OMP_NUM_THREADS=1 in its workers, which would leave a trial with 4 CPUs on one
    thread; the trial passes its CPU count here instead.
    """
    n = threads or available_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def precision(device: torch.device | str, amp: bool = True) -> str:
    """The arithmetic of a run: "bf16" | "fp16" (autocast) or "fp32"."""
    device = torch.device(device)
    if not amp or device.type != "cuda":
        # CPU stays fp32: without AMX, bf16 convolutions are slower than fp32 ones.
        return "fp32"
    # bf16 runs on tensor cores from Ampere (compute capability 8.0) on. Volta and Turing
    # (V100, T4) only emulate it, slowly, but have fp16 tensor cores; fp16's narrow range
    # needs loss scaling (grad_scaler), bf16's fp32-sized exponent does not.
    return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"


def autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (disabled for fp32)."""
    dtype = _AUTOCAST_DTYPES.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def grad_scaler(precision: str) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 runs (which are always on CUDA); None otherwise."""
    return torch.amp.GradScaler("cuda") if precision == "fp16" else None


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that timings are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# Seeds


def epoch_seed(seed: int, epoch: int) -> int:
    # Every epoch reseeds from (seed, epoch), so a resumed run shuffles and augments exactly
    # like an uninterrupted one, whatever consumed random numbers before the interruption.
    return (seed * 1_000_003 + epoch) % 2**63


def seed_torch(seed: int, device: torch.device) -> None:
    """Seed torch's generator on the CPU, and on CUDA devices when ``device`` is one."""
    if device.type == "cuda":
        torch.manual_seed(seed)  # the CPU's and every GPU's generator
    else:
        # The CPU's only: torch.manual_seed also queues a seed for CUDA, and a CPU run stays off CUDA.
        torch.default_generator.manual_seed(seed)


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    seed_torch(seed, device)
