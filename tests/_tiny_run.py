"""A small run folder made by the search's own code, without Ray: what the report tests read.

The study is filled by the real ``StudySearcher`` (``search.tune.tuner.make_searcher``) over the
smoke space, each trial driven through Tune's interface in Tune's order (``suggest``, a result per
epoch, then ``on_trial_complete`` with the last one); ``search.results`` writes ``search.json``,
``trials.csv`` and ``best/config.json`` from the study;
``search.retrain`` retrains the best config on a tiny image-folder tree. Only the learning curves
are made up (from each trial's lr and augmentation), so that the test chooses how each trial ends.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path


import spaces
from model.data import synthetic_cifar10
from search.config import SearchConfig
from search.constants import BEST
from search.results import write_results
from search.state import record_end, record_start
from search.retrain import retrain
from search.sampler import make_sampler, n_startup_trials
from search.study import create_study, enqueue_recipes, open_storage
from search.tune.searcher import trial_params
from search.tune.tuner import make_searcher
from spaces.asks import inspect_space
from spaces.recipe import fit_recipe
from tests._data_utils import write_image_folders

COMPLETE, PRUNED, FAIL, RUNNING = "COMPLETE", "PRUNED", "FAIL", "RUNNING"
NODES = ("10.0.0.1", "10.0.0.2")


def tiny_image_folder(root: Path) -> Path:
    """A learnable 10-class image-folder tree, small enough to retrain on in seconds."""
    return write_image_folders(synthetic_cifar10(num_train=300, num_test=100, val_size=100, seed=0), root)


def _curve(params: dict, epochs: int, rng: random.Random) -> list[float]:
    """Validation accuracy per epoch: rises towards a ceiling set by lr and augmentation."""
    ceiling = 0.55 + 0.3 * math.exp(-((math.log10(params["lr"]) + 1.0) ** 2))
    ceiling += 0.05 if params["augment"] == "flip" else 0.0
    ceiling += rng.uniform(-0.02, 0.02)
    return [round(ceiling * (1.0 - 0.55 ** e), 4) for e in range(1, epochs + 1)]


def make_run(run_dir: Path, data_dir: Path, *, n_complete: int = 6, n_pruned: int = 5, n_failed: int = 1,
             running: int = 0, max_epochs: int = 4, seed: int = 0, retrained: bool = False,
             unstarted: int = 0, invalid: int = 0) -> Path:
    """A search of ``n_complete + n_pruned + n_failed + running`` trials in ``run_dir``.

    ``running > 0``: the driver died with that many trials running, after the study recorded its
    start and before the results were written, as a SIGKILL leaves it. ``retrained``: the best config
    is also retrained (1 epoch), which writes ``best/metrics.json`` and ``best/model.pt``.
    ``unstarted``: trials handed to Tune by a driver that died before they trained (RUNNING, no epochs).
    ``invalid``: suggestions the check refused before the first trial (FAIL, never run, no sample).
    """
    rng = random.Random(seed)
    ends = [COMPLETE] * n_complete + [PRUNED] * n_pruned + [FAIL] * n_failed
    rng.shuffle(ends)
    ends += [RUNNING] * running
    config = SearchConfig(space="smoke", data=str(data_dir), val_size=100, num_samples=len(ends) + unstarted,
                          max_epochs=max_epochs, grace_period=1, reduction_factor=2, cpus_per_trial=1, seed=seed,
                          out=str(run_dir))
    out = config.out_dir()
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    data = config.search_data()
    space = spaces.get_space(config.space)
    recipe = fit_recipe(spaces.get_recipe(config.space), inspect_space(space), {})
    storage = open_storage(out)
    study = create_study(storage, config.study_name,
                         make_sampler(config.sampler, seed, n_startup_trials(config.num_samples)))
    enqueue_recipes(study, [recipe], config.num_samples)
    searcher = make_searcher(config, study, storage, space)
    refused = iter(range(invalid))

    def refuse_first(params):  # the searcher's check of a suggestion, refusing the first ``invalid``
        if next(refused, None) is not None:
            raise ValueError("label_smoothing must be in [0, 1)")

    searcher.validate = refuse_first
    for k in range(invalid):
        assert searcher.suggest(f"{seed:04x}_invalid{k}") is None  # Tune would ask again
    record_start(study, config.to_dict(), data.describe(), resume=False)
    rungs = [r for r in (1, 2, 4, 8) if r < max_epochs]  # ASHA's, with grace period 1 and reduction factor 2
    for number, end in enumerate(ends):
        tune_id = f"{seed:04x}_{number:05d}"
        params = trial_params(searcher.suggest(tune_id))
        epochs = {COMPLETE: max_epochs, PRUNED: rng.choice(rungs), FAIL: 2, RUNNING: max(1, max_epochs // 2)}[end]
        curve = _curve(params, epochs, rng)
        node = NODES[number % len(NODES)]
        results = [{"epoch": e, "val_acc": v, "time_this_iter_s": 25.0, "diverged": False,
                    "node": node, "node_ip": node} for e, v in enumerate(curve, start=1)]
        if end == FAIL:  # at chance in its first epoch, then the loss went to nan
            results[0]["val_acc"] = 0.1
            results[1].update(val_acc=0.0, diverged=True)
        # Tune hands the searcher every result ASHA lets through, then the last one on completion.
        for result in results if end in (RUNNING, FAIL) else results[:-1]:
            searcher.on_trial_result(tune_id, result)
        if end != RUNNING:
            searcher.on_trial_complete(tune_id, result=results[-1])
    for k in range(unstarted):
        searcher.suggest(f"{seed:04x}_unstarted{k}")
    if running or unstarted:
        return out
    record_end(study, time.perf_counter() - t0, interrupted=False, time_budget_hit=False)
    summary = write_results(out, study, config.base_run_config("cpu"), {})
    if retrained and summary["best_trial"] is not None:
        best = json.loads((out / BEST / "config.json").read_text())
        retrain(best, data, out, epochs=1, device="cpu", threads=2)
    return out
