"""Where and how a run computes: the device, its CPU threads, its numeric precision and its seeds."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is cuda when a GPU is visible, else cpu; cuda without a GPU is an error.

    A CUDA device also gets this project's cuDNN and TF32 settings (``set_cuda_backends``).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here (torch {torch.__version__}); "
                         "train on CPUs instead: model.train --device cpu, search.run --gpus-per-trial 0")
    if device.type == "cuda":
        set_cuda_backends()
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


# cuDNN and TF32 are process-wide torch flags; every CUDA run sets them the same way, on purpose:
# - cudnn.benchmark on. Every batch of a run has the same shape (the training loader drops the
#   last partial batch; evaluation adds one more shape), so cuDNN times its convolution
#   algorithms once per shape, in the first steps, and every later step runs the fastest one.
#   benchmarks.gpu_check measures resnet20 with it on and off.
# - TF32 off for fp32 matmuls and convolutions. Under autocast, the default, convolutions and
#   matmuls already run in bf16 or fp16, so TF32 would change almost nothing. A --no-amp run
#   is the fp32 reference that AMP is compared with, and TF32 (a 10-bit mantissa, as fp16's)
#   would quietly make it a third precision. torch's own default differs: TF32 on for cuDNN
#   convolutions, off for matmuls.
CUDNN_BENCHMARK = True
TF32 = False
_cuda_backends_set = False


def _new_tf32_api() -> bool:
    # torch >= 2.9 has per-backend fp32_precision; mixing it with allow_tf32 raises on read.
    return hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision")


def set_cuda_backends() -> dict:
    """Set cudnn.benchmark and TF32 as CUDNN_BENCHMARK and TF32 say; returns ``cuda_backends()``."""
    global _cuda_backends_set
    torch.backends.cudnn.benchmark = CUDNN_BENCHMARK
    if _new_tf32_api():
        torch.backends.cuda.matmul.fp32_precision = "tf32" if TF32 else "ieee"
        torch.backends.cudnn.conv.fp32_precision = "tf32" if TF32 else "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = TF32
        torch.backends.cudnn.allow_tf32 = TF32
    _cuda_backends_set = True
    return cuda_backends()


def cuda_backends() -> dict | None:
    """The cuDNN and TF32 flags in force, read back from torch; None if no CUDA device was set up here."""
    if not _cuda_backends_set:
        return None
    backends = torch.backends
    if _new_tf32_api():
        def tf32(*chain: str) -> bool:  # "none" inherits from the next, more general flag
            return next((p for p in chain if p != "none"), "ieee") == "tf32"

        matmul = tf32(backends.cuda.matmul.fp32_precision, backends.fp32_precision)
        conv = tf32(backends.cudnn.conv.fp32_precision, backends.cudnn.fp32_precision, backends.fp32_precision)
    else:
        matmul, conv = backends.cuda.matmul.allow_tf32, backends.cudnn.allow_tf32
    return {"cudnn_benchmark": backends.cudnn.benchmark, "tf32_matmul": matmul, "tf32_cudnn_conv": conv}


class FiniteCheck:
    """Whether a value on the device is still finite, asked without making the host wait for the device.

    On the CPU the answer is immediate. On CUDA each call copies ``isfinite(value)`` into pinned
    host memory without blocking and answers from the newest copy the GPU has finished (a CUDA
    event says when): the answer is a call or two late, and the GPU's queue never drains.
    """

    def __init__(self, device: torch.device):
        self.lagged = device.type == "cuda"
        if self.lagged:
            self._host = torch.ones((), dtype=torch.bool).pin_memory()
            self._view = self._host.numpy()  # read as memory: no tensor op, no sync
            self._done = None  # the event after the copy in flight

    def __call__(self, value: torch.Tensor) -> bool:
        if not self.lagged:
            return bool(torch.isfinite(value))
        if self._done is not None:
            if not self._done.query():
                return True  # the last copy is still on its way: look again next time
            if not bool(self._view):
                return False
        self._host.copy_(torch.isfinite(value), non_blocking=True)
        self._done = torch.cuda.Event()
        self._done.record()
        return True


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
