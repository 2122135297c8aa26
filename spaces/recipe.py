"""A space's recipe, fitted to the space as the search narrowed it: the first config the search evaluates."""

from __future__ import annotations

from .asks import SpaceInfo


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
