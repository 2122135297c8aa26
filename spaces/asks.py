"""What a space asks: its parameters, categorical choices and architectures, found once by sampling.

A define-by-run space has no declared schema; the only way to learn it is to run it. Sampling
it on a throwaway in-memory study shows every parameter it can ask, including the conditional
ones, and is cheap because a space does no real work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import optuna

# Enough draws that conditional parameters (asked on some branches only) show up.
_SAMPLES = 32


SEARCH_OWNED = ("epochs", "seed", "device")  # RunConfig fields every trial of a search gets from the search


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
        raise ValueError(f"space {name} suggests {', '.join(owned)}, which the search sets (--max-epochs, --seed, "
                         "the device from the trial's resources); remove them from the space")
    categorical = {n: list(d.choices) for n, d in distributions.items()
                   if isinstance(d, optuna.distributions.CategoricalDistribution)}
    return SpaceInfo(tuple(params), distributions, categorical)
