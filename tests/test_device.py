"""Devices and precision: bf16 / fp16 / fp32 choice, fused optimizers, and CPU runs that stay off CUDA."""

import functools
import inspect

import pytest
import torch

from model import build_model
from model.data import synthetic_cifar10
from model import device as model_device
from model.checkpoint import versions
from model.device import cuda_backends, grad_scaler, precision, resolve_device
from model.config import RunConfig
from model.optim import build_optimizer
from model.train import fit
from tests._fake_cuda import kept_cuda_backends

TINY = dict(arch="resnet20", epochs=2, batch_size=64, lr=0.05, augment="crop_flip_cutout", device="cpu", threads=2)


@pytest.fixture(scope="module")
def data():
    return synthetic_cifar10(num_train=600, num_test=100, val_size=100, seed=0)


@pytest.mark.parametrize("capability, expected", [((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp16"),
                                                  ((7, 0), "fp16"), ((6, 1), "fp16")])
def test_precision_follows_the_gpu_generation(monkeypatch, capability, expected):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    assert precision(torch.device("cuda"), amp=True) == expected
    assert asked == [torch.device("cuda")]
    assert precision("cuda:0", amp=False) == "fp32"
    assert (grad_scaler(expected) is not None) == (expected == "fp16")


def test_cpu_precision_is_fp32_and_asks_no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: pytest.fail("asked a GPU"))
    assert precision(torch.device("cpu"), amp=True) == "fp32"
    assert grad_scaler("fp32") is None and grad_scaler("bf16") is None


def test_a_cuda_device_turns_cudnn_autotuning_on_and_tf32_off_and_a_cpu_one_leaves_them(monkeypatch):
    with kept_cuda_backends():
        model_device._cuda_backends_set = False
        torch.backends.cudnn.benchmark = False  # torch's default
        assert resolve_device("cpu").type == "cpu"
        assert cuda_backends() is None and versions()["cuda_backends"] is None and not torch.backends.cudnn.benchmark
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert resolve_device("cuda").type == "cuda"
        expected = {"cudnn_benchmark": True, "tf32_matmul": False, "tf32_cudnn_conv": False}
        assert cuda_backends() == expected == versions()["cuda_backends"]
        if model_device._new_tf32_api():
            assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "ieee"
        else:
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_cpu_optimizers_keep_the_default_kernels(optimizer):
    opt = build_optimizer(build_model("resnet20"), RunConfig(optimizer=optimizer))
    assert all(not g["fused"] for g in opt.param_groups)


# Functions of torch.cuda that a CPU run may reach without touching a GPU: is_available is what
# device "auto" asks; the rest answer from Python state and never initialize CUDA.
HARMLESS = {"is_available", "is_initialized", "_is_in_bad_fork", "_is_compiled", "is_current_stream_capturing"}


def record_cuda_calls(monkeypatch) -> list[str]:
    """Pretend a GPU is present and record every torch.cuda function called from now on."""
    calls = []

    def recorder(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for module in (torch.cuda, torch.cuda.random):
        for name, fn in vars(module).copy().items():
            if inspect.isfunction(fn) and name not in HARMLESS:
                monkeypatch.setattr(module, name, recorder(f"torch.cuda.{name}", fn))
    return calls


@pytest.mark.slow
def test_a_cpu_run_its_checkpoint_and_its_resume_never_touch_cuda(data, tmp_path, monkeypatch):
    calls = record_cuda_calls(monkeypatch)
    cfg = RunConfig(**TINY)
    fit(cfg, data, on_epoch=lambda m, c: True, checkpoint_dir=tmp_path)
    assert (tmp_path / "checkpoint.pt").exists()
    resumed = fit(cfg, data, resume_from=tmp_path, checkpoint_dir=tmp_path)
    assert calls == [] and not torch.cuda.is_initialized()
    assert resumed.status == "completed" and resumed.epochs == 2 and resumed.precision == "fp32"
    assert "cuda" not in torch.load(tmp_path / "checkpoint.pt", weights_only=True)["rng"]
