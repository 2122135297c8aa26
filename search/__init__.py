"""Many runs: a hyperparameter search over ResNet configs with Ray Tune, Optuna and ASHA.

Example::

    from search import SearchConfig, run_search

    result = run_search(SearchConfig(space="smoke", data="../shared/data/cifar10-jpeg.tar.gz", num_samples=4))
    result.best_config, result.best_val_acc, result.trials, result.test_acc

``python -m search.run`` is the same from a shell, one flag per ``SearchConfig`` field.

The modules, one line each:

- ``run.py``: ``python -m search.run``: the command line, its exit codes, the hard exit after a signal.
- ``cli.py``: the flags, one per ``SearchConfig`` field, in groups, plus ``--resume``.
- ``config.py``: ``SearchConfig``: one search as one object, its defaults and its checks of bad numbers.
- ``driver.py``: ``run_search``: the steps of a search, the resume checks (``check_resume``), then results,
  retrain and report.
- ``study.py``: the Optuna study in ``OUT/study.db``, the search's only state: trial states, the best-trial rule.
- ``state.py``: the search's record in its study (definition, data, end, wall time); the study opened read-only.
- ``sampler.py``: TPE or random search, seeded per trial so that a resume draws what the interrupted search would.
- ``plan.py``: the plan line before the first trial: trials, epochs, images and a measured time estimate.
- ``deadline.py``: ``--time-budget``: stops the search while the retrain still fits; the retrain's share.
- ``signals.py``: SIGINT and SIGTERM stop the Tune run and print how to resume.
- ``disk.py``: a disk about to fill stops the search as Ctrl-C does.
- ``lock.py``: the lock on ``--out``: one search per folder.
- ``errors.py``: the errors the command line prints as one line.
- ``constants.py``: names the modules share: the metric, the run folder's files, the study's URL.
- ``ray_start.py``: starting or joining Ray (``--address``), the GPUs a trial gets, trials at once.
- ``preflight.py``: before any trial, every node reaches the storage and every GPU trains a step.
- ``storage.py``: ``--storage-path``: a folder or a URI, and the URIs of the checkpoints Tune writes there.
- ``weights.py``: pretrained weights, loaded once on the driver and shipped to the trials.
- ``warm_start.py``: ``--warm-start``: an earlier search's finished trials, mapped into the new space, in the new study.
- ``progress.py``: the compact progress view: a bar or one line per finished trial, and the summary line.
- ``results.py``: ``search.json``, ``trials.csv``, ``best/config.json``, read back as a ``SearchResult``.
- ``retrain.py``: ``python -m search.retrain``: the best config on train + validation, tested once.
- ``retrain_plan.py``: the best config's budget-dependent parameters re-planned for the retrain's length.
- ``report.py``: ``python -m search.report``: ``report.html`` from the run folder's files alone.
- ``plots.py``: the Optuna plots, one offline HTML file each in ``plots/``.
- ``tune/``: Ray Tune's side: the searcher, the ASHA scheduler, the trainable, callbacks, the ``Tuner``.
"""

import importlib

__all__ = ["SearchConfig", "SearchResult", "run_search"]
_HOMES = {"SearchConfig": ".config", "SearchResult": ".results", "run_search": ".driver"}


def __getattr__(name: str):
    # Imported when first used (PEP 562): ``python -m search.run`` takes SIGINT and SIGTERM before
    # torch, Ray and Optuna load, which takes seconds (search/signals.py).
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
