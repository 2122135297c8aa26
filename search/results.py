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
from .constants import BEST, EXPERIMENT, SEARCH_JSON, STUDY_DB, TRIALS_CSV, WARM_START, study_url
from .trials import best_complete_trial, trials_table


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
        best = _read_json(out / BEST / "config.json") or {}
        metrics = _read_json(out / BEST / "metrics.json") or {}
        trials = pd.read_csv(out / TRIALS_CSV) if (out / TRIALS_CSV).is_file() else pd.DataFrame()
        return cls(out=out, config=SearchConfig.from_run(out), best_trial=best.get("trial"),
                   best_val_acc=best.get("val_acc"), best_config=best.get("config"), trials=trials,
                   test_acc=metrics.get("test_acc"), interrupted=bool(summary.get("interrupted")))


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

    Every trial of the study is a row, orphans too (FAIL, fail_reason ``orphaned``), so that the
    table, this summary and the report count the same trials.
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
        write_json(out / BEST / "config.json", {
            "trial": best.number,
            "ray_trial_id": best.user_attrs.get("ray_trial_id"),
            "val_acc": best.value,
            "params": best.params,
            "config": trial_config(base, best.params, weights_by_arch).to_dict(),
            "data": data_info,
        })
    return summary


def print_summary(summary: dict, out: Path, storage_path: str) -> None:
    best = (f"best val_acc {summary['best_val_acc']:.4f} (trial {summary['best_trial']})"
            if summary["best_trial"] is not None else "no trial ran all epochs: no best config")
    print(
        f"\n{summary['config']['space']}: {summary['completed']} completed, {summary['pruned']} pruned, "
        f"{summary['failed']} failed in {summary['wall_seconds'] / 60:.1f} min "
        f"({summary['trial_epochs']} trial-epochs); {best}\n"
        f"  study:  {out / STUDY_DB}  (optuna-dashboard {study_url(out)})\n"
        f"  trials: {out / TRIALS_CSV}\n"
        f"  best:   {out / BEST / 'config.json'}\n"
        f"  ray:    {storage_path.rstrip('/')}/{EXPERIMENT}"
    )
