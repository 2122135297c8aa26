"""``--warm-start RUN_DIR``: an earlier search's finished trials, mapped into this search's space, inform this one.

The earlier search may have run fewer epochs, other data, other ``--choices``, another budget
plan or an edited space. Each of its finished trials is replayed through this search's space
(``spaces.asks.replay``), so that it has the distributions this search asks; the rules, and why
TPE still models every parameter, are in docs/warm-start.md. Then a fidelity rule (``FIDELITY``)
says how they enter. Trials copied into the new study (``Study.add_trials``) are marked
``user_attrs["origin"] = "warm_start"``: no Tune trial runs them, so they do not count against
``--num-samples``, ASHA never reads them, and they are never the new search's best config.
Configs enqueued (``Study.enqueue_trial``) are this search's own first trials.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

import spaces
from spaces.asks import inspect_space, replay

from .config import SearchConfig
from .constants import STUDY_DB, study_url
from .errors import SearchError
from .results import read_summary
from .study import EPOCHS, EPOCHS_PARAM, ORIGIN, WARM_START

# How a result at another fidelity than this search's (other --max-epochs, other data) enters the new
# study, by name (FIDELITY); each rule takes the mapped trials as the earlier search recorded them and
# returns the trials to add and the configs to enqueue. A result at this search's own fidelity is one it
# would measure again, and enters as it was under every rule (apply_fidelity).
# "as_is": every result as the earlier search recorded it, in TPE's model.
# "lower_rung": a COMPLETE result enters as a PRUNED trial with its curve, as ASHA's stops do (Optuna's
# TPE ranks every COMPLETE trial above every PRUNED one, and PRUNED ones by the epoch they reached).
# "top_k": a prior only. No such result enters TPE's model; the earlier search's k best configs are this
# search's first trials, run again at this search's fidelity, their run length (the parameter that sets a
# trial's epochs) left to the sampler.
# The default is measured (issue 34, benchmarks/README.md "Warm start from a cheaper search", and
# docs/warm-start.md).
DEFAULT_FIDELITY = "top_k"


def _as_is(trials, k: int, run_length: str | None):
    return trials, []


def _lower_rung(trials, k: int, run_length: str | None):
    # Optuna's value of a PRUNED trial: its last epoch's, as a COMPLETE one's.
    return [t if t.state != TrialState.COMPLETE else optuna.trial.create_trial(
        state=TrialState.PRUNED, value=t.value, params=t.params, distributions=t.distributions,
        intermediate_values=t.intermediate_values, user_attrs=t.user_attrs) for t in trials], []


def _top_k(trials, k: int, run_length: str | None):
    return [], best_configs(trials, k, run_length)


FIDELITY = {"as_is": _as_is, "lower_rung": _lower_rung, "top_k": _top_k}


def best_configs(trials: list[optuna.trial.FrozenTrial], k: int, run_length: str | None) -> list[dict]:
    """The params of the ``k`` best COMPLETE trials, best first, ``run_length`` left out (the sampler draws it).

    ``k`` is the new search's random start-up trials, which they replace: TPE's start is as long
    as it was, and made of configs known to be good. Keeping their short run length ended level
    with or worse than a cold start, and fewer of them (the best quarter or half) ended higher at
    budget 100 (issue 34's screen, benchmarks/README.md).
    """
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value, reverse=True)
    return [{p: v for p, v in t.params.items() if p != run_length} for t in complete[:k]]


@dataclass
class Mapping:
    """Earlier trials as the new space asks them, and what the mapping dropped, filled and left out."""

    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)  # "param=value" that dropped a trial -> trials
    left_out: Counter = field(default_factory=Counter)  # parameter left out of kept trials -> trials
    filled: Counter = field(default_factory=Counter)  # parameter filled with the value the trial ran with -> trials
    held: int = 0  # values of shared parameters the new space holds, over every trial


def map_trials(trials: list[optuna.trial.FrozenTrial], space, fills: dict | None = None, *,
               source: str = "", always: frozenset | None = None) -> Mapping:
    """``trials`` replayed through ``space``: each keeps the values the space holds, with its distributions, and
    its state and value as the earlier search recorded them (``apply_fidelity`` then reads them).

    A value the space cannot hold (a narrowed choice, a number out of range), or a parameter the
    trial lacks and ``fills`` (what its run used) cannot give, drops that parameter when the space
    asks it only on some branches, and drops the trial when the space always asks it: multivariate
    TPE models only the parameters every trial holds, so one trial without it would take it out of
    the model for every trial. A parameter the space no longer asks is left out.

    ``always``: the parameters ``space`` asks on every branch; by default ``inspect_space``'s, which
    takes only RunConfig fields (the curve benchmark passes a recorded table's own box).
    """
    always = inspect_space(space).always if always is None else always
    mapping = Mapping()
    for t in trials:
        asked = replay(space, t.params, fills)
        mapping.held += sum(n in t.params for n in asked.params)
        lost = [n for n in asked.unheld if n in always]
        if lost:
            mapping.dropped.update(f"{n}={t.params[n]!r}" if n in t.params else f"{n} missing" for n in lost)
            continue
        mapping.left_out.update(asked.unused + asked.unheld)
        mapping.filled.update(asked.filled)
        mapping.trials.append(optuna.trial.create_trial(
            state=t.state, value=t.value, params=asked.params, distributions=asked.distributions,
            intermediate_values=t.intermediate_values,
            user_attrs={ORIGIN: WARM_START, "source": source, "source_number": t.number,
                        "source_state": t.state.name, EPOCHS: t.user_attrs.get(EPOCHS, len(t.intermediate_values))},
        ))
    return mapping


@dataclass
class WarmStart:
    source: str
    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)  # added to the study, for TPE's model
    enqueued: list[dict] = field(default_factory=list)  # configs this search runs first (the top_k rule)
    max_epochs: int | None = None
    same_data: bool = True
    fidelity: str = DEFAULT_FIDELITY
    finished: int = 0  # the earlier search's finished trials, before the mapping
    dropped: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_to(self, study: optuna.Study, room: int | None = None) -> None:
        """Into a new study, after its recipes: the trials for TPE, and the configs that ``Study.ask`` hands out next.

        ``room``: at most this many configs enqueued (what ``--num-samples`` leaves after the recipes).
        """
        study.add_trials(self.trials)
        if room is not None and room < len(self.enqueued):
            self.notes.append(f"--num-samples leaves room for {room} of the {len(self.enqueued)} after the recipes")
            self.enqueued = self.enqueued[:room]
        for params in self.enqueued:
            study.enqueue_trial(params)
        for note in self.notes:
            print(f"note: --warm-start: {note}", file=sys.stderr)

    def describe(self) -> dict:
        return {"source": self.source, "trials": len(self.trials), "enqueued": len(self.enqueued),
                "finished": self.finished, "dropped": self.dropped, "fidelity": self.fidelity,
                "source_max_epochs": self.max_epochs, "same_data": self.same_data, "notes": self.notes}


def apply_fidelity(mapping: Mapping, fidelity: str, *, same_fidelity: bool, k: int,
                   run_length: str | None = EPOCHS_PARAM) -> tuple[list[optuna.trial.FrozenTrial], list[dict]]:
    """The rule ``fidelity`` of FIDELITY on the mapped trials: (trials to add to the study, configs to enqueue).

    ``same_fidelity``: the results are at this search's own fidelity, and enter as they were, whatever
    the rule. ``k``: at most this many configs enqueued (the new search's start-up trials);
    ``run_length``: the parameter that sets a trial's epochs, left out of an enqueued config.
    """
    if same_fidelity:
        return mapping.trials, []
    return FIDELITY[fidelity](mapping.trials, k, run_length)


def load_warm_trials(config: SearchConfig, run_dir: Path, data_info: dict, space=None,
                     fidelity: str = DEFAULT_FIDELITY, k: int | None = None) -> WarmStart:
    """The finished (COMPLETE and PRUNED) trials of the search in ``run_dir``, mapped into ``space``.

    ``space``: the new search's space as it searches it (narrowed by ``--choices`` and the budget
    plan); by default ``config.space`` as written. ``k``: at most this many configs enqueued by the
    top_k rule; by default the search's start-up trials (``search.sampler.n_startup_trials``).
    Raises SearchError, in one line, when nothing of the earlier search fits it.
    """
    run_dir = run_dir.expanduser().resolve()
    where = f"--warm-start {run_dir}"
    if not (run_dir / STUDY_DB).is_file():
        raise SearchError(f"{where}: no search there (no {STUDY_DB}); pass an earlier search's --out folder")
    earlier = SearchConfig.from_run(run_dir)
    pretrained = {_pretrained(earlier.space), _pretrained(config.space)}
    if pretrained == {True, False}:
        raise SearchError(f"{where}: that search used space {earlier.space!r}, this one {config.space!r}, and only "
                          "one of them fine-tunes pretrained weights; their architectures are other models")
    space = space if space is not None else spaces.get_space(config.space)
    source = optuna.load_study(study_name=earlier.study_name, storage=study_url(run_dir))
    finished = source.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    if not finished:
        raise SearchError(f"{where}: that search has no finished trial to learn from")
    asks = inspect_space(space).params
    shared = sorted({n for t in finished for n in t.params} & set(asks))
    if not shared:
        raise SearchError(f"{where}: its trials share no parameter with this search's space (they ask "
                          f"{', '.join(sorted({n for t in finished for n in t.params}))}; this space asks "
                          f"{', '.join(asks)}); nothing to learn from")
    before = (read_summary(run_dir) or {}).get("data") or {}
    same_data = all(before.get(key) == data_info.get(key) for key in ("fingerprint", "sizes", "train_subset", "seed"))
    same_fidelity = same_data and earlier.max_epochs == config.max_epochs
    # What an earlier trial ran with where its space asked nothing: the search's base config (RunConfig's defaults).
    fills = earlier.base_run_config("cpu").to_dict()
    mapping = map_trials(finished, space, fills, source=str(run_dir))
    if not mapping.held:
        raise SearchError(f"{where}: none of its values of {', '.join(shared)} lies in this search's space (narrowed "
                          "by --choices and the budget plan); nothing to learn from")
    if not mapping.trials:
        raise SearchError(f"{where}: none of its {len(finished)} finished trials fits this search's space "
                          f"({_counts(mapping.dropped)}); nothing to learn from")
    if k is None:
        from .sampler import n_startup_trials

        k = n_startup_trials(config.num_samples, config.n_startup_trials)
    trials, enqueued = apply_fidelity(mapping, fidelity, same_fidelity=same_fidelity, k=k)
    warm = WarmStart(source=str(run_dir), trials=trials, enqueued=enqueued, max_epochs=earlier.max_epochs,
                     same_data=same_data, fidelity=fidelity, finished=len(finished), dropped=dict(mapping.dropped))
    kept = len(mapping.trials)
    if trials:
        warm.notes.append(f"{kept} of {len(finished)} finished trials of {run_dir} mapped into this search's space "
                          "and added to the study, marked origin=warm_start; they inform TPE and are never the best "
                          "config")
    elif not enqueued:
        warm.notes.append(f"{kept} of {len(finished)} finished trials of {run_dir} mapped into this search's space; "
                          "none of them completed, so there is no best config to run first: a cold start")
    else:
        warm.notes.append(f"{kept} of {len(finished)} finished trials of {run_dir} mapped into this search's space; "
                          f"its best {len(enqueued)} configs run first, at this search's fidelity")
    if kept < len(finished):
        warm.notes.append(f"{len(finished) - kept} dropped: a value this space always asks and cannot hold "
                          f"({_counts(mapping.dropped)})")
    if mapping.left_out:
        warm.notes.append(f"parameters left out of some trials (not asked here, or outside this space): "
                          f"{_counts(mapping.left_out)}")
    if mapping.filled:
        warm.notes.append(f"parameters their space did not ask, filled with the value they ran with: "
                          f"{_counts(mapping.filled)}")
    if earlier.space != config.space:
        warm.notes.append(f"that search used space {earlier.space!r}: its trials are mapped by parameter name")
    if not same_fidelity and trials:
        why = [f"at most {earlier.max_epochs} epochs, this search {config.max_epochs}"] * (
            earlier.max_epochs != config.max_epochs) + ["on other data (source, split or subset)"] * (not same_data)
        read = ("TPE reads them as partial results, below any this search reaches further" if fidelity == "lower_rung"
                else "TPE reads them as results of their configs")
        warm.notes.append(f"they ran {' and '.join(why)}: lower-fidelity results; {read}")
    return warm


def _counts(counter: Counter) -> str:
    return ", ".join(f"{k} ({n})" for k, n in counter.most_common())


def _pretrained(space: str) -> bool | None:
    """Whether ``space`` fine-tunes pretrained weights; None when it cannot be loaded (a user space since moved)."""
    try:
        return spaces.needs_weights(space)
    except ValueError:
        return None
