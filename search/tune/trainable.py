"""The Tune trainable: one trial = one ``model.train.fit`` run, reported to Tune once per epoch with a checkpoint.

A trial continues from the newest checkpoint that loads: Tune's own when Tune retries it in this
run, with the older one Tune keeps beside it, else those the study recorded for it (``--resume``),
newest first; without one it trains from epoch 0.
"""

from __future__ import annotations

import posixpath
import sys
import tempfile
from collections.abc import Iterator

import ray
from pyarrow import fs as pafs
from ray import tune

from model.checkpoint import CHECKPOINT_NAME, CheckpointError, find_checkpoint, load_checkpoint
from model.config import RunConfig
from model.data import CIFAR10Data
from model.train import fit

from ..config import trial_config
from ..study import CHECKPOINTS, DIVERGED, NODE, NODE_IP, PLANNED_EPOCHS
from .searcher import STUDY_TRIAL, trial_params

# Reported every epoch. Selection uses the validation metrics only: trials never see the test set.
REPORTED = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_second")


def train_trial(config: dict, data: CIFAR10Data, base: RunConfig, weights_by_arch: dict[str, str] | None = None,
                pretrained: dict | None = None) -> None:
    """Train one config and report ``val_acc`` each epoch, with a checkpoint, until ASHA stops it.

    ``config`` is the space's parameters and the study's trial (``STUDY_TRIAL``); ``base`` holds
    what every trial shares; ``pretrained`` maps architectures to the state dicts that the driver
    loaded: the trial's node may have neither the ``--weights`` file nor torchvision's cache.
    """
    cfg = trial_config(base, trial_params(config), weights_by_arch)
    state = (pretrained or {}).get(cfg.arch) if cfg.weights is not None else None
    if cfg.device == "cpu":
        # Ray starts workers with OMP_NUM_THREADS=1; a trial gets as many threads as CPUs.
        resources = tune.get_context().get_trial_resources().required_resources
        cfg.threads = max(1, int(resources.get("CPU", 1)))
    node = ray.get_runtime_context().get_node_id()
    node_ip = ray.util.get_node_ip_address()
    recorded = (config.get(STUDY_TRIAL) or {}).get(CHECKPOINTS) or []
    candidates = [*kept_checkpoints(tune.get_checkpoint()), *(tune.Checkpoint(uri) for uri in recorded)]

    with tempfile.TemporaryDirectory(prefix="trial-ckpt-") as ckpt_dir:
        def on_epoch(metrics: dict, written) -> None:
            report = {k: metrics[k] for k in REPORTED if k in metrics}
            report.update({PLANNED_EPOCHS: cfg.epochs, DIVERGED: metrics.get("diverged", False), NODE: node,
                           NODE_IP: node_ip})
            if written is not None:
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))
            else:
                tune.report(report)

        fit(cfg, data, on_epoch, checkpoint_dir=ckpt_dir, resume_from=newest_loadable(candidates),
            pretrained=state)


def kept_checkpoints(checkpoint: tune.Checkpoint | None) -> Iterator[tune.Checkpoint]:
    """``checkpoint``, then the older ones Tune keeps beside it (``num_to_keep``), newest first.

    The one read of Tune's folder layout (``checkpoint_<index>`` folders beside each other, in
    order by name), for a retry within a Tune run, whose checkpoint Tune hands over alone; a
    resume has the study's list instead. ``tests/test_trial_checkpoints.py`` pins the layout on
    the Ray release installed (``ray[tune]>=2.55,<3``).
    """
    if checkpoint is None:
        return
    yield checkpoint
    parent = posixpath.dirname(checkpoint.path.rstrip("/"))
    try:
        infos = checkpoint.filesystem.get_file_info(pafs.FileSelector(parent))
    except OSError:  # its folder is gone: loading the checkpoint itself says so
        return
    older = [i.path for i in infos if i.type == pafs.FileType.Directory
             and posixpath.basename(i.path).startswith("checkpoint_") and i.path < checkpoint.path.rstrip("/")]
    for path in sorted(older, reverse=True):
        yield tune.Checkpoint(path, filesystem=checkpoint.filesystem)


def newest_loadable(checkpoints: list[tune.Checkpoint]) -> dict | None:
    """The first of ``checkpoints`` that loads; a damaged one is skipped with a line saying so.

    A trial killed while its storage was writing (a full disk, a node lost mid-upload) leaves a
    truncated newest checkpoint and a whole one before it: losing one epoch beats losing the trial.
    """
    damaged = []
    for candidate in checkpoints:
        try:
            with candidate.as_directory() as folder:
                path = find_checkpoint(folder)
                if path is None:
                    raise CheckpointError(f"no {CHECKPOINT_NAME} in it")
                state = load_checkpoint(path)
        except (CheckpointError, OSError) as e:
            damaged.append(f"{candidate.path}: {e}")
            continue
        if damaged:
            print(f"warning: skipped a damaged checkpoint ({'; '.join(damaged)}); resuming from "
                  f"{candidate.path} (epoch {state['epoch']})", file=sys.stderr, flush=True)
        return state
    if damaged:
        print(f"warning: no kept checkpoint of this trial loads ({'; '.join(damaged)}); training it again "
              "from epoch 0", file=sys.stderr, flush=True)
    return None
