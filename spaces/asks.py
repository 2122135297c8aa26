"""What a space asks: its parameters, categorical choices and architectures, found once by sampling.

A define-by-run space has no declared schema; the only way to learn it is to run it. Sampling
it on a throwaway in-memory study shows every parameter it can ask, including the conditional
ones, and is cheap because a space does no real work. Replaying it on a trial that answers
from a given config (``replay``) shows what it asks of that config, and with which distributions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import optuna

# Enough draws that conditional parameters (asked on some branches only) show up.
_SAMPLES = 32


SEARCH_OWNED = ("seed", "device")  # RunConfig fields every trial of a search gets from the search


def sample_space(space, n: int, seed: int = 0) -> list[optuna.trial.FrozenTrial]:
    """Run a space ``n`` times on a throwaway in-memory study, to see what it asks."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        study.optimize(lambda t: space(t) or 0.0, n_trials=n)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study.trials


@dataclass(frozen=True)
class SpaceInfo:
    """What a space asks, in the order it first asks it."""

    params: tuple[str, ...]
    distributions: dict  # name -> the optuna distribution it was asked with
    categorical: dict  # name -> its list of choices
    always: frozenset = frozenset()  # the parameters every draw asked (not conditional)

    @property
    def archs(self) -> list[str]:
        return list(self.categorical.get("arch", []))


def inspect_space(space, name: str = "space") -> SpaceInfo:
    """What ``space`` asks. Raises ValueError (one line) if it asks a name that is not a RunConfig field."""
    from model.config import RunConfig

    try:
        trials = sample_space(space, _SAMPLES)
    except (Exception, SystemExit) as e:  # a user's space: say which one failed, not a traceback (or a silent exit)
        raise ValueError(f"space {name}: sampling it failed: {e.__class__.__name__}: {e}") from None
    params: list[str] = []
    distributions: dict = {}
    for t in trials:
        for p in t.params:
            if p not in params:
                params.append(p)
        distributions.update(t.distributions)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = [p for p in params if p not in fields]
    if unknown:
        raise ValueError(f"space {name} suggests {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} "
                         f"not RunConfig fields; valid: {', '.join(sorted(fields))}")
    owned = [p for p in params if p in SEARCH_OWNED]
    if owned:
        raise ValueError(f"space {name} suggests {', '.join(owned)}, which the search sets (--seed, the device from "
                         "the trial's resources); remove them from the space")
    categorical = {n: list(d.choices) for n, d in distributions.items()
                   if isinstance(d, optuna.distributions.CategoricalDistribution)}
    always = frozenset(p for p in params if all(p in t.params for t in trials))
    return SpaceInfo(tuple(params), distributions, categorical, always)


def longest(distribution) -> float:
    """The largest value ``distribution`` can give (a space that searches ``epochs``: its longest trial)."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return max(distribution.choices)
    return distribution.high


def holds(distribution, value) -> bool:
    """Whether ``distribution`` can hold ``value`` (a choice of it, or a number in its range and on its step)."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return any(type(c) is type(value) and c == value for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(distribution, optuna.distributions.IntDistribution) and value != int(value):
        return False
    step = distribution.step
    on_step = step is None or abs((value - distribution.low) / step - round((value - distribution.low) / step)) < 1e-8
    return distribution.low <= value <= distribution.high and on_step


@dataclass
class Replayed:
    """A config as a space asks it: the values it holds, with the distributions it asked them with."""

    params: dict  # name -> value, each held by its distribution
    distributions: dict  # name -> the distribution the space asked it with
    filled: list  # asked, absent from the config, and taken from ``fills``
    unheld: list  # asked, but the config's value (or fill) lies outside what the space asks, or there is none
    unused: list  # in the config, never asked


def _as_asked(distribution, value):
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return value
    return int(value) if isinstance(distribution, optuna.distributions.IntDistribution) else float(value)


class _Answer(optuna.samplers.BaseSampler):
    """Answers every ask with the config's value where the distribution holds it, else with a placeholder."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, distribution):
        if name in self.answers and holds(distribution, self.answers[name]):
            return _as_asked(distribution, self.answers[name])
        # The space goes on with a placeholder; replay() leaves the parameter out.
        return distribution.choices[0] if hasattr(distribution, "choices") else distribution.low


def replay(space, values: dict, fills: dict | None = None) -> Replayed:
    """Run ``space`` on a trial that answers from ``values``: what it asks of that config, and with what.

    A define-by-run space says what it asks only when run, and may ask on one branch what it does
    not on another; replaying it on the config answers both. A parameter the config lacks is
    answered from ``fills`` (e.g. the value the config's run used) when that is held.
    """
    answers = {**(fills or {}), **values}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        trial = optuna.create_study(sampler=_Answer(answers)).ask()
        space(trial)
    finally:
        optuna.logging.set_verbosity(verbosity)
    # Checked here, not in the sampler: Optuna answers a one-choice distribution without asking it.
    held = {n: d for n, d in trial.distributions.items() if n in answers and holds(d, answers[n])}
    return Replayed({n: _as_asked(d, answers[n]) for n, d in held.items()}, held,
                    [n for n in held if n not in values], [n for n in trial.distributions if n not in held],
                    [n for n in values if n not in trial.distributions])
