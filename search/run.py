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
import sys

from . import signals

# A search still running this long after SIGINT or SIGTERM exits at once (search/signals.py says why):
# within the 15 s a batch scheduler's grace period commonly gives.
HARD_EXIT_S = 10.0


def main(args: argparse.Namespace) -> int:
    """0: done; 1: interrupted or out of disk space (resume it), or the retrain failed;
    2: bad input, nothing started."""
    _take_signals()
    try:
        return _run(args)
    except KeyboardInterrupt:
        signals.say_once(signals.interrupted_line())
        return 1


def _take_signals() -> None:
    """From the first line to the last, SIGINT and SIGTERM end the command in one line, within HARD_EXIT_S."""
    signals.HARD_EXIT_S = HARD_EXIT_S
    signals.install()


def _run(args: argparse.Namespace) -> int:
    from model.build import WeightsError
    from model.sources import DataError

    from .cli import config_from_args
    from .disk import DiskFullError
    from .driver import run_search
    from .errors import RetrainError, SearchError

    try:
        result = run_search(config_from_args(args), resume=args.resume)
    except (RetrainError, DiskFullError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (SearchError, DataError, WeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if result.interrupted else 0


def cli(argv: list[str] | None = None) -> int:
    """The command line: signals are taken first, before torch, Ray and Optuna take seconds to import."""
    _take_signals()
    try:
        from .cli import get_args_parser

        return main(get_args_parser().parse_args(argv))
    except KeyboardInterrupt:
        signals.say_once(signals.interrupted_line())
        return 1


if __name__ == "__main__":
    sys.exit(cli())
