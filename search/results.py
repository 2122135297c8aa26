"""What a search writes (``search.json``, ``trials.csv``, ``best/config.json``) and reads back as a ``SearchResult``."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd

from model.checkpoint import versions, write_json, write_text
from model.config import RunConfig

from .config import SearchConfig, trial_config
from .constants import BEST, BEST_CONFIG, BEST_METRICS, EXPERIMENT, METRIC, SEARCH_JSON, STUDY_DB, TRIALS_CSV, study_url
from .study import (BUDGET, EPOCHS, FAIL_REASON, NODE, NODE_IP, RAY_TRIAL_ID, WALL_SECONDS, WARM_START,
                    best_complete_trial, curve, is_warm_start, label, own_trials)


@dataclass
class SearchResult:
    """What a search found, read back from its run folder."""

    out: Path  # the run folder
    config: SearchConfig  # the search, as saved in search.json
    best_trial: int | None  # the best trial that ran every epoch; None when none did
    best_val_acc: float | None  # its validation accuracy
    best_config: dict | None  # its RunConfig as a dict: RunConfig.from_dict(result.best_config)
    trials: pd.DataFrame  # trials.csv: one row per trial
    test_acc: float | None = None  # the retrain's, on the test set, evaluated once
    interrupted: bool = False  # trials are left to run: run_search(result.config, resume=True) continues

    @classmethod
    def from_run(cls, run_dir: str | Path) -> SearchResult:
        out = Path(run_dir).resolve()
        summary = _read_json(out / SEARCH_JSON) or {}
        best = _read_json(out / BEST / BEST_CONFIG) or {}
        metrics = _read_json(out / BEST / BEST_METRICS) or {}
        trials = pd.read_csv(out / TRIALS_CSV) if (out / TRIALS_CSV).is_file() else pd.DataFrame()
        return cls(out=out, config=SearchConfig.from_run(out), best_trial=best.get("trial"),
                   best_val_acc=best.get("val_acc"), best_config=best.get("config"), trials=trials,
                   test_acc=metrics.get("test_acc"), interrupted=bool(summary.get("interrupted")))


ATTR_COLUMNS = (WALL_SECONDS, NODE, NODE_IP, RAY_TRIAL_ID, FAIL_REASON)  # trials.csv's columns from user attrs


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial of the study: number, origin, state, params, epochs, best/last val_acc, Optuna's value,
    wall time, node, Tune trial id and why it failed.

    ``origin`` is ``search`` for this search's trials and ``warm_start`` for those copied from an
    earlier search (which no Tune trial ran here).
    """
    rows = []
    names: list[str] = []
    for t in study.get_trials(deepcopy=False):
        values = curve(t)
        names += [n for n in t.params if n not in names]
        rows.append({
            "number": t.number,
            "origin": WARM_START if is_warm_start(t) else "search",
            "state": t.state.name,
            **{f"params_{k}": v for k, v in t.params.items()},
            EPOCHS: t.user_attrs.get(EPOCHS, len(values)),
            f"best_{METRIC}": max(values) if values else None,
            f"last_{METRIC}": values[-1] if values else None,
            METRIC: t.value,  # Optuna's: a COMPLETE trial's last epoch, a PRUNED one's last before it stopped
            **{key: t.user_attrs.get(key) for key in ATTR_COLUMNS},
        })
    columns = ["number", "origin", "state", *[f"params_{n}" for n in names], EPOCHS, f"best_{METRIC}",
               f"last_{METRIC}", METRIC, *ATTR_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    for n in names:
        # As the space gave them: an int asked by some trials only must not turn into a float.
        table[f"params_{n}"] = pd.Series([row.get(f"params_{n}") for row in rows], dtype=object)
    return table


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_started(out: Path, config: SearchConfig, started: str, data_info: dict, extra: dict) -> None:
    """``search.json`` as a search starts: its config and data, so that it can be resumed or reported."""
    write_json(out / SEARCH_JSON, {"config": config.to_dict(), "started": started, "finished": None,
                                   "data": data_info, **extra})


def write_results(config: SearchConfig, out: Path, study: optuna.Study, base: RunConfig,
                  weights_by_arch: dict[str, str], data_info: dict, started: str, wall: float,
                  extra: dict | None = None) -> dict:
    """``trials.csv``, the summary in ``search.json`` and the best trial's ``best/config.json``; returns the summary.

    All three are read from the study, as the report is, so that they count the same trials.
    """
    table = trials_table(study)
    write_text(out / TRIALS_CSV, table.to_csv(index=False))
    own = table[table["origin"] == "search"]
    counts = own["state"].value_counts().to_dict()
    best = best_complete_trial(study)
    finished = dt.datetime.now(dt.timezone.utc)
    summary = {
        "config": config.to_dict(),
        "wall_seconds": wall,  # summed over the runs of a resumed search
        # From the first start to this end: the wall time a user waited, pauses between runs included.
        "span_seconds": (finished - dt.datetime.fromisoformat(started)).total_seconds(),
        "completed": counts.get("COMPLETE", 0),
        "pruned": counts.get("PRUNED", 0),
        "cut_by_time_budget": [label(t) for t in own_trials(study)].count(BUDGET),  # of the pruned
        "failed": counts.get("FAIL", 0),
        "warm_start_trials": int((table["origin"] == WARM_START).sum()),
        "trial_epochs": int(own["epochs"].fillna(0).sum()),
        "best_trial": best.number if best else None,
        "best_val_acc": best.value if best else None,
        "started": started,
        "finished": finished.isoformat(timespec="seconds"),
        "data": data_info,
        "versions": versions(),
        **(extra or {}),
    }
    write_json(out / SEARCH_JSON, summary)
    if best is not None:
        write_json(out / BEST / BEST_CONFIG, {
            "trial": best.number,
            RAY_TRIAL_ID: best.user_attrs.get(RAY_TRIAL_ID),
            "val_acc": best.value,
            "params": best.params,
            "config": trial_config(base, best.params, weights_by_arch).to_dict(),
            "data": data_info,
        })
    return summary


def print_summary(summary: dict, out: Path, storage_path: str) -> None:
    best = (f"best val_acc {summary['best_val_acc']:.4f} (trial {summary['best_trial']})"
            if summary["best_trial"] is not None else "no trial ran all epochs: no best config")
    cut = summary.get("cut_by_time_budget", 0)
    pruned = f"{summary['pruned']} pruned" + (f" ({cut} by the time budget)" if cut else "")
    print(
        f"\n{summary['config']['space']}: {summary['completed']} completed, {pruned}, "
        f"{summary['failed']} failed in {summary['wall_seconds'] / 60:.1f} min "
        f"({summary['trial_epochs']} trial-epochs); {best}\n"
        f"  study:  {out / STUDY_DB}  (optuna-dashboard {study_url(out)})\n"
        f"  trials: {out / TRIALS_CSV}\n"
        f"  best:   {out / BEST / BEST_CONFIG}\n"
        f"  ray:    {storage_path.rstrip('/')}/{EXPERIMENT}"
    )
