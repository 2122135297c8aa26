"""Narrowing a space: some of its categorical parameters limited to some of their choices, without editing it."""

from __future__ import annotations

from .asks import SpaceInfo


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
