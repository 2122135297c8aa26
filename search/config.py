"""``SearchConfig``: one search as one typed object, the way ``RunConfig`` is one training run.

The command line builds it from its flags (``cli.py`` makes the flags from its fields), a Python
caller builds it directly. It is saved whole in the study (``search/state.py``), and ``--resume``,
``search.retrain``, ``--warm-start`` and ``search.report`` reload it from there.

Example::

    from search import SearchConfig, run_search

    result = run_search(SearchConfig(space="smoke", data="images/", num_samples=4, max_epochs=2))
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import MISSING, dataclass
from pathlib import Path

import spaces
from model.config import DataConfig, RunConfig
from model.data import CIFAR10Data
from model.flags import check_choices, check_finite, config_from_dict, field_default, flag_name, setting
from spaces.budget import EARLY_RUNGS, default_grace_period

from .constants import STUDY_DB
from .errors import SearchError
from .sampler import INDEPENDENT_SHARE
from .state import CONFIG, read_record


MAX_SEED = 2**32 - 1  # the largest seed numpy, and so Optuna's samplers, accept


def parse_choices(items: list[str]) -> dict[str, list[str]]:
    """``["arch=resnet20,resnet32", "batch_size=128"]`` -> ``{"arch": [...], "batch_size": ["128"]}``."""
    choices = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise SearchError(f"--choices {item!r}: expected NAME=VALUE[,VALUE...], e.g. arch=resnet20,resnet32")
        choices[name] = values.split(",")
    return choices


def parse_duration(text: str | float) -> float:
    """``"90m"``, ``"2h"``, ``"1h30m"``, ``"45s"`` or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = str(text).strip().lower()
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


@dataclass(kw_only=True)
class SearchConfig(DataConfig):
    """Every setting of a search, with its default. ``defining=False`` marks those a ``--resume`` may change.

    The data settings (``data``, ``download``, ``val_size``, ``train_subset``) are ``DataConfig``'s,
    shared with ``model.train``.
    """

    # What is searched
    space: str = setting(MISSING, f"search space: {', '.join(spaces.list_spaces())}, {spaces.USER_SPACE_HELP} "
                                  "(a define-by-run function of an optuna.Trial suggesting RunConfig fields)",
                         metavar="SPACE")
    choices: dict[str, list[str]] = setting({}, "narrow a categorical parameter of the space to some of its choices, "
                                                "e.g. arch=resnet20,resnet32 (repeatable)",
                                            metavar="NAME=V1,V2", repeat=parse_choices)
    weights: str | None = setting(None, "pretrained weights for pretrained spaces: 'imagenet', a torchvision "
                                        "state-dict file (fixes the architecture), or a folder of resnet18/34/50 .pth "
                                        "files. Loaded once on the driver and sent to the trials",
                                  default_text="imagenet in pretrained spaces, from torchvision's cache or downloaded")
    recipe: bool = setting(True, "do not evaluate the space's recipe (its config from the literature) as the first "
                                 "trial")
    full_space: bool = setting(False, "search the space as written: no budget rules (by default choices that cannot "
                                      "pay off in --max-epochs on this data are dropped, and the recipe fits the "
                                      "budget; see spaces/budget.py)")
    warm_start: str | None = setting(None, "an earlier search's --out, mapped into this space: from a cheaper one "
                                           "(fewer epochs, a subset) its best configs run first; from one at these "
                                           "epochs and data its trials inform the sampler (docs/warm-start.md)",
                                     metavar="RUN_DIR")
    # The budget, and how it is spent
    num_samples: int = setting(32, "trials in total; --resume runs until this many exist and refuses "
                                     "another value")
    max_epochs: int = setting(30, "epochs of a trial that is never stopped; ASHA's max_t; the retrain's default "
                                  "budget")
    grace_period: int | None = setting(None, "epochs every trial runs before ASHA may stop it",
                                       default_text="--max-epochs / 2, at least 1 (spaces/budget.py)")
    reduction_factor: float = setting(3, "ASHA keeps the top 1/R of trials at each rung (rungs at G, G*R, G*R^2 ... "
                                         "epochs)")
    early_rungs: int = setting(EARLY_RUNGS, "ASHA rungs below --grace-period, R apart, each of which stops trials only "
                                            "once the best finished trials would all have passed it; off by default, "
                                            "since they left budget unspent (docs/budget.md)")
    rungs: str = setting("fraction", "where a trial meets ASHA's rungs: at the same fraction of its own planned epochs "
                                     "(fair to trials whose space sets fewer epochs; the same as 'epochs' when every "
                                     "trial runs --max-epochs), or at the same epochs for every trial (Ray's ASHA)",
                         choices=("fraction", "epochs"))
    sampler: str = setting("tpe", "Optuna sampler: TPE (multivariate, constant liar) or random search, as a baseline",
                           choices=("tpe", "random"))
    scheduler: str = setting("asha", "ASHA early stopping, or fifo: every trial runs all --max-epochs (a baseline)",
                             choices=("asha", "fifo"))
    n_startup_trials: int | None = setting(None, "random trials before TPE models the results",
                                           default_text="a share of --num-samples (search/sampler.py)")
    tpe_independent: float = setting(INDEPENDENT_SHARE, "share of TPE's trials, each chosen by its seed, that model "
                                                        "each parameter on its own (Optuna's default); the rest model "
                                                        "them jointly (multivariate). 1: all on their own",
                                     metavar="SHARE")
    time_budget: str | None = setting(None, "bound the whole command, search, retrain and report, to this long "
                                            "(e.g. 10m, 2h, 3600s); trials cut short are PRUNED", metavar="DURATION",
                                      defining=False)
    seed: int = setting(0, "seed of the sampler and of every trial")
    split_seed: int | None = setting(None, "seed of the validation split and --train-subset", default_text="--seed")
    # What each trial gets
    cpus_per_trial: float = setting(2, "CPUs per trial (torch threads on CPU trials)")
    gpus_per_trial: float | None = setting(None, "GPUs per trial, fractions allowed (0.5: two trials share a GPU)",
                                           default_text="0.5 when the cluster has GPUs, else 0 (trials on CPUs)")
    max_concurrent: int | None = setting(None, "at most K trials at once",
                                         default_text="as many as the resources allow")
    compile: bool = setting(False, "torch.compile each trial's model (GPUs; no gain on CPU)")
    amp: bool = setting(True, "train in fp32 on GPUs (default: bf16, or fp16 before Ampere)")
    # Where it runs and what it writes
    out: str | None = setting(None, "output folder", default_text="runs/SPACE", defining=False)
    address: str | None = setting(None, "join an existing Ray cluster: 'auto' or 'IP:PORT'. For a remote cluster, "
                                        "run this command on it with `ray job submit`",
                                  default_text="start Ray locally", defining=False)
    storage_path: str | None = setting(None, "where the Ray experiment and trial checkpoints live: a path every node "
                                             "shares, or s3://bucket/prefix",
                                       default_text="the --out folder; a multi-node cluster is checked first")
    max_failures: int = setting(2, "retries of a crashed trial from its last checkpoint", defining=False)
    # What follows the search
    retrain: bool = setting(True, "skip retraining the best config at the end", defining=False)
    retrain_epochs: int | None = setting(None, "epochs of the retrain", default_text="--max-epochs; with --time-budget, "
                                         "as many as the share kept for it affords, at least --max-epochs",
                                         defining=False)
    retrain_share: float | None = setting(None, "with --time-budget, the share of it kept for the retrain of the best "
                                                "config (0: only what --max-epochs epochs need)",
                                          default_text="half, more when half the budget affords fewer full trials "
                                                       "than the recipes and TPE's random start (search/deadline.py)",
                                          defining=False)
    report: bool = setting(True, "skip writing report.html and plots/", defining=False)
    verbose: int = setting(0, "0: one progress line (a bar on a terminal, a line per finished trial in a log); "
                              "1: Tune's own status table and messages; 2: also every trial's log",
                           choices=(0, 1, 2), defining=False)

    def __post_init__(self) -> None:
        try:
            check_choices(self)
        except ValueError as e:
            raise SearchError(str(e)) from None
        for name in ("num_samples", "max_epochs", "grace_period"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SearchError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.grace_period is None:
            self.grace_period = default_grace_period(self.max_epochs)
        elif self.grace_period > self.max_epochs:
            raise SearchError(f"--grace-period {self.grace_period} is larger than --max-epochs {self.max_epochs}")
        if self.reduction_factor <= 1:
            raise SearchError(f"--reduction-factor must be > 1, got {self.reduction_factor}")
        if self.early_rungs < 0:
            raise SearchError(f"--early-rungs must be >= 0 (0: none), got {self.early_rungs}")
        if self.cpus_per_trial <= 0:
            raise SearchError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise SearchError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        if self.n_startup_trials is not None and self.n_startup_trials < 0:
            raise SearchError(f"--n-startup-trials must be >= 0, got {self.n_startup_trials}")
        if not 0 <= self.tpe_independent <= 1:
            raise SearchError(f"--tpe-independent must be in [0, 1], got {self.tpe_independent:g}")
        if self.time_budget is not None:
            parse_duration(self.time_budget)
        if self.retrain_share is not None and not 0 <= self.retrain_share < 1:
            raise SearchError(f"--retrain-share must be in [0, 1), got {self.retrain_share:g}: the search needs some "
                              "of --time-budget")
        self._check_numbers()
        # Matched against the space's own values as text, as --choices gives them.
        self.choices = {name: [str(v) for v in values] for name, values in self.choices.items()}

    def _check_numbers(self) -> None:
        """Every number finite and in range, refused naming its flag, before a file is written."""
        try:
            super().__post_init__()
        except ValueError as e:
            raise SearchError(str(e)) from None
        check_finite(self, error=SearchError)
        for name in ("seed", "split_seed"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= MAX_SEED:
                raise SearchError(f"--{name.replace('_', '-')} must be in [0, {MAX_SEED}], got {value}")
        minimum = {"max_failures": -1, "max_concurrent": 1, "retrain_epochs": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise SearchError(f"--{name.replace('_', '-')} must be >= {low}, got {value}"
                                  + (" (-1: retry without limit)" if name == "max_failures" else ""))

    @property
    def study_name(self) -> str:
        """The Optuna study's name: the space's name (a user space's function name)."""
        return self.space.rpartition(":")[2]

    @property
    def time_budget_s(self) -> float | None:
        return None if self.time_budget is None else parse_duration(self.time_budget)

    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.study_name}").expanduser().resolve()

    def search_data(self) -> CIFAR10Data:
        """The data every trial and the retrain see: split and subset with ``split_seed`` (default: ``seed``)."""
        return self.load_data(self.seed if self.split_seed is None else self.split_seed)

    def base_run_config(self, device: str) -> RunConfig:
        """What every trial's RunConfig shares; the space's parameters fill in the rest."""
        return RunConfig(epochs=self.max_epochs, seed=self.seed, device=device, compile=self.compile, amp=self.amp)

    def changed_flags(self, saved: SearchConfig) -> list[str]:
        """The flags defining the search whose value differs from ``saved``'s, as ``--flag (was X, now Y)``."""
        changed = []
        for f in dataclasses.fields(self):
            old, new = getattr(saved, f.name), getattr(self, f.name)
            if not f.metadata.get("defining", True) or old == new:
                continue
            if isinstance(new, bool):  # said as the flag: on when given
                old, new = ("on" if v != field_default(f) else "off" for v in (old, new))
            else:
                old, new = repr(old), repr(new)
            changed.append(f"{flag_name(f)} (was {old}, now {new})")
        return changed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SearchConfig:
        return config_from_dict(cls, d, SearchError)

    @classmethod
    def from_run(cls, run_dir: str | Path) -> SearchConfig:
        """The config of the search in ``run_dir``, from its study."""
        saved = read_record(run_dir)
        if not saved or (CONFIG not in saved and "args" not in saved):
            raise SearchError(f"{Path(run_dir) / STUDY_DB} holds no search: pass a search's --out folder")
        return cls.from_dict(saved[CONFIG] if CONFIG in saved else _from_flags(saved["args"]))


def trial_config(base: RunConfig, params: dict, weights_by_arch: dict[str, str] | None = None) -> RunConfig:
    """A trial's RunConfig: the space's ``params`` over the search's ``base``.

    ``weights_by_arch`` maps each pretrained architecture to where its weights came from (the
    fine-tune space chooses the architecture, the command line says where weights come from).
    """
    cfg = {**base.to_dict(), **params}
    if cfg.get("arch") in (weights_by_arch or {}):
        cfg["weights"] = weights_by_arch[cfg["arch"]]
    return RunConfig.from_dict(cfg)


def _from_flags(args: dict) -> dict:
    """A config from a ``search.json`` written before SearchConfig, which saved the parsed flags as ``args``."""
    names = {f.name for f in dataclasses.fields(SearchConfig)}
    config = {k: v for k, v in args.items() if k in names}
    for flag in ("recipe", "amp", "retrain", "report"):
        if f"no_{flag}" in args:
            config[flag] = not args[f"no_{flag}"]
    config["choices"] = parse_choices(args.get("choices") or [])
    return config
