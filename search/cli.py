"""The search's command line: its flags and the checks that run before anything starts."""

from __future__ import annotations

import argparse
import re
import socket

import spaces
from model.config import DataConfig
from model.flags import add_config_args


class SearchError(Exception):
    """Bad input for a search: printed as one line, exit code 2."""


# Flags that define a search: a --resume with other values would silently mix two searches in
# one study (and Ray restores its own saved sample count), so a change is refused by name.
SEARCH_DEFINING = ("space", "data", "val_size", "train_subset", "split_seed", "seed", "num_samples", "max_epochs",
                   "grace_period", "reduction_factor", "sampler", "scheduler", "choices", "weights", "storage_path",
                   "max_concurrent", "cpus_per_trial", "gpus_per_trial", "n_startup_trials", "no_recipe",
                   "warm_start", "compile", "no_amp")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m search.run",
                                description="Search a space of ResNet configs on CIFAR-10: Ray Tune trials, "
                                            "Optuna TPE, ASHA early stopping.",
                                add_help=add_help, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--space", required=True, metavar="SPACE",
                   help=f"search space: {', '.join(spaces.list_spaces())}, {spaces.USER_SPACE_HELP} "
                        "(a define-by-run function of an optuna.Trial suggesting RunConfig fields)")
    add_config_args(p, DataConfig)
    p.add_argument("--out", default=None, help="output folder (default: runs/SPACE)")
    p.add_argument("--num-samples", type=int, default=32, help="trials in total (a resumed search counts old ones)")
    p.add_argument("--max-epochs", type=int, default=30,
                   help="epochs of a trial that is never stopped; ASHA's max_t; the retrain's default budget")
    p.add_argument("--grace-period", type=int, default=2, help="epochs every trial runs before ASHA may stop it")
    p.add_argument("--reduction-factor", type=float, default=3,
                   help="ASHA keeps the top 1/R of trials at each rung (rungs at G, G*R, G*R^2 ... epochs)")
    p.add_argument("--cpus-per-trial", type=float, default=2, help="CPUs per trial (torch threads on CPU trials)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPUs per trial, fractions allowed (0.5: two trials share a GPU). "
                        "None: 0.5 when the cluster has GPUs, else 0 (trials on CPUs)")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="at most K trials at once (default: as many as the resources allow)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the validation split and --train-subset (default: --seed)")
    p.add_argument("--weights", default=None,
                   help="pretrained weights for pretrained spaces (default there: imagenet, from torchvision's "
                        "cache or downloaded): 'imagenet', a torchvision state-dict file (fixes the architecture), "
                        "or a folder of resnet18/34/50 .pth files. Loaded once on the driver and sent to the trials")
    p.add_argument("--choices", action="append", default=[], metavar="NAME=V1,V2",
                   help="narrow a categorical parameter of the space to some of its choices, e.g. "
                        "arch=resnet20,resnet32 (repeatable)")
    p.add_argument("--no-recipe", action="store_true",
                   help="do not evaluate the space's recipe (its config from the literature) as the first trial")
    p.add_argument("--n-startup-trials", type=int, default=None,
                   help="random trials before TPE models the results (default: max(4, num_samples // 4))")
    p.add_argument("--warm-start", default=None, metavar="RUN_DIR",
                   help="an earlier search's --out of the same space: its finished trials inform the sampler "
                        "(they do not count against --num-samples)")
    p.add_argument("--time-budget", default=None, metavar="DURATION",
                   help="stop the search after this long (e.g. 90m, 2h, 3600s); trials cut short are PRUNED")
    p.add_argument("--compile", action="store_true", help="torch.compile each trial's model (GPUs; no gain on CPU)")
    p.add_argument("--no-amp", action="store_true", help="train in fp32 on GPUs (default: bf16, or fp16 before Ampere)")
    p.add_argument("--address", default=None,
                   help="join an existing Ray cluster: 'auto' or 'IP:PORT' (default: start Ray locally). "
                        "For a remote cluster, run this command on it with `ray job submit`")
    p.add_argument("--storage-path", default=None,
                   help="where the Ray experiment and trial checkpoints live: a path every node shares, or "
                        "s3://bucket/prefix (default: the --out folder; a multi-node cluster is checked first)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted search in --out with the same flags: finished trials are kept, "
                        "unfinished ones resume from their checkpoints")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random"),
                   help="Optuna sampler: TPE (multivariate, constant liar) or random search, as a baseline")
    p.add_argument("--scheduler", default="asha", choices=("asha", "fifo"),
                   help="ASHA early stopping, or fifo: every trial runs all --max-epochs (a baseline)")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a crashed trial from its last checkpoint")
    p.add_argument("--no-retrain", action="store_true", help="skip retraining the best config at the end")
    p.add_argument("--retrain-epochs", type=int, default=None, help="epochs of the retrain (default: --max-epochs)")
    p.add_argument("--no-report", action="store_true", help="skip writing report.html and plots/")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="Tune's console output level")
    return p


def check_args(args: argparse.Namespace) -> None:
    for name in ("num_samples", "max_epochs", "grace_period"):
        if getattr(args, name) < 1:
            raise SearchError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.grace_period > args.max_epochs:
        raise SearchError(f"--grace-period {args.grace_period} is larger than --max-epochs {args.max_epochs}")
    if args.reduction_factor <= 1:
        raise SearchError(f"--reduction-factor must be > 1, got {args.reduction_factor}")
    if args.cpus_per_trial <= 0:
        raise SearchError(f"--cpus-per-trial must be > 0, got {args.cpus_per_trial}")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise SearchError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial}")
    if args.n_startup_trials is not None and args.n_startup_trials < 0:
        raise SearchError(f"--n-startup-trials must be >= 0, got {args.n_startup_trials}")
    if args.time_budget is not None:
        parse_duration(args.time_budget)
    if args.address is not None:
        check_address(args.address)


def parse_duration(text: str) -> float:
    """``"90m"``, ``"2h"``, ``"1h30m"``, ``"45s"`` or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise SearchError(f"--time-budget {text!r}: expected a duration like 90m, 2h, 1h30m or 3600s")
        seconds = sum(float(n) * units[u] for n, u in parts)
    if seconds <= 0:
        raise SearchError(f"--time-budget {text!r} must be positive")
    return seconds


def check_address(address: str, timeout: float = 10.0) -> None:
    """Refuse Ray Client and unreachable heads in one line, before Ray's minutes of GCS retries."""
    if address.startswith("ray://"):
        raise SearchError(f"--address {address}: Ray Client is not supported (Tune's driver would run on the head, "
                          "where --out and study.db do not exist); run the search on the cluster instead: "
                          "ray job submit --address http://HEAD:8265 --working-dir . -- python -m search.run ...")
    if address == "auto":
        return  # Ray finds the local cluster itself, and says so at once if there is none
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise SearchError(f"--address {address}: expected 'auto' or IP:PORT of a Ray head (port 6379 by default)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise SearchError(f"--address {address}: no Ray head answers there ({e.strerror or e}); start one with "
                          f"`ray start --head` or check the address and firewall") from None


def parse_choices(items: list[str]) -> dict[str, list[str]]:
    """``["arch=resnet20,resnet32", "batch_size=128"]`` -> ``{"arch": [...], "batch_size": ["128"]}``."""
    choices = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise SearchError(f"--choices {item!r}: expected NAME=VALUE[,VALUE...], e.g. arch=resnet20,resnet32")
        choices[name] = values.split(",")
    return choices


def changed_flags(saved: dict, args: argparse.Namespace) -> list[str]:
    """The search-defining flags whose value differs from the saved search's, as ``--flag``."""
    changed = []
    for name in SEARCH_DEFINING:
        if name in saved and saved[name] != getattr(args, name, None):
            changed.append(f"--{name.replace('_', '-')} (was {saved[name]!r}, now {getattr(args, name, None)!r})")
    return changed
