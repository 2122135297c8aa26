"""The trials of a search as one table, and the rule that picks its best trial (read from the study alone)."""

from __future__ import annotations

import math

import optuna
import pandas as pd

from .constants import METRIC, WARM_START


def curve(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Validation accuracy per epoch, NaNs (diverged epochs) dropped."""
    values = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
    return [v for v in values if not math.isnan(v)]


def is_warm_start(t: optuna.trial.FrozenTrial) -> bool:
    return t.user_attrs.get("origin") == WARM_START


def trials_table(study: optuna.Study, tune_ids: set[str] | None = None) -> pd.DataFrame:
    """One row per trial: number, origin, state, params, epochs, best/last val_acc, Optuna's value, wall time, node.

    ``origin`` is ``search`` for this search's trials and ``warm_start`` for those copied from an
    earlier search (which no Tune trial ran here). With ``tune_ids``, this search's trials that no
    Tune trial ran (orphans) are left out.
    """
    rows = []
    names: list[str] = []
    for t in study.get_trials(deepcopy=False):
        warm = is_warm_start(t)
        if not warm and tune_ids is not None and t.user_attrs.get("ray_trial_id") not in tune_ids:
            continue
        values = curve(t)
        names += [n for n in t.params if n not in names]
        rows.append({
            "number": t.number,
            "origin": WARM_START if warm else "search",
            "state": t.state.name,
            **{f"params_{k}": v for k, v in t.params.items()},
            "epochs": t.user_attrs.get("epochs", len(values)),
            f"best_{METRIC}": max(values) if values else None,
            f"last_{METRIC}": values[-1] if values else None,
            METRIC: t.value,  # Optuna's: a COMPLETE trial's last epoch, a PRUNED one's last before it stopped
            "wall_seconds": t.user_attrs.get("wall_seconds"),
            "node": t.user_attrs.get("node"),
            "node_ip": t.user_attrs.get("node_ip"),
            "ray_trial_id": t.user_attrs.get("ray_trial_id"),
            "fail_reason": t.user_attrs.get("fail_reason"),
        })
    columns = ["number", "origin", "state", *[f"params_{n}" for n in names], "epochs", f"best_{METRIC}",
               f"last_{METRIC}", METRIC, "wall_seconds", "node", "node_ip", "ray_trial_id", "fail_reason"]
    table = pd.DataFrame(rows, columns=columns)
    for n in names:
        # As the space gave them: an int asked by some trials only must not turn into a float.
        table[f"params_{n}"] = pd.Series([row.get(f"params_{n}") for row in rows], dtype=object)
    return table


def best_complete_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best trial of this search that ran every epoch (warm-start trials are not candidates)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if not is_warm_start(t)]
    return max(complete, key=lambda t: t.value) if complete else None
