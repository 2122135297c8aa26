"""``--warm-start RUN_DIR``: an earlier search's finished trials inform the new search's sampler.

They are copied into the new study with Optuna's own ``Study.add_trials`` and marked
``user_attrs["origin"] = "warm_start"``. No Tune trial runs them, so they do not count against
``--num-samples``, and they are never the new search's best config.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .config import SearchConfig
from .constants import SEARCH_JSON, STUDY_DB, study_url
from .study import EPOCHS, ORIGIN, WARM_START
from .errors import SearchError


@dataclass
class WarmStart:
    source: str
    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    max_epochs: int | None = None
    same_data: bool = True
    notes: list[str] = field(default_factory=list)

    def add_to(self, study: optuna.Study) -> None:
        study.add_trials(self.trials)
        for note in self.notes:
            print(f"note: --warm-start: {note}", file=sys.stderr)

    def describe(self) -> dict:
        return {"source": self.source, "trials": len(self.trials), "source_max_epochs": self.max_epochs,
                "same_data": self.same_data, "notes": self.notes}


def load_warm_trials(config: SearchConfig, run_dir: Path, data_info: dict) -> WarmStart:
    """The finished (COMPLETE and PRUNED) trials of the search in ``run_dir``, ready for ``add_trials``."""
    run_dir = run_dir.expanduser().resolve()
    summary_path = run_dir / SEARCH_JSON
    if not (run_dir / STUDY_DB).is_file() or not summary_path.is_file():
        raise SearchError(f"--warm-start {run_dir}: no search there (study.db and search.json); pass an earlier "
                          "search's --out folder")
    earlier = SearchConfig.from_run(run_dir)
    if earlier.space != config.space:
        raise SearchError(f"--warm-start {run_dir}: that search used space {earlier.space!r}, this one "
                          f"{config.space!r}; warm-start only from the same space")
    source = optuna.load_study(study_name=earlier.study_name, storage=study_url(run_dir))
    warm = WarmStart(source=str(run_dir), max_epochs=earlier.max_epochs)
    for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        warm.trials.append(optuna.trial.create_trial(
            state=t.state,
            value=t.value if t.state == TrialState.COMPLETE else None,
            params=t.params,
            distributions=t.distributions,
            intermediate_values=t.intermediate_values,
            user_attrs={ORIGIN: WARM_START, "source": str(run_dir), "source_number": t.number,
                        EPOCHS: t.user_attrs.get(EPOCHS, len(t.intermediate_values))},
        ))
    if not warm.trials:
        raise SearchError(f"--warm-start {run_dir}: that search has no finished trial to learn from")
    before = json.loads(summary_path.read_text()).get("data") or {}
    warm.same_data = all(before.get(k) == data_info.get(k) for k in ("fingerprint", "sizes", "train_subset", "seed"))
    warm.notes.append(f"{len(warm.trials)} finished trials of {run_dir} added to the study as they were "
                      f"(COMPLETE and PRUNED), marked origin=warm_start; they inform TPE and are never the best config")
    if warm.max_epochs != config.max_epochs:
        warm.notes.append(f"they ran at most {warm.max_epochs} epochs, this search {config.max_epochs}: their "
                          "accuracies are lower-fidelity, and TPE reads them as results of their configs; the "
                          "new trials' results supersede them as they arrive")
    if not warm.same_data:
        warm.notes.append("they were trained on other data (source, split or subset): they rank configs, "
                          "their accuracies are not comparable with this search's")
    return warm
