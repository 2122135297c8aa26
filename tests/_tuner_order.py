"""A real Ray Tune run with W trials at once whose order of events is fixed, and every call Tune made, in order.

The simulator (``benchmarks/curves/simulate.py``) claims to call a searcher and a scheduler as Tune
does. To check that at W > 1 the two runs must see their events in one order, and real time on a
loaded machine does not promise that: a trial's start or a result's round trip takes Tune tens or
hundreds of milliseconds. So the real run keeps the simulator's clock: every trainable reports
its epoch ``e`` at ``t0 + end of epoch e in the simulation x unit`` seconds (``schedule_of``), so
Tune's overheads shift no event past another while they stay below ``unit`` times the smallest
gap between two events of the simulation (``min_gap``). ``t0`` is when the first W trials have
all started (each writes its start to a folder, and waits for the others), so that the slow start
of Ray's workers is not counted. A trial the scheduler stops must free its worker at once, as in
the simulation: the run reuses actors (no new process, no imports) and, since a function
trainable learns of its stop only at its next report, the driver leaves a file for each trial
the scheduler stops, which the trainable watches while it waits for its next epoch. The
decisions themselves are Tune's own: which configs it asks for, when, and which trials the
scheduler stops.

``run_tuner`` records, in order, each call of the searcher's and the scheduler's Tune hooks
(wrapping the bound methods of the two objects it is given, no Ray internals) and of a
``tune.Callback``'s, as ``Call`` rows. ``decisions`` reads the scheduler's (trial, epoch, decision)
sequence from them; the simulator's run, recorded the same way (``record_calls``), gives the one
to compare it with. Another test can assert Tune's call order from the same rows, e.g. that the
scheduler hears of a result before the searcher does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

SEARCHER_HOOKS = ("suggest", "on_trial_result", "on_trial_complete")
SCHEDULER_HOOKS = ("on_trial_add", "on_trial_result", "on_trial_complete")


@dataclass(frozen=True)
class Call:
    """One call Tune made: who (searcher, scheduler, callback), the hook, the Tune trial id, the result's epoch, and
    what the scheduler answered (on_trial_result only)."""

    who: str
    hook: str
    trial_id: str | None
    epoch: int | None = None
    decision: str | None = None


def record_calls(searcher, scheduler, log: list[Call]) -> None:
    """Make ``searcher`` and ``scheduler`` append a ``Call`` to ``log`` on each of their Tune hooks, then do as before."""

    def wrap(obj, who: str, hook: str) -> None:
        inner = getattr(obj, hook)

        def recorded(*args, **kwargs):
            out = inner(*args, **kwargs)
            # Tune passes the controller first to a scheduler's hooks; the searcher gets the trial id.
            trial = args[1] if who == "scheduler" else (args[0] if args else kwargs.get("trial_id"))
            result = kwargs.get("result") or next((a for a in args if isinstance(a, dict) and "epoch" in a), None)
            log.append(Call(who, hook, trial if isinstance(trial, str) else getattr(trial, "trial_id", None),
                            result.get("epoch") if result else None,
                            out if who == "scheduler" and hook == "on_trial_result" else None))
            return out

        setattr(obj, hook, recorded)

    for hook in SEARCHER_HOOKS:
        wrap(searcher, "searcher", hook)
    for hook in SCHEDULER_HOOKS:
        wrap(scheduler, "scheduler", hook)


def decisions(log: list[Call]) -> list[tuple[int, int, str]]:
    """The scheduler's decisions in order: (trial, epoch, CONTINUE / STOP), trials numbered in the order they were
    added (Tune's and the simulator's ids differ)."""
    order: dict[str, int] = {}
    for c in log:
        if c.who == "scheduler" and c.hook == "on_trial_add":
            order.setdefault(c.trial_id, len(order))
    return [(order[c.trial_id], c.epoch, c.decision) for c in log
            if c.who == "scheduler" and c.hook == "on_trial_result"]


def schedule_of(sim_result) -> dict[int, list[float]]:
    """Per study trial number, the simulated end of each epoch of its curve (all of them, run or not)."""
    from search.tune.searcher import study_number

    out = {}
    for t in sim_result.trials:
        ends, clock = [], t.started
        for s in t.curve.seconds:
            clock += s
            ends.append(clock)
        out[study_number(t)] = ends
    return out


def min_gap(sim_result) -> float:
    """The smallest simulated time between two results of different trials (the margin ``unit`` multiplies)."""
    events = sorted((t.started + sum(t.curve.seconds[:e]), t.trial_id) for t in sim_result.trials
                    for e in range(1, t.epochs + 1))
    gaps = [b[0] - a[0] for a, b in zip(events, events[1:]) if a[1] != b[1]]
    return min(gaps) if gaps else float("inf")


def _origin(folder: Path, number: int, workers: int, timeout: float = 120.0) -> float:
    """The run's time zero: when the last of the first ``workers`` trials started (they start at simulated 0)."""
    if number < workers:
        (folder / f"started-{number}").write_text(json.dumps(time.time()))
    deadline = time.time() + timeout
    while True:
        starts = [folder / f"started-{n}" for n in range(workers)]
        if all(p.exists() and p.read_text() for p in starts):
            return max(json.loads(p.read_text()) for p in starts)
        if time.time() > deadline:
            raise TimeoutError(f"the first {workers} trials did not all start within {timeout} s")
        time.sleep(0.01)


def run_tuner(tmp_path: Path, searcher, scheduler, lookup, schedule: dict[int, list[float]], *, num_samples: int,
              workers: int = 2, unit: float = 0.5) -> list[Call]:
    """Fit a real ``tune.Tuner`` with ``searcher`` and ``scheduler``, ``workers`` trials at once (one CPU each), on
    curves from ``lookup``, each epoch reported at its simulated time (``schedule``, in ``unit`` seconds).

    Returns every call of the searcher's, the scheduler's and a callback's hooks, in order.
    """
    import ray
    from ray import tune
    from ray.tune.schedulers import TrialScheduler

    from search.tune.searcher import STUDY_TRIAL, trial_params

    log: list[Call] = []
    record_calls(searcher, scheduler, log)

    class Calls(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            log.append(Call("callback", "on_trial_result", trial.trial_id, result.get("epoch")))

        def on_trial_complete(self, iteration, trials, trial, **info):
            log.append(Call("callback", "on_trial_complete", trial.trial_id))

    folder = tmp_path / "clock"
    folder.mkdir()
    decide = scheduler.on_trial_result

    def deciding(tune_controller, trial, result):
        out = decide(tune_controller, trial, result)
        if out == TrialScheduler.STOP:
            (folder / f"stop-{trial.config[STUDY_TRIAL]['number']}").touch()
        return out

    scheduler.on_trial_result = deciding

    def trainable(config):
        number = config[STUDY_TRIAL]["number"]
        curve, _, _ = lookup.lookup(trial_params(config))
        t0 = _origin(folder, number, workers)
        stop = folder / f"stop-{number}"
        for epoch, (acc, end) in enumerate(zip(curve.val_acc, schedule[number]), 1):
            while time.time() < t0 + end * unit:
                if stop.exists():
                    return
                time.sleep(0.005)
            tune.report({"epoch": epoch, "val_acc": acc})

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                   tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                               max_concurrent_trials=workers, reuse_actors=True),
                   run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0,
                                             callbacks=[Calls()])).fit()
    finally:
        ray.shutdown()
    return log
