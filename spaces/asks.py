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
    except Exception as e:  # a user's space: say which one failed, not a traceback
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
    categorical = {n: list(d.choices) for n, d in distributions.items()
                   if isinstance(d, optuna.distributions.CategoricalDistribution)}
    return SpaceInfo(tuple(params), distributions, categorical)


class NarrowedSpace:
    """A space whose categorical parameters are narrowed to some of their choices.

    The command line's ``--choices`` (and the architectures that have weights) fix part of a
    space without editing it. The space's own trial is wrapped, not patched, and the class is
    a plain object because Ray pickles the searcher that holds it.
    """

    def __init__(self, fn, choices: dict[str, list]) -> None:
        self.fn, self.choices = fn, choices
        self.__name__ = getattr(fn, "__name__", "space")

    def __call__(self, trial):
        return self.fn(_NarrowedTrial(trial, self.choices))


class _NarrowedTrial:
    """Forwards everything to the real trial, except the choices of narrowed categoricals."""

    def __init__(self, trial, choices: dict[str, list]) -> None:
        self._trial, self._choices = trial, choices

    def suggest_categorical(self, name, choices):
        return self._trial.suggest_categorical(name, self._choices.get(name, choices))

    def __getattr__(self, attr):
        return getattr(self._trial, attr)


def narrow_space(fn, info: SpaceInfo, wanted: dict[str, list[str]], archs_allowed: list[str] | None = None,
                 name: str = "space"):
    """``fn`` with the ``wanted`` choices (strings, matched to the space's own values).

    ``archs_allowed`` keeps only those architectures (those that have weights). Returns the
    space itself when nothing is narrowed, and the narrowed choices.
    """
    narrowed = {}
    for param, values in wanted.items():
        if param not in info.categorical:
            raise ValueError(f"--choices {param}: not a categorical parameter of space {name}; "
                             f"those are: {', '.join(info.categorical)}")
        by_text = {str(c): c for c in info.categorical[param]}
        unknown = [v for v in values if v not in by_text]
        if unknown:
            raise ValueError(f"--choices {param}: {', '.join(unknown)} not among its choices {', '.join(by_text)}")
        narrowed[param] = [by_text[v] for v in values]
    if archs_allowed is not None and info.archs:
        archs = [a for a in narrowed.get("arch", info.archs) if a in archs_allowed]
        if not archs:
            raise ValueError(f"no weights for the chosen architectures; weights found for {', '.join(archs_allowed)}")
        narrowed["arch"] = archs
    narrowed = {k: v for k, v in narrowed.items() if v != info.categorical[k]}
    return (NarrowedSpace(fn, narrowed) if narrowed else fn), narrowed


def fit_recipe(recipe: dict | None, info: SpaceInfo, narrowed: dict[str, list]) -> dict | None:
    """The part of ``recipe`` that the (narrowed) space can ask; None if nothing is left.

    A value outside a narrowed categorical (``--choices arch=resnet32`` against a resnet20
    recipe) is dropped, and Optuna samples that parameter instead.
    """
    if not recipe:
        return None
    point = {}
    for k, v in recipe.items():
        if k not in info.distributions:
            continue
        choices = narrowed.get(k, info.categorical.get(k))
        if choices is not None and v not in choices:
            continue
        low, high = getattr(info.distributions[k], "low", None), getattr(info.distributions[k], "high", None)
        if low is not None and not low <= v <= high:
            continue
        point[k] = v
    return point or None
