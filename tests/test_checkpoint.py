"""Checkpoints and model files: safe to load (``weights_only=True``), CPU tensors, resumable on any device."""

import json
import pickle
import random

import numpy as np
import pytest
import torch

from model import build_model
from model.checkpoint import CheckpointError, load_checkpoint, restore_checkpoint, rng_state, set_rng_state, tensors
from model.data import synthetic_cifar10
from model.config import RunConfig
from model.optim import build_optimizer, build_scheduler
from model.train import fit, get_args_parser, main
from search.retrain import retrain

TINY = dict(arch="resnet20", epochs=2, batch_size=64, lr=0.05, augment="flip", device="cpu", threads=2)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_cifar10(num_train=600, num_test=100, val_size=100, seed=0)


def assert_safe_cpu_file(path):
    # No map_location: a CUDA tensor in the file would come back on the GPU (or fail here).
    state = torch.load(path, weights_only=True)
    found = list(tensors(state))
    assert found, f"{path} holds no tensors"
    assert {t.device.type for t in found} == {"cpu"}, path
    return state


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    random.gauss(0, 1)  # leaves a cached Gaussian in Python's and numpy's state
    np.random.standard_normal()
    torch.save(rng_state(CPU), tmp_path / "rng.pt")
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.standard_normal(),
                torch.rand(3))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True), CPU)
    got = (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.standard_normal(),
           torch.rand(3))
    assert got[:4] == expected[:4] and torch.equal(got[4], expected[4])


@pytest.mark.slow
def test_resume_reads_the_checkpoint_onto_the_cpu_whatever_the_run_device(data, tmp_path, monkeypatch):
    cfg = RunConfig(**TINY)
    fit(cfg, data, on_epoch=lambda m, c: True, checkpoint_dir=tmp_path)
    load = torch.load

    def load_as_a_gpu_run_would(f, map_location=None, **kwargs):
        # A CUDA run that loads with map_location=device gets every tensor on the GPU, the CPU
        # RNG state included, and torch.set_rng_state then refuses it. Here the run's device is
        # the CPU, so the GPU is played by the meta device: only an explicit "cpu" stays real.
        return load(f, map_location=map_location if map_location == "cpu" else "meta", **kwargs)

    monkeypatch.setattr(torch, "load", load_as_a_gpu_run_would)
    resumed = fit(cfg, data, resume_from=tmp_path)
    assert resumed.status == "completed" and resumed.epochs == 2 and len(resumed.history) == 2


@pytest.mark.filterwarnings("ignore:.*copying from a non-meta parameter:UserWarning")
@pytest.mark.parametrize("optimizer, state_keys", [("adamw", {"step", "exp_avg", "exp_avg_sq"}),
                                                   ("sgd", {"momentum_buffer"})])
@pytest.mark.slow
def test_a_cpu_checkpoint_resumes_with_all_optimizer_state_on_a_gpu_run_device(data, tmp_path, monkeypatch,
                                                                                 optimizer, state_keys):
    # A trial moved from a CPU node to a GPU node. The meta device plays the GPU: its parameters
    # pass for CUDA ones while the optimizer is built, so it is fused, as on CUDA. The fused
    # kernels refuse state on another device than the parameters', AdamW's step included.
    cfg = RunConfig(**{**TINY, "optimizer": optimizer, "lr": 1e-3 if optimizer == "adamw" else 0.05})
    fit(cfg, data, on_epoch=lambda m, c: True, checkpoint_dir=tmp_path)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {t.device.type for t in tensors(state["optimizer"])} == {"cpu"}
    gpu = torch.device("meta")
    model = build_model(cfg.arch).to(gpu)
    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "is_cuda", property(lambda t: t.device.type in ("cuda", "meta")))
        opt = build_optimizer(model, cfg)
    assert all(g["fused"] for g in opt.param_groups)
    epoch, _ = restore_checkpoint(state, model, opt, build_scheduler(opt, cfg, 10), gpu)
    assert epoch == 1 and len(opt.state) == sum(1 for p in model.parameters() if p.requires_grad)
    for param, param_state in opt.state.items():
        assert param_state.keys() == state_keys
        assert {k: v.device.type for k, v in param_state.items()} == dict.fromkeys(state_keys, "meta")
    assert all(g["fused"] for g in opt.param_groups)  # this machine's kernels, not the checkpoint's


@pytest.mark.slow
def test_every_model_and_checkpoint_file_loads_weights_only_with_cpu_tensors(data, image_folder, tmp_path):
    out = tmp_path / "run"
    args = get_args_parser().parse_args([
        "--data", str(image_folder), "--val-size", "200", "--out", str(out), "--epochs", "1", "--batch-size", "100",
        "--augment", "flip", "--device", "cpu", "--threads", "2",
    ])
    assert main(args) == 0
    model = assert_safe_cpu_file(out / "model.pt")
    checkpoint = assert_safe_cpu_file(out / "checkpoint.pt")  # what fit() writes, for the CLI and the trials
    assert checkpoint["epoch"] == 1 and checkpoint["model"].keys() == model.keys()
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == "fp32" and config["versions"]["cuda_backends"] is None  # no CUDA set up
    assert json.loads((out / "metrics.json").read_text())["precision"] == "fp32"

    best = {"trial": "t0", "val_acc": 0.5, "config": RunConfig(**{**TINY, "epochs": 1, "compile": True}).to_dict()}
    (tmp_path / "best").mkdir()
    metrics = retrain(best, data, tmp_path, epochs=1, device="cpu", threads=2, compile=False)  # --no-compile
    assert metrics["config"]["compile"] is False and metrics["precision"] == "fp32"
    assert assert_safe_cpu_file(tmp_path / "best" / "model.pt").keys() == model.keys()


def test_a_checkpoint_a_safe_load_refuses_is_a_one_line_error(data, tmp_path, capsys):
    # What earlier versions wrote: numpy's RNG state pickled as numpy objects.
    torch.save({"epoch": 1, "rng": {"numpy": np.random.get_state()}}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="start the run afresh"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="format"):
        torch.save({"epoch": 1}, tmp_path / "other.pt")
        load_checkpoint(tmp_path / "other.pt")
    # Nothing is unpickled: an object whose unpickling would run code is refused, not run.
    ran = []

    class Payload:
        def __reduce__(self):
            return ran.append, ("ran",)

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": 2, "x": Payload()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "evil.pt")
    assert ran == []
