import json
import math

import pytest
import torch
import torchvision

from model import build_model
from model.data import synthetic_cifar10
from model.config import RunConfig
from model.optim import build_optimizer, lr_factor
from model.train import evaluate_test, fit, get_args_parser, main
from tests._data_utils import write_image_folders

# A quick config: resnet20 learns the synthetic classes in two epochs on two CPU cores.
QUICK = dict(arch="resnet20", epochs=2, batch_size=64, lr=0.1, augment="flip", device="cpu", threads=2)


@pytest.fixture(scope="module")
def data():
    return synthetic_cifar10(num_train=1200, num_test=300, val_size=300, seed=0)


@pytest.mark.slow
def test_fit_learns_synthetic_data(data):
    epochs = []
    result = fit(RunConfig(**QUICK), data, on_epoch=lambda m, ckpt: epochs.append(m))
    assert result.status == "completed" and result.epochs == 2
    assert [m["epoch"] for m in epochs] == [1, 2]
    keys = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_second"}
    assert keys <= set(epochs[-1])
    assert epochs[-1]["val_acc"] > 0.5  # chance is 0.1
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert evaluate_test(result.model, RunConfig(**QUICK), data)["test_acc"] > 0.5


def test_on_epoch_can_stop_the_run(data):
    result = fit(RunConfig(**{**QUICK, "epochs": 3}), data, on_epoch=lambda m, ckpt: m["epoch"] >= 1)
    assert result.status == "stopped" and result.epochs == 1 and len(result.history) == 1


def test_non_finite_loss_ends_the_run_as_diverged(data):
    seen = []
    result = fit(RunConfig(**{**QUICK, "lr": 1e12, "epochs": 5}), data, on_epoch=lambda m, c: seen.append(m))
    assert result.status == "diverged"
    assert result.epochs == 1 and seen[-1]["diverged"] is True and seen[-1]["val_acc"] == 0.0
    assert math.isnan(seen[-1]["val_loss"])


@pytest.mark.slow
def test_resume_from_checkpoint_is_exact(data, tmp_path):
    cfg = RunConfig(**{**QUICK, "augment": "crop_flip_cutout", "epochs": 2})
    straight = fit(cfg, data)
    interrupted = fit(cfg, data, on_epoch=lambda m, c: True, checkpoint_dir=tmp_path)
    assert interrupted.status == "stopped" and (tmp_path / "checkpoint.pt").exists()
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = fit(cfg, data, resume_from=tmp_path)
    assert resumed.epochs == 2 and len(resumed.history) == 2
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert resumed.history[-1]["val_acc"] == straight.history[-1]["val_acc"]


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    # Non-trivial BN statistics, so that an update would show.
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(reference.state_dict(), path)
    return path


@pytest.mark.parametrize("frozen", [4, 2])
@pytest.mark.slow
def test_frozen_stages_stay_bit_identical_after_training(data, resnet18_file, frozen):
    cfg = RunConfig(arch="resnet18", weights=str(resnet18_file), frozen_stages=frozen, epochs=1, batch_size=100,
                    lr=0.05, augment="crop_flip", device="cpu", threads=2)
    result = fit(cfg, data)
    loaded = torch.load(resnet18_file, weights_only=True)
    frozen_prefixes = ("conv1.", "bn1.") + tuple(f"layer{i}." for i in range(1, frozen + 1))
    changed = []
    for key, value in result.model.state_dict().items():
        if key.startswith("fc."):
            continue
        if key.startswith(frozen_prefixes):
            assert torch.equal(value, loaded[key]), f"frozen {key} changed"
        elif not torch.equal(value, loaded[key]):
            changed.append(key)
    if frozen == 4:
        assert changed == []  # a linear probe: only fc trains
    else:
        assert any(k.startswith("layer3.") for k in changed) and any("running_mean" in k for k in changed)
    fc = build_model("resnet18", weights=resnet18_file).fc  # the same fresh head before training
    assert result.model.fc.out_features == 10
    assert not torch.equal(result.model.fc.weight, fc.weight)


def test_optimizer_gets_only_trainable_parameters():
    model = build_model("resnet18", frozen_stages=3)
    optimizer = build_optimizer(model, RunConfig(arch="resnet18", lr=0.1, backbone_lr_mult=0.1))
    given = [p for g in optimizer.param_groups for p in g["params"]]
    assert {id(p) for p in given} == {id(p) for p in model.parameters() if p.requires_grad}
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs == pytest.approx({"head": 0.1, "backbone": 0.01})


def test_lr_schedules():
    total, warmup = 100, 10
    assert lr_factor("cosine", 0, total, warmup) == pytest.approx(0.1)
    assert lr_factor("cosine", 10, total, warmup) == pytest.approx(1.0)
    assert lr_factor("cosine", 99, total, warmup) < 0.01
    assert lr_factor("step", 60, total, 0) == pytest.approx(0.1)
    assert lr_factor("step", 80, total, 0) == pytest.approx(0.01)
    peak = max(range(total), key=lambda s: lr_factor("onecycle", s, total, 0))
    assert 25 <= peak <= 31 and lr_factor("onecycle", 0, total, 0) < 0.1


def test_bad_config_values_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid: sgd, nesterov, adamw"):
        RunConfig(optimizer="adam")
    with pytest.raises(ValueError, match="unknown arch"):
        RunConfig(arch="resnet21")


@pytest.mark.slow
def test_cli_writes_config_metrics_and_model(data, tmp_path, capsys):
    root = write_image_folders(data, tmp_path / "images")
    out = tmp_path / "run"
    args = get_args_parser().parse_args([
        "--data", str(root), "--val-size", "300", "--out", str(out), "--arch", "resnet20", "--epochs", "2",
        "--batch-size", "64", "--augment", "flip", "--device", "cpu", "--test",
    ])
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert config["config"]["arch"] == "resnet20" and config["data"]["sizes"]["val"] == 300
    assert metrics["epoch"] == 2 and metrics["val_acc"] > 0.5 and metrics["test_acc"] > 0.5
    model = build_model("resnet20")
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    # Without --test there is no test_acc.
    args = get_args_parser().parse_args(["--data", str(root), "--val-size", "300", "--out", str(tmp_path / "r2"),
                                         "--epochs", "1", "--batch-size", "128", "--device", "cpu"])
    assert main(args) == 0
    assert "test_acc" not in json.loads((tmp_path / "r2" / "metrics.json").read_text())


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, capsys):
    args = get_args_parser().parse_args(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope" in err and len(err.splitlines()) == 1
    args = get_args_parser().parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--resume"])
    assert main(args) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_cuda_bf16_channels_last_run(data):
    result = fit(RunConfig(**{**QUICK, "device": "cuda"}), data)
    assert result.status == "completed" and result.history[-1]["val_acc"] > 0.5
    assert next(result.model.parameters()).is_cuda
