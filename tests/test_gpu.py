"""What the GPU acceptance check runs (``pytest -m gpu``): resume, CPU files, bf16 / fp16, fused optimizers,
no host sync per step, cuDNN and TF32 settings, CPU runs off the GPU.

Most need a CUDA device and skip without one; those that do not also run in the check's
dry run on a CPU (``python -m benchmarks.gpu_check --simulate-cpu``).
"""

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from model import build_model
from model.checkpoint import load_checkpoint, restore_checkpoint, tensors
from model.data import synthetic_cifar10
from model.device import precision
from model.loader import DeviceLoader
from model.config import RunConfig
from model.optim import build_optimizer, build_scheduler
from model.train import fit, get_args_parser, main, train_one_epoch

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

QUICK = dict(arch="resnet20", epochs=3, batch_size=64, lr=0.1, augment="crop_flip_cutout", device="cuda")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return synthetic_cifar10(num_train=1200, num_test=300, val_size=300, seed=0)


@needs_cuda
def test_cuda_resume_continues_where_it_stopped(data, tmp_path):
    cfg = RunConfig(**QUICK)
    interrupted = fit(cfg, data, on_epoch=lambda m, c: m["epoch"] >= 2, checkpoint_dir=tmp_path)
    assert interrupted.status == "stopped" and interrupted.epochs == 2
    resumed = fit(cfg, data, resume_from=tmp_path, checkpoint_dir=tmp_path)
    assert resumed.status == "completed" and resumed.epochs == 3 and len(resumed.history) == 3
    assert resumed.history[:2] == interrupted.history
    assert resumed.history[-1]["val_acc"] > 0.5 and next(resumed.model.parameters()).is_cuda


@needs_cuda
def test_restore_puts_the_cpu_checkpoint_on_the_gpu_exactly(data, tmp_path):
    cfg = RunConfig(**{**QUICK, "epochs": 2})
    fit(cfg, data, on_epoch=lambda m, c: True, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {t.device.type for t in tensors(state)} == {"cpu"}
    assert state["rng"]["cuda"].dtype == torch.uint8  # this device's generator only
    device = torch.device("cuda")
    model = build_model(cfg.arch).to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, 10)
    torch.manual_seed(12345)
    epoch, history = restore_checkpoint(state, model, optimizer, scheduler, device)
    assert epoch == 1 and len(history) == 1
    for key, value in model.state_dict().items():
        assert value.is_cuda and torch.equal(value.cpu(), state["model"][key]), key
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for index, saved in state["optimizer"]["state"].items():
        buffer = optimizer.state[params[index]]["momentum_buffer"]
        assert buffer.is_cuda and torch.equal(buffer.cpu(), saved["momentum_buffer"])
    assert all(g["fused"] for g in optimizer.param_groups)
    assert scheduler.last_epoch == state["scheduler"]["last_epoch"]
    assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])
    assert torch.equal(torch.cuda.get_rng_state(device), state["rng"]["cuda"])


@needs_cuda
def test_cuda_cli_run_and_resume_write_cpu_files_that_load_without_a_gpu(image_folder, tmp_path):
    out = tmp_path / "run"
    base = ["--data", str(image_folder), "--val-size", "200", "--out", str(out), "--batch-size", "100",
            "--device", "cuda"]
    assert main(get_args_parser().parse_args(base + ["--epochs", "2"])) == 0
    assert main(get_args_parser().parse_args(base + ["--epochs", "3", "--resume"])) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["precision"] == precision("cuda")
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == precision("cuda")
    assert config["versions"]["cuda_backends"] == {"cudnn_benchmark": True, "tf32_matmul": False,
                                                   "tf32_cudnn_conv": False}
    for name in ("model.pt", "checkpoint.pt"):
        state = torch.load(out / name, weights_only=True)  # no map_location: a CUDA tensor would stay one
        assert {t.device.type for t in tensors(state)} == {"cpu"}, name
    code = "import sys, torch; [torch.load(p, weights_only=True) for p in sys.argv[1:]]; " \
           "print(torch.cuda.is_available())"
    done = subprocess.run([sys.executable, "-c", code, str(out / "model.pt"), str(out / "checkpoint.pt")],
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


@needs_cuda
def test_precision_is_bf16_from_ampere_on_and_fp16_before(data):
    major, _ = torch.cuda.get_device_capability()
    expected = "bf16" if major >= 8 else "fp16"
    assert precision("cuda") == expected and precision("cuda", amp=False) == "fp32"
    assert fit(RunConfig(**{**QUICK, "epochs": 1}), data).precision == expected


@needs_cuda
def test_fp16_with_loss_scaling_trains_checkpoints_and_resumes(data, tmp_path, monkeypatch):
    # Play a T4 (compute capability 7.5): fp16 autocast and a GradScaler, whose state is checkpointed.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    cfg = RunConfig(**{**QUICK, "epochs": 2})
    first = fit(cfg, data, on_epoch=lambda m, c: True, checkpoint_dir=tmp_path)
    assert first.precision == "fp16"
    scaler = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["scaler"]
    assert scaler is not None and scaler["scale"] > 0
    resumed = fit(cfg, data, resume_from=tmp_path)
    assert resumed.status == "completed" and resumed.epochs == 2 and resumed.history[-1]["val_acc"] > 0.3


@needs_cuda
@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adamw"])
def test_optimizers_are_fused_on_cuda(optimizer):
    model = build_model("resnet20", frozen_stages=1).cuda()
    opt = build_optimizer(model, RunConfig(optimizer=optimizer))
    assert all(g["fused"] for g in opt.param_groups)
    model(torch.randn(8, 3, 32, 32, device="cuda")).sum().backward()
    opt.step()


@needs_cuda
@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.1), ("adamw", 1e-3)])
def test_a_checkpoint_written_on_the_cpu_resumes_and_trains_on_cuda(data, tmp_path, optimizer, lr):
    # A trial that moves from a CPU node to a GPU node: the fused kernels need every state tensor
    # on the GPU, AdamW's step included (torch issue 104767).
    on_gpu = RunConfig(**{**QUICK, "epochs": 2, "optimizer": optimizer, "lr": lr})
    fit(RunConfig(**{**on_gpu.to_dict(), "device": "cpu", "threads": 4}), data, on_epoch=lambda m, c: True,
        checkpoint_dir=tmp_path)
    device = torch.device("cuda")
    model = build_model(on_gpu.arch).to(device, memory_format=torch.channels_last)
    opt = build_optimizer(model, on_gpu)
    restore_checkpoint(load_checkpoint(tmp_path / "checkpoint.pt"), model, opt, build_scheduler(opt, on_gpu, 10),
                       device)
    assert all(g["fused"] for g in opt.param_groups)
    assert {t.device.type for t in tensors(opt.state_dict()["state"])} == {"cuda"}
    resumed = fit(on_gpu, data, resume_from=tmp_path)
    assert resumed.status == "completed" and resumed.epochs == 2 and next(resumed.model.parameters()).is_cuda


@needs_cuda
def test_an_epoch_on_cuda_waits_for_the_gpu_only_at_its_end(data):
    device = torch.device("cuda")
    cfg = RunConfig(**QUICK)
    model = build_model(cfg.arch).to(device, memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, 100)
    loader = DeviceLoader(data.train_images, data.train_labels, batch_size=cfg.batch_size, mean=data.mean,
                          std=data.std, device=device, train=True, augment=cfg.augment, channels_last=True)
    batches = list(loader)  # made beforehand: only the training steps are watched
    criterion = nn.CrossEntropyLoss()
    train_one_epoch(model, criterion, optimizer, scheduler, batches[:3], device)  # cuDNN autotuning, allocator

    def syncs(steps: int) -> int:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                result = train_one_epoch(model, criterion, optimizer, scheduler,
                                         itertools.islice(itertools.cycle(batches), steps), device, check_every=5)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        assert result["finite"] and result["images"] == steps * cfg.batch_size
        return sum("synchroniz" in str(w.message) for w in caught)

    # The divergence check runs 2 times in the first epoch and 12 in the second.
    assert syncs(60) == syncs(10) <= 2


def test_the_check_and_a_run_import_without_ray_optuna_pandas_or_tqdm():
    # The GPU machine may have torch, torchvision, numpy and pillow, and nothing else.
    code = ("import sys; sys.modules.update(dict.fromkeys(['ray', 'optuna', 'pandas', 'plotly', 'tqdm'])); "
            "import model.train, benchmarks.gpu_check; print('imported')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "imported", done.stderr[-3000:]


CPU_RUN = textwrap.dedent("""
    import os, subprocess, sys, torch
    from model.data import synthetic_cifar10
    from model.config import RunConfig
    from model.train import fit

    def gpu_memory_mib():
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=60).stdout
            return sum(float(v) for v in out.split())
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    before = gpu_memory_mib()
    data = synthetic_cifar10(num_train=200, num_test=20, val_size=40)  # 2 steps an epoch: quick on a CPU too
    for optimizer in ("sgd", "adamw"):
        cfg = RunConfig(arch="resnet20", epochs=2, batch_size=64, optimizer=optimizer, device="cpu", threads=1)
        fit(cfg, data, on_epoch=lambda m, c: True, checkpoint_dir=sys.argv[1])
        fit(cfg, data, resume_from=sys.argv[1])
    after = gpu_memory_mib()
    print(torch.cuda.is_initialized(), None if before is None or after is None else after - before)
""")


@pytest.mark.slow
def test_a_cpu_run_on_a_gpu_machine_opens_no_cuda_context(tmp_path):
    done = subprocess.run([sys.executable, "-c", CPU_RUN, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    initialized, grown = done.stdout.split()[-2:]
    assert initialized == "False"
    if grown != "None" and shutil.which("nvidia-smi"):
        # A CUDA context costs hundreds of MiB of GPU memory; the process was still alive when measured.
        assert float(grown) < 150, f"GPU memory grew by {grown} MiB during a CPU run: a CUDA context was created"
