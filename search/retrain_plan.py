"""The retrain's own plan: the best config's budget-dependent parameters re-planned for the retrain's length.

The rule is ``spaces.budget.plan_retrain``; this applies it to a search's best config and records
the plan in the study (user attribute ``retrain_plan``) and in ``search.json``.
"""

from __future__ import annotations

from pathlib import Path

import optuna

import spaces
from model.checkpoint import write_json
from model.data import CIFAR10Data
from spaces.asks import inspect_space
from spaces.budget import Budget, plan_retrain
from spaces.narrow import narrow_space

from .config import SearchConfig
from .constants import SEARCH_JSON, STUDY_DB, study_url
from .results import read_summary

RETRAIN_PLAN = "retrain_plan"  # the study's user attribute, and search.json's key


def replan_best(out: Path, best: dict, epochs: int, data: CIFAR10Data) -> dict:
    """``best`` (``best/config.json``) with its config re-planned for ``epochs`` of ``data``'s train + validation.

    Records the plan (``spaces.budget.plan_retrain``), changed or not, in the study and in ``search.json``.
    """
    config = SearchConfig.from_run(out)
    trials = Budget(config.max_epochs, len(data.train_labels))
    retrain = Budget(epochs, len(data.train_labels) + len(data.val_labels))
    params = best.get("params") or {}
    try:
        fn = spaces.get_space(config.space)
        info = inspect_space(fn, config.space)
        categorical = {**info.categorical, **narrow_space(fn, info, config.choices, name=config.space)[1]}
    except ValueError:  # a user space since moved or edited: its trials' plan cannot be rebuilt, nor re-planned
        categorical = None
    if config.full_space or categorical is None:
        plan = plan_retrain("", params, {}, trials, retrain)
    else:
        plan = plan_retrain(config.space, params, categorical, trials, retrain, fixed=set(config.choices))
    _record(out, config, plan)
    for reason in plan["reasons"]:
        print(f"note: the retrain's own budget: {reason}", flush=True)
    return {**best, "params": plan["params"], "config": {**best["config"], **plan["params"]}}


def _record(out: Path, config: SearchConfig, plan: dict) -> None:
    if (out / STUDY_DB).is_file():
        study = optuna.load_study(study_name=config.study_name, storage=study_url(out))
        study.set_user_attr(RETRAIN_PLAN, plan)
    summary = read_summary(out)  # rebuilt from the study: the plan is one of its user attributes now
    if summary is not None:
        write_json(out / SEARCH_JSON, {**summary, RETRAIN_PLAN: plan})
