"""The guard on the Ray internals that ``PruneAwareOptunaSearch`` and ``PersistentASHA`` extend.

Ray has no public hook for either fix, so both subclasses read and write private attributes of
Ray's classes. A Ray release that renames one must refuse to start, in one line, not corrupt a study.
"""

from __future__ import annotations

TESTED_RAY = "2.60"


class RayInternalsError(RuntimeError):
    """The installed Ray lacks an internal attribute the search's subclasses build on."""


def require_internals(obj, *names: str, user: str | None = None) -> None:
    """Fail at once if this Ray's ``obj`` lacks any of ``names``, the attributes ``user`` (its subclass) touches."""
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        import ray

        ray_class = next(c for c in type(obj).__mro__ if c.__module__.startswith("ray."))
        raise RayInternalsError(
            f"ray {ray.__version__}: {ray_class.__name__} has no {', '.join(missing)}, which the search's "
            f"{user or type(obj).__name__} relies on; install the tested Ray: pip install 'ray[tune]=={TESTED_RAY}.*'")
