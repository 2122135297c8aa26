"""Names the search's modules share: the metric, the run folder's files, and the study's URL."""

from __future__ import annotations

from pathlib import Path

METRIC, MODE = "val_acc", "max"  # what every trial reports each epoch, and which way is better

# A run folder (--out):
STUDY_DB = "study.db"  # the Optuna study: every trial's params, curve and state
SEARCH_JSON = "search.json"  # the SearchConfig, the data's description, then the summary
TRIALS_CSV = "trials.csv"  # one row per trial
BEST = "best"  # the best config and its retrain:
BEST_CONFIG = "config.json"  # the search's best trial and its full RunConfig
BEST_MODEL, BEST_METRICS, BEST_HISTORY = "model.pt", "metrics.json", "history.json"  # written by the retrain
EXPERIMENT = "tune"  # Tune's runs of the search under the storage path (--out by default): trial logs, checkpoints
KEPT_CHECKPOINTS = 2  # per trial: Tune's num_to_keep, and the checkpoints the study records for a resume


def study_url(out: str | Path) -> str:
    """The study's storage URL (``optuna-dashboard`` takes it too)."""
    return f"sqlite:///{Path(out).resolve() / STUDY_DB}"
