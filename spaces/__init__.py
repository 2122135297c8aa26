"""What to search: one define-by-run function per named space.

A space is a function of an ``optuna.Trial`` that calls ``trial.suggest_*`` and does no real
work (the search's sampler calls it on the driver for every new trial). The names it suggests are
``model.train.RunConfig`` fields, so a trial's parameters *are* the run's config; whatever is
fixed for the whole search (epochs, weights, seed, devices) comes from the command line.

A space may carry a ``recipe``: a config from the literature that the search evaluates first,
so that the incumbent is never worse than the known recipe.

Your own space needs no change here: pass ``--space path/to/file.py:function`` or
``--space package.module:function`` (set ``function.pretrained = True`` if it fine-tunes
pretrained weights, and ``function.recipe = {...}`` for a starting config).

The modules, one line each:

- ``__init__.py`` (this file): the registry: ``register_space``, ``get_space``, ``list_spaces``, user spaces.
- ``definitions.py``: the named spaces (``scratch``, ``finetune``, ``smoke``) and their recipes from the literature.
- ``budget.py``: the budget rules: what ``--max-epochs`` x the images keeps of a space; ASHA's grace; the retrain's.
- ``recipe.py``: a recipe fitted to the space as narrowed: the first config a search evaluates.
- ``narrow.py``: ``--choices``: categorical parameters limited to some choices without editing the space.
- ``asks.py``: what a space asks (parameters, choices, architectures), by sampling it; of one config, by ``replay``.

Example::

    >>> from spaces import get_space, list_spaces
    >>> list_spaces()
    ['finetune', 'scratch', 'smoke']
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import optuna

SpaceFn = Callable[[optuna.Trial], None]

_SPACES: dict[str, SpaceFn] = {}
USER_SPACE_HELP = "or your own as path/to/file.py:function or package.module:function"


def register_space(fn: SpaceFn | None = None, *, pretrained: bool = False, recipe: dict | None = None):
    """Add a space under its function name; names are unique.

    ``pretrained``: its architectures start from pretrained weights (the search needs weights).
    ``recipe``: a known-good config, evaluated first by the search.
    """

    def add(fn: SpaceFn) -> SpaceFn:
        if fn.__name__ in _SPACES:
            raise ValueError(f"space {fn.__name__!r} is already registered")
        fn.pretrained = pretrained
        fn.recipe = dict(recipe) if recipe else None
        _SPACES[fn.__name__] = fn
        return fn

    return add(fn) if fn is not None else add


def list_spaces() -> list[str]:
    """The registered spaces' names; a user space is given as FILE.py:FUNCTION or MODULE:FUNCTION."""
    return sorted(_SPACES)


def is_user_space(name: str) -> bool:
    return ":" in name


def get_space(name: str) -> SpaceFn:
    """A registered space by name, or a user space ``path/to/file.py:function`` / ``module:function``."""
    if is_user_space(name):
        return _load_user_space(name)
    try:
        return _SPACES[name]
    except KeyError:
        raise ValueError(f"unknown space {name!r}; valid: {', '.join(list_spaces())}, {USER_SPACE_HELP}") from None


def _load_user_space(spec: str) -> SpaceFn:
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise ValueError(f"space {spec!r}: expected path/to/file.py:function or package.module:function")
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"space {spec!r}: no such file {path}")
        # A stable module name: Ray pickles the searcher, and so this function, by reference;
        # a --resume loads the same file under the same name before it unpickles it.
        module_name = f"_resnet_hpo_space_{path.stem}"
        module = sys.modules.get(module_name)
        if module is None or getattr(module, "__file__", None) != str(path):
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception as e:
                del sys.modules[module_name]
                raise ValueError(f"space {spec!r}: importing {path} failed: {e.__class__.__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ValueError(f"space {spec!r}: cannot import {where!r} ({e}); is it on PYTHONPATH?") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"space {spec!r}: {where} has no function {attr!r}")
    return fn


def needs_weights(name: str) -> bool:
    return bool(getattr(get_space(name), "pretrained", False))


def get_recipe(name: str) -> dict | None:
    """The space's starting config from the literature, or None."""
    recipe = getattr(get_space(name), "recipe", None)
    return dict(recipe) if recipe else None


# Imported for their registrations.
from . import definitions  # noqa: E402,F401
