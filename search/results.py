"""What a search writes when it ends: ``trials.csv``, ``search.json``, ``best/config.json`` and the summary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import optuna
import pandas as pd

from model.checkpoint import versions, write_json

from .trial import run_config
from .tuner import EXPERIMENT, STUDY_DB

# user_attrs["origin"] of trials copied from an earlier search by --warm-start.
WARM_START = "warm_start"


def end_running(study: optuna.Study, select, state: optuna.trial.TrialState, attrs) -> int:
    """Set ``state`` and the user attrs ``attrs(trial)`` on every RUNNING trial that ``select(trial)`` picks."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not select(t):
            continue
        for key, value in attrs(t).items():
            study._storage.set_trial_user_attr(t._trial_id, key, value)
        study._storage.set_trial_state_values(t._trial_id, state)
        n += 1
    return n


def finish_orphans(study: optuna.Study, unfinished: set[str]) -> int:
    """Mark as FAIL every trial RUNNING in study.db that no Tune trial will ever finish.

    That happens when the driver died between asking Optuna for a config and snapshotting the
    experiment: on resume, Tune asks Optuna again, for a new trial.
    """
    return end_running(study, lambda t: t.user_attrs.get("ray_trial_id") not in unfinished,
                       optuna.trial.TrialState.FAIL, lambda t: {"fail_reason": "orphaned"})


def mark_cut_by_budget(study: optuna.Study, tune_ids: set[str]) -> int:
    """Trials that --time-budget cut short: PRUNED with their curve so far, like an ASHA stop.

    PRUNED, not COMPLETE, because they did not run every epoch: TPE and the plots read their
    accuracies as partial ones, and they are never the best config.
    """
    return end_running(study, lambda t: t.user_attrs.get("ray_trial_id") in tune_ids, optuna.trial.TrialState.PRUNED,
                       lambda t: {"stopped_by": "time_budget", "epochs": max(t.intermediate_values, default=0)})


def is_warm_start(t: optuna.trial.FrozenTrial) -> bool:
    return t.user_attrs.get("origin") == WARM_START


def trials_table(study: optuna.Study, tune_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per trial: number, origin, state, params, epochs, best/last val_acc, wall time, node.

    ``origin`` is ``search`` for this search's trials and ``warm_start`` for those copied
    from an earlier search (which no Tune trial ran here).
    """
    rows = []
    names: list[str] = []
    for t in study.get_trials(deepcopy=False):
        warm = is_warm_start(t)
        if not warm and tune_ids is not None and t.user_attrs.get("ray_trial_id") not in tune_ids:
            continue
        values = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        names += [n for n in t.params if n not in names]
        rows.append({
            "number": t.number,
            "origin": WARM_START if warm else "search",
            "state": t.state.name,
            **{f"params_{k}": v for k, v in t.params.items()},
            "epochs": t.user_attrs.get("epochs", len(values)),
            "best_val_acc": max(values) if values else None,
            "last_val_acc": values[-1] if values else None,
            "wall_seconds": t.user_attrs.get("wall_seconds"),
            "node": t.user_attrs.get("node"),
            "node_ip": t.user_attrs.get("node_ip"),
            "ray_trial_id": t.user_attrs.get("ray_trial_id"),
            "fail_reason": t.user_attrs.get("fail_reason"),
        })
    columns = ["number", "origin", "state", *[f"params_{n}" for n in names], "epochs", "best_val_acc",
               "last_val_acc", "wall_seconds", "node", "node_ip", "ray_trial_id", "fail_reason"]
    return pd.DataFrame(rows, columns=columns)


def best_complete_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best trial of this search that ran every epoch (warm-start trials are not candidates)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if not is_warm_start(t)]
    return max(complete, key=lambda t: t.value) if complete else None


def write_results(args, out: Path, study: optuna.Study, tune_ids: set[str], fixed: dict, data_info: dict,
                  started: str, wall: float, extra: dict | None = None) -> dict:
    table = trials_table(study, tune_ids)
    table.to_csv(out / "trials.csv", index=False)
    own = table[table["origin"] == "search"]
    counts = own["state"].value_counts().to_dict()
    best = best_complete_trial(study)
    summary = {
        "space": args.space,
        "num_samples": args.num_samples,
        "max_epochs": args.max_epochs,
        "wall_seconds": wall,
        "completed": counts.get("COMPLETE", 0),
        "pruned": counts.get("PRUNED", 0),
        "failed": counts.get("FAIL", 0),
        "warm_start_trials": int((table["origin"] == WARM_START).sum()),
        "trial_epochs": int(own["epochs"].fillna(0).sum()),
        "best_trial": best.number if best else None,
        "best_val_acc": best.value if best else None,
        "started": started,
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "args": vars(args),
        "data": data_info,
        "versions": versions(),
        **(extra or {}),
    }
    write_json(out / "search.json", summary)
    if best is not None:
        write_json(out / "best" / "config.json", {
            "trial": best.number,
            "ray_trial_id": best.user_attrs.get("ray_trial_id"),
            "val_acc": best.value,
            "params": best.params,
            "config": run_config(best.params, fixed).to_dict(),
            "data": data_info,
        })
    return summary


def print_summary(summary: dict, out: Path, storage_path: str) -> None:
    best = (f"best val_acc {summary['best_val_acc']:.4f} (trial {summary['best_trial']})"
            if summary["best_trial"] is not None else "no trial ran all epochs: no best config")
    print(
        f"\n{summary['space']}: {summary['completed']} completed, {summary['pruned']} pruned, "
        f"{summary['failed']} failed in {summary['wall_seconds'] / 60:.1f} min "
        f"({summary['trial_epochs']} trial-epochs); {best}\n"
        f"  study:  {out / STUDY_DB}  (optuna-dashboard sqlite:///{out / STUDY_DB})\n"
        f"  trials: {out / 'trials.csv'}\n"
        f"  best:   {out / 'best' / 'config.json'}\n"
        f"  ray:    {storage_path.rstrip('/')}/{EXPERIMENT}"
    )
