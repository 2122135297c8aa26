"""What a search will do and what it will cost, said in one line before its first trial has trained an epoch.

The cost is an estimate from a speed measured here: a few training steps of the search's first
config (its recipe), through the training loop's own code (``model.train.train_one_epoch`` over a
``DeviceLoader``), run as a Ray task with a trial's resources, so on the trials' device and
threads; the rest of that task's wall time (a worker starting, building the model) is each
trial's start-up. The space's other configs are scaled by their multiply-adds per image
(architecture and input size), the trial-epochs by ASHA's rungs (``1/R`` of the trials go on at
each, as the progress line's estimate assumes), validation at a third of a training step's cost.
It is an estimate, and says so ("est."); ``search.json`` keeps its numbers (``plan``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from model.build import build_model
from model.config import RunConfig
from model.data import CIFAR10Data
from model.device import configure_threads, grad_scaler, precision, resolve_device
from model.optim import build_optimizer, build_scheduler
from model.train import make_loader, train_one_epoch
from spaces.asks import sample_space

from .config import SearchConfig, trial_config
from .progress import expected_epochs_left, format_duration
from .tune.scheduler import asha_rungs

PROBE_BATCHES = 3  # timed, after one batch of warm-up (one-off allocations, oneDNN and cuDNN choosing kernels)
SPACE_SAMPLES = 16  # configs of the space whose multiply-adds are averaged
EVAL_COST = 1 / 3  # an image validated costs about a third of one trained: a forward pass, no backward
LONG_S = 3600.0  # past this, the line names --time-budget and the first look

FIRST_LOOK = ("./hpo search --space scratch --choices arch=resnet20 --train-subset 5000 --val-size 1000 "
              "--max-epochs 4 --num-samples 16 --cpus-per-trial 1 --time-budget 10m --out runs/first-look")


@dataclass
class Plan:
    """A search's plan and its estimated cost; ``search.json`` saves it as ``plan``."""

    trials: int  # to run in this command (a resume: those not finished)
    max_epochs: int
    train_images: int
    val_images: int
    at_once: int
    device: str
    measured: dict  # the config timed: arch, batch_size, input_size, images_per_second
    images_per_second: float  # one trial's training speed, averaged over the space's configs
    trial_start_s: float  # a trial's start-up: its worker, its model
    trial_epochs: float  # expected, ASHA's rungs included
    search_seconds: float
    retrain_epochs: int
    retrain_seconds: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def epoch_seconds(self) -> float:
        """One trial-epoch: its training images, then its validation images."""
        return (self.train_images + EVAL_COST * self.val_images) / self.images_per_second


def measure(cfg: RunConfig, data: CIFAR10Data, pretrained: dict | None = None) -> float:
    """Training images per second of ``cfg`` on its device: ``PROBE_BATCHES`` steps after one of warm-up."""
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_threads(cfg.threads)
    weights = pretrained if pretrained is not None and cfg.weights is not None else None
    model = build_model(cfg.arch, num_classes=len(data.classes), weights=weights, frozen_stages=cfg.frozen_stages)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    scaler = grad_scaler(precision(device, cfg.amp))

    def timed(batches: int) -> float:
        n = cfg.batch_size * min(batches, max(1, len(data.train_labels) // cfg.batch_size))
        loader = make_loader(cfg, data, data.train_images[:n], data.train_labels[:n], device, train=True)
        optimizer = build_optimizer(model, cfg)
        result = train_one_epoch(model, criterion, optimizer, build_scheduler(optimizer, cfg, len(loader)), loader,
                                 device, amp=cfg.amp, scaler=scaler)
        return result["images"] / result["seconds"]

    timed(1)
    return timed(PROBE_BATCHES)


def mult_adds(cfg: RunConfig, num_classes: int) -> float:
    """Multiply-adds of one image's forward pass through ``cfg``'s model, at its input size."""
    model = build_model(cfg.arch, num_classes=num_classes, stem="imagenet" if cfg.weights else None).eval()
    total = [0]

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            total[0] += output.numel() * module.in_channels // module.groups * module.weight[0, 0].numel()
        elif isinstance(module, torch.nn.Linear):
            total[0] += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                         torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, cfg.input_size, cfg.input_size))
    for h in hooks:
        h.remove()
    return float(total[0])


def make_plan(config: SearchConfig, *, base: RunConfig, space, first: dict, weights_by_arch: dict,
              data: CIFAR10Data, speed: float, start_s: float, trials: int, slots: int) -> Plan:
    """The plan from the measured ``speed`` of ``first`` (images/s of one trial) and start-up ``start_s``."""
    timed = trial_config(base, first, weights_by_arch)
    cache: dict[tuple, float] = {}

    def cost(cfg: RunConfig) -> float:
        key = (cfg.arch, cfg.input_size, bool(cfg.weights))
        if key not in cache:
            cache[key] = mult_adds(cfg, len(data.classes))
        return cache[key]

    configs = [trial_config(base, t.params, weights_by_arch) for t in sample_space(space, SPACE_SAMPLES, config.seed)]
    average = sum(cost(c) for c in configs) / len(configs)
    images_per_second = speed * cost(timed) / average
    rungs = sorted({m for m in asha_rungs(config.max_epochs, config.grace_period, config.reduction_factor)}) \
        if config.scheduler == "asha" else []
    per_trial = expected_epochs_left(0, config.max_epochs, rungs, config.reduction_factor if rungs else None)
    at_once = max(1, min(slots, trials))
    plan = Plan(trials=trials, max_epochs=config.max_epochs, train_images=len(data.train_labels),
                val_images=len(data.val_labels), at_once=at_once, device=base.device,
                measured={"arch": timed.arch, "batch_size": timed.batch_size, "input_size": timed.input_size,
                          "images_per_second": speed},
                images_per_second=images_per_second, trial_start_s=start_s, trial_epochs=trials * per_trial,
                search_seconds=0.0,
                retrain_epochs=config.retrain_epochs or config.max_epochs, retrain_seconds=0.0)
    plan.search_seconds = (plan.trial_epochs * plan.epoch_seconds() + trials * start_s) / at_once
    if config.retrain:
        plan.retrain_seconds = plan.retrain_epochs * (plan.train_images + plan.val_images) / images_per_second
    return plan


def unmeasured_line(config: SearchConfig, trials: int, data: CIFAR10Data, slots: int, why: str) -> str:
    """The plan line when timing the first config failed: the plan, and why there is no estimate."""
    return (f"plan: {trials} trials of at most {config.max_epochs} epochs on {len(data.train_labels):,} images, "
            f"{max(1, min(slots, trials))} at once; no time estimate (timing the first config failed: {why})")


def plan_line(plan: Plan, config: SearchConfig) -> str:
    """``plan: 32 trials of at most 30 epochs on 45,000 images ...; about 2d (est.) ...``: one line."""
    threads = int(config.cpus_per_trial)
    where = plan.device + (f", {threads} thread{'s' if threads > 1 else ''} each" if plan.device == "cpu" else "")
    m = plan.measured
    line = (f"plan: {plan.trials} trials of at most {plan.max_epochs} epochs on {plan.train_images:,} images "
            f"(+{plan.val_images:,} to validate), {plan.at_once} at once on {where}; measured here "
            f"{m['images_per_second']:,.0f} images/s ({m['arch']}, batch {m['batch_size']}), about "
            f"{plan.images_per_second:,.0f} over the space's configs: {plan.trial_epochs:,.0f} trial-epochs "
            f"should take about {format_duration(plan.search_seconds)}")
    if plan.retrain_seconds:
        line += f", the retrain about {format_duration(plan.retrain_seconds)}"
    total = plan.search_seconds + plan.retrain_seconds
    if config.time_budget is not None:
        return line + f" (est.); --time-budget {config.time_budget} bounds it"
    line += " (est.)"
    if total > LONG_S:
        line += f"; to bound it add --time-budget (e.g. 2h), or take the first look: {FIRST_LOOK}"
    return line


def timed_config_task(cfg: RunConfig, data: CIFAR10Data, pretrained: dict | None) -> tuple[float, float]:
    """Ray task body: ``measure`` where the trials run; returns (images/s, seconds the timed steps took)."""
    t0 = time.perf_counter()
    speed = measure(cfg, data, pretrained)
    return speed, time.perf_counter() - t0


def probe_data(data: CIFAR10Data, cfg: RunConfig) -> CIFAR10Data:
    """The few training images the probe needs, so that only they travel to its node."""
    n = cfg.batch_size * (PROBE_BATCHES + 1)
    return dataclasses.replace(data, train_images=data.train_images[:n], train_labels=data.train_labels[:n],
                               val_images=data.val_images[:0], val_labels=data.val_labels[:0],
                               test_images=data.test_images[:0], test_labels=data.test_labels[:0])
