"""The search's flags: one per ``SearchConfig`` field, made from the fields, plus ``--resume``."""

from __future__ import annotations

import argparse

from model.flags import DefaultsHelpFormatter, add_config_args, config_kwargs

from .config import SearchConfig


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.run",
                                description="Search a space of ResNet configs on CIFAR-10: Ray Tune trials, "
                                            "Optuna TPE, ASHA early stopping.",
                                add_help=add_help, formatter_class=DefaultsHelpFormatter)
    add_config_args(p, SearchConfig)
    # Not a setting of the search but what to do with it, so not a SearchConfig field.
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted search in --out with the same flags: finished trials are kept, "
                        "unfinished ones resume from their checkpoints")
    return p


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    return SearchConfig(**config_kwargs(args, SearchConfig))
