"""The Tune trainable: one trial = one ``model.train.fit`` run, reported to Tune once per epoch."""

from __future__ import annotations

import tempfile

import ray
from ray import tune

from model.config import RunConfig
from model.data import CIFAR10Data
from model.train import fit

from .config import trial_config

# Reported every epoch. Selection uses the validation metrics only: trials never see the test set.
REPORTED = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_second")


def train_trial(config: dict, data: CIFAR10Data, base: RunConfig, weights_by_arch: dict[str, str] | None = None,
                pretrained: dict | None = None) -> None:
    """Train one config and report ``val_acc`` each epoch, with a checkpoint, until ASHA stops it.

    ``base`` holds what every trial shares; ``pretrained`` maps architectures to the state dicts
    that the driver loaded: the trial's node may have neither the ``--weights`` file nor
    torchvision's cache.
    """
    cfg = trial_config(base, config, weights_by_arch)
    state = (pretrained or {}).get(cfg.arch) if cfg.weights is not None else None
    if cfg.device == "cpu":
        # Ray starts workers with OMP_NUM_THREADS=1; a trial gets as many threads as CPUs.
        resources = tune.get_context().get_trial_resources().required_resources
        cfg.threads = max(1, int(resources.get("CPU", 1)))
    node = ray.get_runtime_context().get_node_id()
    node_ip = ray.util.get_node_ip_address()
    checkpoint = tune.get_checkpoint()

    with tempfile.TemporaryDirectory(prefix="trial-ckpt-") as ckpt_dir:

        def on_epoch(metrics: dict, written) -> None:
            report = {k: metrics[k] for k in REPORTED if k in metrics}
            report.update(diverged=metrics.get("diverged", False), node=node, node_ip=node_ip)
            if written is not None:
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))
            else:
                tune.report(report)

        if checkpoint is not None:
            with checkpoint.as_directory() as resume_dir:
                fit(cfg, data, on_epoch, checkpoint_dir=ckpt_dir, resume_from=resume_dir, pretrained=state)
        else:
            fit(cfg, data, on_epoch, checkpoint_dir=ckpt_dir, pretrained=state)
