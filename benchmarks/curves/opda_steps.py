"""Learning curves in opda's fine-tuning JSON Lines format (its DeBERTa tables): curves in optimizer steps.

opda's DeBERTa data ("DeBERTa Hyperparameter Tuning Data © 2023 by Nicholas Lourie", CC BY-SA 4.0)
lives outside this repository, in ``../shared/data/opda-deberta/``; read it by path, never copy it
here. One random-search run per line: ``iteration``, the hyperparameters ``num_train_epochs``,
``train_batch_size``, ``learning_rate``, ``warmup_steps`` and ``cls_drop_out``, the run's
``total_model_steps``, and ``learning_curves``: for each of MultiNLI's validation sets
(``matched``, ``mismatched``) a list of [step, accuracy] pairs, every 1,000 optimizer steps and at
the last step. The file records no seconds and no loss.

What the benchmark makes of it:

- the metric is the accuracy on the matched set (``METRIC_SET``);
- the resource is optimizer steps. A report is one evaluation: every ``StepPlan.interval`` steps
  (the table's most common gap, 1,000) and at the run's last step, so ``Curve.resource`` counts in
  intervals: a run of 7,012 steps reports 8 times, the last at 7.012. The table also evaluates at
  each epoch's end; those points are left out, so that report k is step 1,000 k in every run and
  ASHA's rungs compare runs at the same step.
  A full trial is the longest planned run in the table (98,175 steps: 99 reports, 98.175 intervals);
- a run plans floor(examples per epoch x epochs / batch size) steps, as every line of the table
  does; ``StepPlan`` fits the examples per epoch on the table (392,702, MultiNLI's training set),
  so a proposed config's planned resource is known before it runs, as a trainer knows it;
- time is proportional to the examples seen, steps x batch size, since the file has no seconds:
  ``EXAMPLES_PER_SECOND`` is a nominal throughput that sets only the unit of the time axis, and
  no speed-up depends on it;
- a run that ends near chance, its final matched accuracy below 1/3 + ``CHANCE_MARGIN`` (three
  classes), is diverged: it collapsed to predicting one class (the collapsed runs end at 0.318,
  0.327 or 0.354, the classes' shares). Its loss stayed finite, so a trainer would not have
  stopped it: its curve is replayed whole and its last report says it diverged, so that the
  search records it FAIL, never the best config, as it does a run whose loss went NaN;
- the space: ``warmup_steps`` becomes ``warmup_proportion``, the README's sampled parameter (the
  share of the first epoch's steps spent warming up), so that the space is a box whatever the
  batch size; the distributions are the README's (``DEBERTA_SPACE``) where they hold every value,
  else the data's (``opda.infer_distributions``). ``total_model_steps`` is the plan, not a parameter.

Example::

    python -c "from benchmarks.curves import opda_steps; \\
        c, plan = opda_steps.read_curves('../shared/data/opda-deberta/deberta-base_tuning.results.jsonl'); \\
        print(len(c), sum(x.diverged for x in c), plan)"
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from optuna.distributions import FloatDistribution, IntDistribution

from benchmarks.curves.table import Curve

CURVES = "learning_curves"
STEPS = "total_model_steps"
EPOCHS = "num_train_epochs"
BATCH = "train_batch_size"
WARMUP_STEPS, WARMUP = "warmup_steps", "warmup_proportion"
NON_PARAMS = ("iteration", STEPS, CURVES, WARMUP_STEPS)  # every other key of a line is a hyperparameter
METRIC_SET = "matched"
CHANCE = 1 / 3  # MultiNLI's three classes
CHANCE_MARGIN = 0.05  # a final accuracy below 0.383 is a collapsed run; the lowest that learned ends at 0.44
EXAMPLES_PER_SECOND = 250.0  # nominal training throughput: the unit of the time axis only

# The sampling distribution of opda's DeBERTa README (data/deberta/README.md).
DEBERTA_SPACE = {
    EPOCHS: IntDistribution(1, 4),
    BATCH: IntDistribution(16, 64),
    "learning_rate": FloatDistribution(1e-6, 1e-3, log=True),
    WARMUP: FloatDistribution(0.0, 0.6),
    "cls_drop_out": FloatDistribution(0.0, 0.3),
}


def matches(record: dict) -> bool:
    """Whether a parsed line is in this format: named validation sets of [step, accuracy] pairs, and the steps."""
    curves = record.get(CURVES)
    return isinstance(curves, dict) and STEPS in record and all(isinstance(v, list) for v in curves.values())


@dataclass(frozen=True)
class StepPlan:
    """How long a config trains and when it is evaluated: what a proposal's curve must look like."""

    examples_per_epoch: int
    interval: int  # optimizer steps between evaluations

    def steps(self, params: dict) -> int:
        return self.examples_per_epoch * int(params[EPOCHS]) // int(params[BATCH])

    def points(self, params: dict) -> list[float]:
        """The resource at each report, in intervals: 1, 2, ..., and the run's last step / interval."""
        steps = self.steps(params)
        ends = list(range(self.interval, steps + 1, self.interval))
        if not ends or ends[-1] != steps:
            ends.append(steps)
        return [e / self.interval for e in ends]

    def seconds(self, params: dict) -> list[float]:
        """Each report's time: the examples it trained on over ``EXAMPLES_PER_SECOND``."""
        points = [0.0, *self.points(params)]
        return [(b - a) * self.interval * int(params[BATCH]) / EXAMPLES_PER_SECOND for a, b in zip(points, points[1:])]


def fit_plan(runs: list[dict]) -> StepPlan:
    """The examples per epoch that give every run its ``total_model_steps``, and the usual evaluation gap."""
    low = max(math.ceil(r[STEPS] * r[BATCH] / r[EPOCHS]) for r in runs)
    wrong = [r.get("iteration") for r in runs if low * r[EPOCHS] // r[BATCH] != r[STEPS]]
    if wrong:
        raise ValueError(f"no one number of examples per epoch gives the steps of runs {wrong[:5]}: "
                         "total_model_steps is not floor(examples x epochs / batch size)")
    gaps = Counter(b[0] - a[0] for r in runs for c in r[CURVES].values() for a, b in zip(c, c[1:]))
    return StepPlan(low, gaps.most_common(1)[0][0])


def read_curves(path: str | Path, metric_set: str = METRIC_SET,
                margin: float = CHANCE_MARGIN) -> tuple[list[Curve], StepPlan]:
    """One ``Curve`` per line (see the module docstring) and the table's ``StepPlan``."""
    runs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    plan = fit_plan(runs)
    curves = []
    for number, run in enumerate(runs, 1):
        params = {k: v for k, v in run.items() if k not in NON_PARAMS}
        if WARMUP_STEPS in run:
            params[WARMUP] = round(run[WARMUP_STEPS] * run[EPOCHS] / run[STEPS], 6)
        points = [p for p in run[CURVES][metric_set] if p[0] % plan.interval == 0 or p[0] == run[STEPS]]
        resource = [step / plan.interval for step, _ in points]
        edges = [0.0, *resource]
        seconds = [(b - a) * plan.interval * run[BATCH] / EXAMPLES_PER_SECOND for a, b in zip(edges, edges[1:])]
        acc = [float(a) for _, a in points]
        curves.append(Curve(int(run.get("iteration", number)), params, acc, seconds,
                            diverged=bool(acc) and acc[-1] < CHANCE + margin, resource=resource,
                            planned=len(plan.points(run))))
    return curves, plan
