"""What to search: one define-by-run function per named space.

A space is a function of an ``optuna.Trial`` that calls ``trial.suggest_*`` and does no real
work (Ray's OptunaSearch calls it on the driver for every new trial). The names it suggests are
``model.train.RunConfig`` fields, so a trial's parameters *are* the run's config; whatever is
fixed for the whole search (epochs, weights, seed, devices) comes from the command line.

Example::

    >>> from spaces import get_space, list_spaces
    >>> list_spaces()
    ['finetune', 'scratch', 'smoke']
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

SpaceFn = Callable[[optuna.Trial], None]

_SPACES: dict[str, SpaceFn] = {}
# Spaces whose architectures start from pretrained weights: the search needs --weights.
NEEDS_WEIGHTS: set[str] = set()


def register_space(fn: SpaceFn | None = None, *, pretrained: bool = False):
    """Add a space under its function name; names are unique."""

    def add(fn: SpaceFn) -> SpaceFn:
        if fn.__name__ in _SPACES:
            raise ValueError(f"space {fn.__name__!r} is already registered")
        _SPACES[fn.__name__] = fn
        if pretrained:
            NEEDS_WEIGHTS.add(fn.__name__)
        return fn

    return add(fn) if fn is not None else add


def list_spaces() -> list[str]:
    return sorted(_SPACES)


def get_space(name: str) -> SpaceFn:
    try:
        return _SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; valid: {', '.join(list_spaces())}") from None


def needs_weights(name: str) -> bool:
    get_space(name)
    return name in NEEDS_WEIGHTS


# Imported for their registrations.
from . import definitions  # noqa: E402,F401
