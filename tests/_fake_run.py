"""Fabricate a finished run folder (``runs/NAME/``) without training anything.

The folder holds what ``search`` writes: ``study.db`` (Optuna RDB storage, one study),
``trials.csv``, ``search.json`` and ``best/{config,metrics}.json``. Trials are made with
Optuna's own API, so the study looks like one a real search left behind: COMPLETE trials with
a learning curve over every epoch, PRUNED ones cut at an ASHA rung, FAIL ones that diverged,
and RUNNING ones when the search was interrupted. Everything is derived from ``seed``.
"""

import csv
import datetime
import json
import math
import random
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

JPEG_DATA = "/work/shared/data/cifar10-jpeg.tar.gz"

DISTRIBUTIONS = {
    "arch": CategoricalDistribution(["resnet20", "resnet56", "resnet18"]),
    "lr": FloatDistribution(1e-3, 1.0, log=True),
    "weight_decay": FloatDistribution(1e-5, 1e-2, log=True),
    "batch_size": CategoricalDistribution([128, 256, 512]),
    "augment": CategoricalDistribution(["none", "flip_crop"]),
    # Conditional: only the ImageNet-style resnet18 gets a separate backbone learning rate.
    "backbone_lr_mult": FloatDistribution(0.1, 1.0, log=True),
}
NODES = ("10.0.0.1", "10.0.0.2")
START = datetime.datetime(2025, 1, 1, 12, 0, 0)


def _sample_params(rng):
    """Draw one config, with ``backbone_lr_mult`` only where the space would suggest it."""
    params = {
        "arch": rng.choice(DISTRIBUTIONS["arch"].choices),
        "lr": math.exp(rng.uniform(math.log(1e-3), math.log(1.0))),
        "weight_decay": math.exp(rng.uniform(math.log(1e-5), math.log(1e-2))),
        "batch_size": rng.choice(DISTRIBUTIONS["batch_size"].choices),
        "augment": rng.choice(DISTRIBUTIONS["augment"].choices),
    }
    if params["arch"] == "resnet18":
        params["backbone_lr_mult"] = math.exp(rng.uniform(math.log(0.1), math.log(1.0)))
    return params


def _curve(params, epochs, rng):
    """Validation accuracy per epoch: rises towards a ceiling set by lr and augmentation."""
    ceiling = 0.55 + 0.3 * math.exp(-((math.log10(params["lr"]) + 1.0) ** 2))
    ceiling += 0.05 if params["augment"] == "flip_crop" else 0.0
    ceiling += rng.uniform(-0.02, 0.02)
    return [round(ceiling * (1.0 - 0.55**e), 4) for e in range(1, epochs + 1)]


def make_fake_run(
    run_dir,
    *,
    n_complete=6,
    n_pruned=5,
    n_failed=1,
    running=0,
    max_epochs=4,
    seed=0,
    with_search_json=True,
    with_best=True,
    with_metrics=True,
    space="smoke",
    data=JPEG_DATA,
):
    """Write a fake run folder at ``run_dir`` and return it as a Path."""
    if n_pruned and max_epochs < 2:
        raise ValueError("pruned trials need max_epochs >= 2 (ASHA stops before the last epoch)")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    # ASHA (reduction factor 2, grace period 1) stops trials at epochs 1, 2, 4, ...
    rungs = [2**k for k in range(max_epochs.bit_length()) if 2**k < max_epochs]

    states = (
        [TrialState.COMPLETE] * n_complete
        + [TrialState.PRUNED] * n_pruned
        + [TrialState.FAIL] * n_failed
    )
    rng.shuffle(states)
    # An interrupted search leaves its last trials running.
    states += [TrialState.RUNNING] * running

    storage = f"sqlite:///{(run_dir / 'study.db').resolve()}"
    study = optuna.create_study(study_name=space, storage=storage, direction="maximize")
    free_at = {node: START for node in NODES}  # two workers, each runs one trial at a time
    rows = []
    for number, state in enumerate(states):
        params = _sample_params(rng)
        if state == TrialState.COMPLETE:
            epochs = max_epochs
        elif state == TrialState.PRUNED:
            epochs = rng.choice(rungs)
        elif state == TrialState.FAIL:
            epochs = 1  # diverged in the first epoch
        else:
            epochs = max(1, max_epochs // 2)
        curve = _curve(params, epochs, rng)
        if state == TrialState.FAIL:
            curve = [0.1]  # chance level: the loss went to nan
        node = min(free_at, key=free_at.get)
        start = free_at[node]
        seconds = round(epochs * 30.0 * 256 / params["batch_size"] + rng.uniform(2, 6), 1)
        complete = start + datetime.timedelta(seconds=seconds)
        free_at[node] = complete + datetime.timedelta(seconds=1)
        user_attrs = {"ray_trial_id": f"{seed:04x}_{number:05d}", "node": node, "epochs": epochs}
        if state == TrialState.RUNNING:
            complete = None
        else:
            user_attrs["wall_seconds"] = seconds
        if state == TrialState.FAIL:
            user_attrs["error"] = "loss diverged (nan)"
        # FrozenTrial instead of optuna.trial.create_trial: only it takes the timestamps,
        # which the timeline plot and the wall time in the report are made of.
        study.add_trial(
            FrozenTrial(
                number=-1,
                trial_id=-1,
                state=state,
                value=curve[-1] if state == TrialState.COMPLETE else None,
                datetime_start=start,
                datetime_complete=complete,
                params=params,
                distributions={name: DISTRIBUTIONS[name] for name in params},
                user_attrs=user_attrs,
                system_attrs={},
                intermediate_values={e: v for e, v in enumerate(curve, start=1)},
            )
        )
        row = {"number": number, "state": state.name}
        row.update({f"params_{name}": params.get(name, "") for name in sorted(DISTRIBUTIONS)})
        row.update(
            epochs=epochs,
            best_val_acc=max(curve),
            last_val_acc=curve[-1],
            wall_seconds=user_attrs.get("wall_seconds", ""),
            node=node,
        )
        rows.append(row)

    with open(run_dir / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["number", "state"])
        writer.writeheader()
        writer.writerows(rows)

    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best = max(completed, key=lambda t: t.value) if completed else None
    finished = max(free_at.values()) if not running else None
    if with_search_json:
        summary = {
            "space": space,
            "num_samples": len(states),
            "max_epochs": max_epochs,
            "wall_seconds": (finished - START).total_seconds() if finished else None,
            "completed": n_complete,
            "pruned": n_pruned,
            "failed": n_failed,
            "best_trial": best.number if best else None,
            "best_val_acc": best.value if best else None,
            "started": START.isoformat(),
            "finished": finished.isoformat() if finished else None,
            "args": {
                "space": space,
                "num_samples": len(states),
                "max_epochs": max_epochs,
                "data": data,
                "seed": seed,
                "max_concurrent": len(NODES),
            },
        }
        (run_dir / "search.json").write_text(json.dumps(summary, indent=2))
    if with_best and best is not None:
        (run_dir / "best").mkdir(exist_ok=True)
        config = dict(best.params, epochs=max_epochs, momentum=0.9, seed=seed, data=data)
        best_json = {
            "trial": best.number,
            "val_acc": best.value,
            "params": best.params,
            "config": config,
        }
        (run_dir / "best" / "config.json").write_text(json.dumps(best_json, indent=2))
        if with_metrics:
            metrics = {
                "search_val_acc": best.value,
                "test_acc": round(best.value - 0.0123, 4),
                "epochs": max_epochs,
                "seconds": 61.5,
                "images_per_second": 41234.5,
                "device": "cuda:0 (NVIDIA H100 80GB HBM3)",
            }
            (run_dir / "best" / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return run_dir
