"""Names the search's modules share: the metric, the run folder's files, and the study's URL."""

from __future__ import annotations

from pathlib import Path

METRIC, MODE = "val_acc", "max"  # what every trial reports each epoch, and which way is better

# A run folder (--out):
STUDY_DB = "study.db"  # the Optuna study: every trial's params, curve and state
SEARCH_JSON = "search.json"  # the SearchConfig, the data's description, then the summary
TRIALS_CSV = "trials.csv"  # one row per trial
BEST = "best"  # config.json from the search; model.pt, metrics.json and history.json from the retrain
ASHA_STATE = "asha_state.json"  # PersistentASHA's rungs and decisions
EXPERIMENT = "tune"  # the Ray experiment's folder under the storage path (--out by default)

# user_attrs["origin"] of the trials --warm-start copied in from an earlier search.
WARM_START = "warm_start"


def study_url(out: str | Path) -> str:
    """The study's storage URL (``optuna-dashboard`` takes it too)."""
    return f"sqlite:///{Path(out).resolve() / STUDY_DB}"
