"""A table ready to replay searches on: its curves, the space each arm searches, and the surrogate serving curves.

Any table of a known format runs unchanged (``formats.py`` reads it by the adapter its content
calls for):

- the project's learning-curve CSV (``table.py``, recorded by ``python -m benchmarks.curves
  record``): the space is the project's own (``--space``, ``scratch`` by default), as
  ``search.run`` plans it, and a suggestion is checked against ``RunConfig`` as a real search
  checks it; every trial plans ``max_t`` = the table's last epoch;
- an opda-format JSON Lines file, of either kind (``opda.py``: epochs, its AlexNet table;
  ``opda_steps.py``: optimizer steps, its DeBERTa table): the space is the file's own box
  (``opda.infer_distributions`` over the format's known space), with no budget plan and no recipe,
  and a suggestion is not a ``RunConfig``; each trial plans what its config plans (its
  ``epochs``; its steps, from its epochs and batch size), and ``max_t`` is the longest run.

``lookup`` is ``surrogate.CurveSurrogate`` fitted on every recorded curve, as the surrogate mode
serves it (``modes.py``; the nearest mode answers recorded runs instead), and the regret is
normalised by the best and worst final metric of the recorded runs that ran all their planned
reports without diverging.
"""

from __future__ import annotations

import functools
import itertools
import statistics
from dataclasses import dataclass

from optuna.distributions import CategoricalDistribution

from benchmarks.curves import formats, opda, opda_steps
from benchmarks.curves.surrogate import CurveSurrogate
from benchmarks.curves.table import Curve

EPOCHS_PARAM = opda.EPOCHS  # a table's parameter that sets a run's length in epochs, when it searches it
# The parameters a format's plan reads: a random trial's planned reports are drawn over their values.
PLAN_PARAMS = {"csv": (), "opda-epochs": (opda.EPOCHS,), "opda-steps": (opda_steps.EPOCHS, opda_steps.BATCH)}


@dataclass
class Testbed:
    """One table, loaded: what ``protocol.run_one`` needs to replay a search on it."""

    path: str
    source: str  # where the data comes from (the attribution to print beside its numbers)
    curves: list[Curve]
    distributions: dict  # the recorded space, as the surrogate normalises it
    spaces: dict  # Arm.space ("budget" | "full") -> (define-by-run space, recipes evaluated first)
    max_t: int  # reports of one full trial (epochs, or the format's unit): ASHA's max_t
    epochs_param: str | None  # the searched parameter that sets a trial's planned epochs, if any
    check_suggestion: bool  # a suggestion must be a RunConfig (the project's spaces), as make_searcher checks
    lookup: object  # the surrogate mode's answer (modes.SurrogateAnswer)
    recorded: formats.Recorded | None = None

    @property
    def full(self) -> float:
        """The resource of one full trial, the budget's unit: ``max_t``, or less where its last report is short."""
        return self.recorded.full if self.recorded else float(self.max_t)

    @property
    def unit(self) -> str:
        return self.recorded.unit if self.recorded else "epoch"

    def planned_epochs(self, params: dict) -> int:
        """The reports a run of ``params`` plans."""
        if self.recorded is not None:
            return self.recorded.planned(params)
        return int(params[self.epochs_param]) if self.epochs_param in params else self.max_t

    def finished_runs(self) -> list[Curve]:
        """The recorded runs that ran all their planned reports without diverging."""
        return [c for c in self.curves
                if not c.diverged and len(c.val_acc) == (c.planned or self.planned_epochs(c.params))]

    def finals(self) -> tuple[float, float]:
        """The best and worst final metric of the finished runs (``finished_runs``)."""
        finals = [c.val_acc[-1] for c in self.finished_runs()]
        return max(finals), min(finals)

    def planned_choices(self) -> list[int] | None:
        """The planned reports of a random trial, one per combination of the values its plan reads (drawn
        uniformly), or None: always max_t."""
        names = PLAN_PARAMS[self.recorded.format] if self.recorded else (
            (self.epochs_param,) if self.epochs_param else ())
        names = [n for n in names if n in self.distributions]
        if not names:
            return None
        values = []
        for n in names:
            d = self.distributions[n]
            values.append(list(d.choices) if isinstance(d, CategoricalDistribution)
                          else list(range(int(d.low), int(d.high) + 1, int(d.step or 1))))
        return [self.planned_epochs(dict(zip(names, combo))) for combo in itertools.product(*values)]

    def describe(self) -> dict:
        done = [c for c in self.curves if not c.diverged]
        best, worst = self.finals()
        return {"path": self.path, "source": self.source, "format": self.recorded.format if self.recorded else None,
                "unit": self.unit, "configs": len(self.curves), "diverged": len(self.curves) - len(done),
                "max_t": self.max_t, "full": self.full, "epochs_param": self.epochs_param,
                "best_final": best, "worst_final": worst,
                "median_epoch_seconds": statistics.median(s for c in self.curves for s in c.seconds),
                "surrogate": repr(self.lookup.model.settings), "budget_recipes": self.spaces["budget"][1]}


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
    """The table at ``path``, of any format (``formats.detect``: by content), read and fitted once per process."""
    from benchmarks.curves.modes import SurrogateAnswer

    rec = formats.read(path)
    model = CurveSurrogate.fit(rec.curves, rec.distributions, points=rec.points)
    answer = SurrogateAnswer(model, rec)
    if rec.format == "csv":
        # The project's own space and budget plan; the surrogate normalises over the recorded ranges, as
        # ``surrogate validate --table`` validates it.
        kinds, _ = load_space(rec.table, space_name, train_images)
        return Testbed(str(path), rec.source, rec.curves, rec.distributions, kinds, rec.max_t, None, True, answer, rec)
    space = opda.make_space(rec.distributions)
    epochs_param = EPOCHS_PARAM if rec.format == "opda-epochs" and EPOCHS_PARAM in rec.distributions else None
    return Testbed(str(path), rec.source, rec.curves, rec.distributions, {"budget": (space, []), "full": (space, [])},
                   rec.max_t, epochs_param, False, answer, rec)
