"""The search's flags: one per ``SearchConfig`` field, made from the fields, in groups, plus ``--resume``."""

from __future__ import annotations

import argparse
import dataclasses

from model.flags import DefaultsHelpFormatter, add_config_args, config_kwargs

from .config import SearchConfig

# --help leads with what a first search needs; every field not named here is "advanced".
GROUPS = {
    "the search": ("space", "data", "time_budget", "num_samples", "max_epochs", "out"),
    "resources": ("cpus_per_trial", "gpus_per_trial", "max_concurrent", "address", "storage_path"),
    "the algorithm": ("sampler", "scheduler", "grace_period", "reduction_factor", "n_startup_trials", "tpe_independent",
                      "choices", "recipe", "full_space", "warm_start", "seed"),
    "after the search": ("retrain", "retrain_epochs", "retrain_share", "report"),
}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.run",
                                description="Search a space of ResNet configs on CIFAR-10: Ray Tune trials, "
                                            "Optuna TPE, ASHA early stopping. It prints its plan and an estimate "
                                            "of its time before the first trial; --time-budget bounds it.",
                                add_help=add_help, formatter_class=DefaultsHelpFormatter)
    named = {name for names in GROUPS.values() for name in names}
    for title, names in GROUPS.items():
        group = p.add_argument_group(title)
        add_config_args(group, SearchConfig, only=names)
        if title == "the search":
            # Not a setting of the search but what to do with it, so not a SearchConfig field.
            group.add_argument("--resume", action="store_true",
                               help="continue an interrupted search in --out with the same flags: finished trials "
                                    "are kept, unfinished ones continue from their checkpoints")
    advanced = tuple(f.name for f in dataclasses.fields(SearchConfig) if f.name not in named)
    add_config_args(p.add_argument_group("advanced"), SearchConfig, only=advanced)
    return p


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    return SearchConfig(**config_kwargs(args, SearchConfig))
