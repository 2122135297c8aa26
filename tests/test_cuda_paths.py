"""The CUDA branches of a run, taken on the CPU with a fake CUDA device (tests/_fake_cuda.py): no host
round trip per step, a divergence check that still stops a diverging run, one fp16 loss scaler per run,
and the cuDNN and TF32 settings recorded in config.json."""

import json

import itertools

import pytest
import torch
from torch import nn

from model.config import RunConfig
from model.data import synthetic_cifar10
from model.train import fit, get_args_parser, main, train_one_epoch
from tests._fake_cuda import fake_cuda
from tests._op_counter import HOST_ROUND_TRIPS, OpCounter

pytestmark = pytest.mark.filterwarnings("ignore:.*CUDA is not available:UserWarning")
BATCH = 8


def tiny_run(device: str, steps: int, nan_from: int | None = None):
    """A linear model, its optimizer and ``steps`` batches; from step ``nan_from`` on the images are NaN."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    batches = []
    for step in range(1, steps + 1):
        x = torch.randn(BATCH, 3, 2, 2, device=device)
        if nan_from is not None and step >= nan_from:
            x = torch.full_like(x, float("nan"))
        batches.append((x, torch.randint(0, 3, (BATCH,), device=device)))
    return model, nn.CrossEntropyLoss(), optimizer, scheduler, batches


def round_trips(device: str, steps: int) -> dict:
    model, criterion, optimizer, scheduler, batches = tiny_run(device, steps)
    with OpCounter() as counter:
        result = train_one_epoch(model, criterion, optimizer, scheduler, batches, torch.device(device), amp=False,
                                 check_every=10)
    assert result["finite"] and result["images"] == steps * BATCH
    assert counter.counts["addmm"] == steps  # the counter saw every step
    return {op: counter.counts[op] for op in HOST_ROUND_TRIPS if counter.counts[op]}


def test_an_epoch_on_cuda_reads_nothing_back_while_it_trains(monkeypatch):
    # The divergence check every 10 steps used to read the loss back (.item()), making the host
    # wait for the GPU; the one read-back left, at the end of the epoch, is no tensor op.
    with fake_cuda(monkeypatch):
        assert round_trips("cuda", 100) == {} == round_trips("cuda", 20)


def test_on_the_cpu_the_check_reads_the_loss_every_check_every_steps():
    assert round_trips("cpu", 100) == {"_local_scalar_dense": 10}


@pytest.mark.parametrize("device, stopped_after", [("cpu", 20), ("cuda", 30)])
def test_a_diverging_epoch_stops_within_a_few_checks(monkeypatch, device, stopped_after):
    # NaN from step 15 on. The CPU answers at once (step 20); CUDA answers from the copy made at
    # the check before (it was posted at step 20 and is read at step 30), without waiting for it.
    with fake_cuda(monkeypatch):
        model, criterion, optimizer, scheduler, batches = tiny_run(device, 200, nan_from=15)
        result = train_one_epoch(model, criterion, optimizer, scheduler, batches, torch.device(device), amp=False,
                                 check_every=10)
    assert result["finite"] is False and result["images"] == stopped_after * BATCH


def count_scalers(monkeypatch) -> list:
    made = []
    init = torch.amp.GradScaler.__init__

    def counting_init(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "__init__", counting_init)
    return made


def test_fp16_epochs_use_the_runs_scaler_and_never_make_their_own(monkeypatch):
    # A T4 (compute capability 7.5) trains in fp16. A scaler made per call would reset the loss
    # scale (65536, then shrinking on overflows) at every call.
    with fake_cuda(monkeypatch, capability=(7, 5)):
        made = count_scalers(monkeypatch)
        model, criterion, optimizer, scheduler, batches = tiny_run("cuda", 4)
        with pytest.raises(ValueError, match="GradScaler"):
            train_one_epoch(model, criterion, optimizer, scheduler, batches, torch.device("cuda"))
        assert made == []
        scaler = torch.amp.GradScaler("cuda")
        for _ in range(2):
            train_one_epoch(model, criterion, optimizer, scheduler, itertools.islice(batches, 2),
                            torch.device("cuda"), scaler=scaler)
        assert made == [scaler]


@pytest.mark.slow
def test_fit_makes_one_fp16_scaler_for_all_its_epochs(monkeypatch):
    with fake_cuda(monkeypatch, capability=(7, 5)):
        made = count_scalers(monkeypatch)
        data = synthetic_cifar10(num_train=160, num_test=20, val_size=32, seed=0)
        result = fit(RunConfig(arch="resnet20", epochs=3, batch_size=64, lr=0.05, augment="flip", device="cuda"), data)
    assert result.precision == "fp16" and result.epochs == 3 and len(made) == 1


@pytest.mark.slow
def test_a_cuda_run_records_cudnn_benchmark_on_and_tf32_off_in_config_json(monkeypatch, image_folder, tmp_path):
    with fake_cuda(monkeypatch):
        args = get_args_parser().parse_args(["--data", str(image_folder), "--val-size", "200", "--out", str(tmp_path),
                                             "--epochs", "1", "--batch-size", "200", "--device", "cuda"])
        assert main(args) == 0
        assert torch.backends.cudnn.benchmark is True
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["device"] == "cuda" and config["precision"] == "bf16"
    assert config["versions"]["cuda_backends"] == {"cudnn_benchmark": True, "tf32_matmul": False,
                                                   "tf32_cudnn_conv": False}
