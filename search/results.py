"""What a search writes (``search.json``, ``trials.csv``, ``best/config.json``) and reads back as a ``SearchResult``.

Each is written from the study alone (its trials and the search's record, ``search/state.py``),
so each can be written again from it: ``read_summary`` gives ``search.json``'s content whether
the file is there or not.
"""

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
from .state import FINISHED, INTERRUPTED, STARTED, inspect_study, read_record, record_of, save_record
from .study import (EPOCHS, FAIL_REASON, NODE, NODE_IP, RAY_TRIAL_ID, WALL_SECONDS, WARM_START, best_complete_trial,
                    count_trials, curve, is_warm_start)

# best/config.json's keys: the best trial, its Tune trial, its val_acc, its params, its whole RunConfig, the data.
BEST_TRIAL, BEST_VAL_ACC, BEST_PARAMS, BEST_RUN_CONFIG, BEST_DATA = "trial", METRIC, "params", "config", "data"


@dataclass
class SearchResult:
    """What a search found, read back from its run folder."""

    out: Path  # the run folder
    config: SearchConfig  # the search, as its study records it
    best_trial: int | None  # the best trial that ran every epoch; None when none did
    best_val_acc: float | None  # its validation accuracy
    best_config: dict | None  # its RunConfig as a dict: RunConfig.from_dict(result.best_config)
    trials: pd.DataFrame  # trials.csv: one row per trial
    test_acc: float | None = None  # the retrain's, on the test set, evaluated once
    interrupted: bool = False  # trials are left to run: run_search(result.config, resume=True) continues

    @classmethod
    def from_run(cls, run_dir: str | Path) -> SearchResult:
        out = Path(run_dir).resolve()
        record = read_record(out) or {}
        best = _read_json(out / BEST / BEST_CONFIG) or {}
        metrics = _read_json(out / BEST / BEST_METRICS) or {}
        trials = pd.read_csv(out / TRIALS_CSV) if (out / TRIALS_CSV).is_file() else pd.DataFrame()
        return cls(out=out, config=SearchConfig.from_run(out), best_trial=best.get(BEST_TRIAL),
                   best_val_acc=best.get(BEST_VAL_ACC), best_config=best.get(BEST_RUN_CONFIG), trials=trials,
                   test_acc=metrics.get("test_acc"), interrupted=bool(record.get(INTERRUPTED)))


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


def summarize(study: optuna.Study) -> dict:
    """``search.json``'s content: the search's record in the study, then its trials counted (``TrialCounts``) and
    its best trial."""
    record = record_of(study)
    counts = count_trials(study)
    best = best_complete_trial(study)
    started, finished = record.get(STARTED), record.get(FINISHED)
    span = None
    if started and finished:  # from the first start to the last end: the wall time a user waited, pauses included
        span = (dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(started)).total_seconds()
    return {
        **record,
        "span_seconds": span,
        "samples": counts.samples,
        "completed": counts.complete,
        "pruned": counts.pruned + counts.budget,
        "cut_by_time_budget": counts.budget,  # of the pruned
        "failed": counts.failed,
        "invalid_suggestions": counts.invalid,
        "running": counts.running,
        "warm_start_trials": counts.warm_start,
        "trial_epochs": sum(int(t.user_attrs.get(EPOCHS, len(t.intermediate_values)))
                            for t in study.get_trials(deepcopy=False) if not is_warm_start(t)),
        "best_trial": best.number if best else None,
        "best_val_acc": best.value if best else None,
    }


def read_summary(run_dir: str | Path) -> dict | None:
    """``search.json``'s content, rebuilt from the study in ``run_dir`` (the file itself is not read); None when
    there is no study, and the file's own content for a search from before the study held the record."""
    study = inspect_study(run_dir)
    if study is None or "config" not in record_of(study):
        return _read_json(Path(run_dir) / SEARCH_JSON)
    return summarize(study)


def write_results(out: Path, study: optuna.Study, base: RunConfig, weights_by_arch: dict[str, str]) -> dict:
    """``trials.csv``, ``search.json`` and the best trial's ``best/config.json``, all from the study; returns the
    summary in ``search.json``."""
    write_text(out / TRIALS_CSV, trials_table(study).to_csv(index=False))
    save_record(study, versions=versions())
    summary = summarize(study)
    write_json(out / SEARCH_JSON, summary)
    best = best_complete_trial(study)
    if best is not None:
        write_json(out / BEST / BEST_CONFIG, {
            BEST_TRIAL: best.number,
            RAY_TRIAL_ID: best.user_attrs.get(RAY_TRIAL_ID),
            BEST_VAL_ACC: best.value,
            BEST_PARAMS: best.params,
            BEST_RUN_CONFIG: trial_config(base, best.params, weights_by_arch).to_dict(),
            BEST_DATA: summary.get("data"),
        })
    return summary


def print_summary(summary: dict, out: Path, storage_path: str) -> None:
    best = (f"best val_acc {summary['best_val_acc']:.4f} (trial {summary['best_trial']})"
            if summary["best_trial"] is not None else "no trial ran all epochs: no best config")
    cut = summary.get("cut_by_time_budget", 0)
    pruned = f"{summary['pruned']} pruned" + (f" ({cut} by the time budget)" if cut else "")
    invalid = summary.get("invalid_suggestions", 0)
    print(
        f"\n{summary['config']['space']}: {summary['completed']} completed, {pruned}, "
        f"{summary['failed']} failed{f' ({invalid} invalid suggestions not run)' if invalid else ''} in "
        f"{summary['wall_seconds'] / 60:.1f} min "
        f"({summary['trial_epochs']} trial-epochs); {best}\n"
        f"  study:  {out / STUDY_DB}  (optuna-dashboard {study_url(out)})\n"
        f"  trials: {out / TRIALS_CSV}\n"
        f"  best:   {out / BEST / BEST_CONFIG}\n"
        f"  ray:    {storage_path.rstrip('/')}/{EXPERIMENT}"
    )
