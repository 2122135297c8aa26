"""Search a space of ResNet configs on CIFAR-10: Ray Tune trials, Optuna TPE, ASHA early stopping.

Example::

    python -m search.run --space scratch                      # CIFAR-10 downloaded to the cache folder
    python -m search.run --space scratch --data ../shared/data/cifar10-jpeg.tar.gz --out runs/scratch \\
        --num-samples 32 --max-epochs 30 --gpus-per-trial 0.5
    python -m search.run --space finetune                     # torchvision's ImageNet weights by default
    python -m search.run --space my_spaces.py:wide --data ...  # your own define-by-run space
    python -m search.run --space scratch ... --resume          # after an interruption, same flags

Writes under ``--out``: ``study.db`` (the Optuna study), ``tune/`` (the Ray experiment, unless
``--storage-path`` puts it elsewhere), ``trials.csv``, ``search.json`` and ``best/config.json``;
then retrains the best config (``best/``) and writes ``report.html`` and ``plots/``.

This is a thin shell over the Python API: ``run_search(SearchConfig(...))`` (``search/driver.py``).
"""

from __future__ import annotations

import argparse
import signal
import sys

from model.build import WeightsError
from model.sources import DataError

from . import signals
from .cli import config_from_args, get_args_parser
from .disk import DiskFullError
from .driver import run_search
from .errors import RetrainError, SearchError

# A search still running this long after SIGINT or SIGTERM exits at once (search/signals.py says why):
# within the 15 s a batch scheduler's grace period commonly gives.
HARD_EXIT_S = 10.0


def main(args: argparse.Namespace) -> int:
    """0: done; 1: interrupted or out of disk space (resume it), or the retrain failed;
    2: bad input, nothing started."""
    signals.HARD_EXIT_S = HARD_EXIT_S
    # Outside the Tune run (loading data, the retrain) SIGTERM ends the command as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = run_search(config_from_args(args), resume=args.resume)
    except (RetrainError, DiskFullError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (SearchError, DataError, WeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; what was computed is kept: the same command with --resume continues a search, "
              "python -m search.retrain OUT a retrain", file=sys.stderr)
        return 1
    return 1 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
