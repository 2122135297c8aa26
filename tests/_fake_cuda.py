"""Run the CUDA code paths on the CPU: ``device="cuda"`` in Python, CPU tensors underneath.

Inside ``fake_cuda(monkeypatch)``, torch says a GPU of the given compute capability is there,
every tensor asked for on "cuda" is made on the CPU, pinned memory is plain memory, CUDA events
have always finished, synchronizing does nothing and the CUDA generator is the CPU's. The cuDNN
and TF32 flags a fake CUDA run sets are put back afterwards. The Python code of a run then takes its
CUDA branches (the precision, the lagged divergence check, the fp16 scaler), whose host round
trips tests/_op_counter.py can count.
"""

import contextlib

import torch
from torch.overrides import TorchFunctionMode

from model import device as model_device


def _is_cuda(value) -> bool:
    if isinstance(value, torch.device):
        return value.type == "cuda"
    return isinstance(value, str) and value.split(":")[0] == "cuda"


class _CudaOnCpu(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.pin_memory, torch.Tensor.cuda):
            return args[0]
        if func is torch.device:  # the run's device stays "cuda"; its tensors do not
            return func(*args, **(kwargs or {}))
        kwargs = {k: "cpu" if _is_cuda(v) else v for k, v in (kwargs or {}).items() if k != "pin_memory"}
        args = tuple("cpu" if _is_cuda(a) else a for a in args)
        return func(*args, **kwargs)


class FinishedEvent:
    """A CUDA event whose work is always done."""

    def record(self, stream=None) -> None:
        pass

    def query(self) -> bool:
        return True


@contextlib.contextmanager
def kept_cuda_backends():
    """Put torch's cuDNN and TF32 flags, and model.device's record of them, back as they were."""
    if model_device._new_tf32_api():
        flags = [(torch.backends.cuda.matmul, "fp32_precision"), (torch.backends.cudnn.conv, "fp32_precision")]
    else:
        flags = [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32")]
    flags += [(torch.backends.cudnn, "benchmark"), (model_device, "_cuda_backends_set")]
    before = [getattr(owner, name) for owner, name in flags]
    try:
        yield
    finally:
        for (owner, name), value in zip(flags, before):
            setattr(owner, name, value)


@contextlib.contextmanager
def fake_cuda(monkeypatch, capability=(9, 0)):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: capability >= (8, 0))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "Event", FinishedEvent)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": torch.get_rng_state())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": None)
    with kept_cuda_backends(), _CudaOnCpu():
        yield
