"""The search's own record in its study: what defines it, what it ran on, how it ended, and its wall time.

The study's trials are the search (``search/study.py``); its user attributes hold the rest of
what a resume, a warm start, a retrain or a report needs, one key each (``RECORD_KEYS``):
the ``SearchConfig``, the data, when it started, the wall time of every run so far, the plans,
and the end state (``finished``, ``interrupted``, ``time_budget_hit``). ``search.json`` is a
summary written from them (``search/results.py``): deleting it changes nothing.

Every reader that only inspects a run folder opens its study read-only (``inspect_study``):
Optuna's storage creates its tables in a file it opens for writing, and an inspection must leave
a damaged or empty ``study.db`` as it found it.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from pathlib import Path

import optuna
import sqlalchemy.exc
import sqlalchemy.pool

from .constants import SEARCH_JSON, STUDY_DB
from .errors import SearchError
from .study import RAY_TRIAL_ID

# The study's user attributes that make up the search's record (and the start of search.json).
CONFIG = "config"  # SearchConfig.to_dict(): the search as defined
DATA = "data"  # CIFAR10Data.describe(): the images its trials saw
STARTED = "started"  # ISO time of its first start
WALL_SECONDS = "wall_seconds"  # the Tune runs' wall time, summed over the runs of a resumed search
FINISHED = "finished"  # ISO time its last run ended; None while one runs, or after a kill
INTERRUPTED = "interrupted"  # trials are left to run: --resume continues it
TIME_BUDGET_HIT = "time_budget_hit"  # --time-budget ended it


def _jsonable(value):
    """What Optuna's storage can hold (JSON): paths and other objects as their text, as search.json writes them."""
    return json.loads(json.dumps(value, default=str))


def save_record(study: optuna.Study, **fields) -> None:
    """Set these keys of the search's record in ``study``; the others keep their value."""
    for key, value in fields.items():
        study.set_user_attr(key, _jsonable(value))


def record_start(study: optuna.Study, config: dict, data: dict, *, resume: bool, **extra) -> float:
    """Record a run of the search as it starts: its definition and data, and no end yet, so that a run killed from
    here on reads as resumable. Returns the wall time of the runs before it (0 for a new search)."""
    if not resume:
        save_record(study, **{STARTED: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    save_record(study, **{CONFIG: config, DATA: data, FINISHED: None, INTERRUPTED: None, TIME_BUDGET_HIT: None},
                **extra)
    return float(record_of(study).get(WALL_SECONDS) or 0.0) if resume else 0.0


def record_end(study: optuna.Study, wall_seconds: float, *, interrupted: bool, time_budget_hit: bool,
               **extra) -> None:
    """Record how a run of the search ended, and the wall time of every run so far."""
    save_record(study, **{WALL_SECONDS: wall_seconds, FINISHED: dt.datetime.now(dt.timezone.utc).isoformat(
        timespec="seconds"), INTERRUPTED: interrupted, TIME_BUDGET_HIT: time_budget_hit}, **extra)


def record_of(study: optuna.Study) -> dict:
    """The search's record as the study holds it: every user attribute of the study."""
    return dict(study.user_attrs)


def _readonly_url(db: Path) -> str:
    # SQLite's own read-only mode: the storage then cannot create tables or journal anything.
    return f"sqlite:///file:{urllib.parse.quote(str(db.resolve()))}?mode=ro&uri=true"


def inspect_study(out: str | Path) -> optuna.Study | None:
    """The study in ``out``, opened read-only; None when there is none, or Optuna died before creating it.

    Raises SearchError for a file that is not an Optuna study.
    """
    db = Path(out) / STUDY_DB
    if not db.is_file():
        return None
    try:
        # No pool: each read closes its connection, so an inspection holds no file open afterwards.
        storage = optuna.storages.RDBStorage(_readonly_url(db), engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})
        names = optuna.study.get_all_study_names(storage)
    except sqlalchemy.exc.OperationalError:  # SQLAlchemy wraps the driver's errors
        return None  # its tables not created yet (a read-only open cannot create them): Optuna died creating it
    except sqlalchemy.exc.DatabaseError as e:
        raise SearchError(f"{db} is not an Optuna study ({str(e).splitlines()[0]}); choose another --out") from None
    if not names:
        return None
    return optuna.load_study(study_name=names[0], storage=storage)


def any_trial_started(out: str | Path) -> bool:
    """Whether the study in ``out`` holds a trial handed to Tune (the searcher tags each with its Tune trial's id)."""
    study = inspect_study(out)
    return study is not None and any(RAY_TRIAL_ID in t.user_attrs for t in study.get_trials(deepcopy=False))


def read_record(out: str | Path) -> dict | None:
    """The search's record in ``out``, from its study; None when there is no search there.

    A search written before the record moved into the study has it in ``search.json`` only.
    """
    study = inspect_study(out)
    record = record_of(study) if study is not None else {}
    if CONFIG not in record and (Path(out) / SEARCH_JSON).is_file():
        return json.loads((Path(out) / SEARCH_JSON).read_text())
    return record or None
