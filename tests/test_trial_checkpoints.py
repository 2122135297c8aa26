"""A trial resumes from the newest of its kept checkpoints that loads (issue 17): Tune's own when Tune retries it,
else the one the study recorded (``--resume``). A truncated newest one is skipped with a line that names it and the
one used; the epochs trained again report what the uninterrupted trial reported, by their own epoch number."""

import shutil
import types
from pathlib import Path

import pytest
import ray
from ray import tune

from model.checkpoint import CHECKPOINT_NAME
from model.config import RunConfig
from model.data import synthetic_cifar10
from search.constants import KEPT_CHECKPOINTS
from search.study import CHECKPOINTS
from search.tune.searcher import STUDY_TRIAL
from search.tune.trainable import kept_checkpoints, train_trial

BASE = RunConfig(arch="resnet20", epochs=3, batch_size=50, augment="none", device="cpu", seed=3)


class FakeTune:
    """What ``train_trial`` calls of Tune: its checkpoint to resume, and reports persisted as Tune does
    (each reported checkpoint copied into the trial's storage as ``checkpoint_<index>``)."""

    def __init__(self, storage, resume=None):
        self.storage, self.resume, self.reports = storage, resume, []
        storage.mkdir(exist_ok=True)

    def get_checkpoint(self):
        return self.resume

    def report(self, metrics, checkpoint=None):
        self.reports.append(metrics)
        if checkpoint is not None:
            shutil.copytree(checkpoint.path, self.storage / f"checkpoint_{len(list(self.storage.iterdir())):06d}")

    def get_context(self):
        resources = types.SimpleNamespace(required_resources={"CPU": 1})
        return types.SimpleNamespace(get_trial_resources=lambda: resources)


def run_trial(monkeypatch, fake, data, recorded=()):
    for name in ("get_checkpoint", "report", "get_context"):
        monkeypatch.setattr(tune, name, getattr(fake, name))
    monkeypatch.setattr(ray, "get_runtime_context", lambda: types.SimpleNamespace(get_node_id=lambda: "node"))
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "127.0.0.1")
    train_trial({"lr": 0.05, STUDY_TRIAL: {"number": 0, CHECKPOINTS: list(recorded)}}, data, BASE)
    return [(r["epoch"], r["val_acc"]) for r in fake.reports]


@pytest.mark.parametrize("source", ["tune", "study"])
@pytest.mark.parametrize("damaged", [["checkpoint_000001"], ["checkpoint_000000", "checkpoint_000001"]],
                         ids=["newest", "every-kept"])
def test_a_trial_resumes_from_its_newest_checkpoint_that_loads(damaged, source, monkeypatch, tmp_path, capfd):
    data = synthetic_cifar10(num_train=200, num_test=20, val_size=50, seed=0)
    whole = run_trial(monkeypatch, FakeTune(tmp_path / "whole"), data)
    assert [epoch for epoch, _ in whole] == [1, 2, 3]

    # The trial died after epoch 2: Tune kept its last two checkpoints, and the damaged ones are cut short.
    storage = tmp_path / "cut"
    storage.mkdir()
    for name in ("checkpoint_000000", "checkpoint_000001"):
        shutil.copytree(tmp_path / "whole" / name, storage / name)
    for name in damaged:
        path = storage / name / CHECKPOINT_NAME
        path.write_bytes(path.read_bytes()[:1000])
    capfd.readouterr()
    newest = str(storage / "checkpoint_000001")
    if source == "tune":  # Tune retries the trial in the same run, from its own checkpoint
        resumed = run_trial(monkeypatch, FakeTune(tmp_path / "retry", resume=tune.Checkpoint(newest)), data)
    else:  # a resumed search: a new Tune trial, from the checkpoints the study recorded, newest first
        resumed = run_trial(monkeypatch, FakeTune(tmp_path / "resumed"), data,
                            recorded=[newest, str(storage / "checkpoint_000000")])

    # The epochs after the checkpoint that loaded, with the values the uninterrupted trial had.
    assert resumed == whole[3 - len(resumed):] and len(resumed) == (2 if len(damaged) == 1 else 3)
    warning = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and f"{storage / 'checkpoint_000001'}: " in warning[0], warning
    if len(damaged) == 1:
        assert "damaged" in warning[0] and f"resuming from {storage / 'checkpoint_000000'} (epoch 1)" in warning[0]
    else:
        assert f"{storage / 'checkpoint_000000'}: " in warning[0] and "training it again from epoch 0" in warning[0]


def three_checkpoints(config):
    """A trainable reporting three epochs, each with a checkpoint, as ``train_trial`` does."""
    import tempfile

    for epoch in range(1, 4):
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "epoch.txt").write_text(str(epoch))
            tune.report({"epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(folder))


@pytest.mark.slow
def test_tunes_checkpoint_layout_is_what_a_retry_reads(tmp_path):
    """The one read of Tune's folder layout (``kept_checkpoints``), pinned on the installed Ray: the older
    checkpoint Tune keeps lies beside the newest, found in order by name. A Ray that changes it fails here."""
    from importlib.metadata import requires

    assert any(r.startswith("ray[tune]>=2.55,<3") or r.startswith("ray[tune]<3,>=2.55")
               for r in requires("resnet-hpo")), "pyproject's Ray range changed: check the layout on both ends"
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        result = tune.Tuner(three_checkpoints, run_config=tune.RunConfig(
            storage_path=str(tmp_path), name="layout",
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEPT_CHECKPOINTS))).fit()[0]
    finally:
        ray.shutdown()
    kept = list(kept_checkpoints(result.checkpoint))
    assert len(kept) == KEPT_CHECKPOINTS == 2
    assert [Path(c.path).name for c in kept] == ["checkpoint_000002", "checkpoint_000001"]
    assert [(Path(c.path) / "epoch.txt").read_text() for c in kept] == ["3", "2"]
