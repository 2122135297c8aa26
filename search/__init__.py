"""Many runs: a hyperparameter search over ResNet configs with Ray Tune, Optuna and ASHA.

Example::

    from search import SearchConfig, run_search

    result = run_search(SearchConfig(space="smoke", data="../shared/data/cifar10-jpeg.tar.gz", num_samples=4))
    result.best_config, result.best_val_acc, result.trials, result.test_acc

``python -m search.run`` is the same from a shell, one flag per ``SearchConfig`` field.
"""

from .config import SearchConfig
from .driver import run_search
from .results import SearchResult

__all__ = ["SearchConfig", "SearchResult", "run_search"]
