"""A table ready to replay searches on: its curves, the space each arm searches, and the surrogate serving curves.

Two formats, told apart by the file's suffix, so that any table of either runs unchanged:

- the project's learning-curve CSV (``table.py``, recorded by ``python -m benchmarks.curves
  record``): the space is the project's own (``--space``, ``scratch`` by default), as
  ``search.run`` plans it, and a suggestion is checked against ``RunConfig`` as a real search
  checks it; every trial plans ``max_t`` = the table's last epoch;
- an opda-format JSON Lines file (``opda.py``): the space is the file's own box
  (``opda.infer_distributions``), with no budget plan and no recipe, and a suggestion is not a
  ``RunConfig``; when it searches ``epochs``, each trial plans its own and ``max_t`` is the
  largest (100 for opda's AlexNet runs).

Either way ``lookup`` is ``surrogate.CurveSurrogate`` fitted on every recorded curve, and the
regret is normalised by the best and worst final val_acc of the recorded runs that ran all their
planned epochs without diverging.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmarks.curves import opda
from benchmarks.curves.surrogate import OPDA_ATTRIBUTION, CurveSurrogate
from benchmarks.curves.table import Curve, read_table

EPOCHS_PARAM = "epochs"  # a table's parameter that sets a run's length, when it searches it


@dataclass
class Testbed:
    """One table, loaded: what ``protocol.run_one`` needs to replay a search on it."""

    path: str
    source: str  # where the data comes from (the attribution to print beside its numbers)
    curves: list[Curve]
    distributions: dict  # the recorded space, as the surrogate normalises it
    spaces: dict  # Arm.space ("budget" | "full") -> (define-by-run space, recipes evaluated first)
    max_t: int  # epochs of one full trial: ASHA's max_t, the budget's unit
    epochs_param: str | None  # the searched parameter that sets a trial's planned epochs, if any
    check_suggestion: bool  # a suggestion must be a RunConfig (the project's spaces), as make_searcher checks
    lookup: CurveSurrogate

    def planned_epochs(self, params: dict) -> int:
        return int(params[self.epochs_param]) if self.epochs_param in params else self.max_t

    def finals(self) -> tuple[float, float]:
        """The best and worst final val_acc of the recorded runs that ran all their planned epochs."""
        finals = [c.val_acc[-1] for c in self.curves
                  if not c.diverged and len(c.val_acc) == self.planned_epochs(c.params)]
        return max(finals), min(finals)

    def planned_choices(self) -> list[int] | None:
        """The planned epochs a random trial draws uniformly (the ``epochs`` distribution), or None: always max_t."""
        if self.epochs_param is None:
            return None
        d = self.distributions[self.epochs_param]
        return list(range(int(d.low), int(d.high) + 1, int(d.step or 1)))

    def describe(self) -> dict:
        done = [c for c in self.curves if not c.diverged]
        best, worst = self.finals()
        return {"path": self.path, "source": self.source, "configs": len(self.curves),
                "diverged": len(self.curves) - len(done), "max_t": self.max_t, "epochs_param": self.epochs_param,
                "best_final": best, "worst_final": worst,
                "median_epoch_seconds": statistics.median(s for c in self.curves for s in c.seconds),
                "surrogate": repr(self.lookup.settings), "budget_recipes": self.spaces["budget"][1]}


def load_space(table, space_name: str, train_images: int | None = None):
    """The recorded space as each arm kind searches it, and its distributions.

    Returns ``({"budget": (space, recipes), "full": (space, recipes)}, distributions)``, both made
    by the search's own ``plan_space`` from a SearchConfig with the table's architectures as
    ``--choices``: "budget" is the shipped search (the budget plan for the table's epochs and
    training images narrows the space and gives the recipes), "full" is ``--full-space``.
    """
    import spaces
    from search.config import SearchConfig
    from search.driver import plan_space
    from spaces.asks import inspect_space

    fn = spaces.get_space(space_name)
    info = inspect_space(fn, space_name)
    archs = sorted({r["arch"] for r in table.rows})
    max_t = max(r["epoch"] for r in table.rows)
    images = train_images or table.train_images()
    kinds = {}
    for kind, full in (("budget", False), ("full", True)):
        config = SearchConfig(space=space_name, choices={"arch": archs}, max_epochs=max_t, full_space=full)
        space, _, recipes, _ = plan_space(config, fn, info, None, images)
        kinds[kind] = (space, recipes)
    return kinds, inspect_space(kinds["full"][0], space_name).distributions


@functools.lru_cache(maxsize=None)
def load(path: str, space_name: str = "scratch", train_images: int | None = None) -> Testbed:
    """The table at ``path`` (``.jsonl``: opda's format; else the project's CSV), read and fitted once per process."""
    if Path(path).suffix == ".jsonl":
        curves, distributions = opda.read_opda(path)
        epochs_param = EPOCHS_PARAM if EPOCHS_PARAM in distributions else None
        max_t = int(distributions[EPOCHS_PARAM].high) if epochs_param else max(
            len(c.val_acc) for c in curves if not c.diverged)
        space = opda.make_space(distributions)
        source = OPDA_ATTRIBUTION if Path(path).name == "alexnet_tuning.results.jsonl" else "an opda-format jsonl"
        return Testbed(str(path), source, curves, distributions, {"budget": (space, []), "full": (space, [])},
                       max_t, epochs_param, False, CurveSurrogate.fit(curves, distributions))
    table = read_table(path)
    max_t = max(r["epoch"] for r in table.rows)
    curves = [c for c in table.curves() if len(c.val_acc) == max_t or c.diverged]
    kinds, _ = load_space(table, space_name, train_images)
    # The surrogate normalises over the recorded ranges, as ``surrogate validate --table`` validates it.
    distributions = opda.infer_distributions(curves, known={})
    return Testbed(str(path), "the project's recorded table (CIFAR-10, JPEG-75 copy)", curves, distributions, kinds,
                   max_t, None, True, CurveSurrogate.fit(curves, distributions))
