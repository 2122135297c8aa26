"""The budget-aware plans: recipes and choices change with --max-epochs and the data size, as documented."""

from __future__ import annotations

from spaces.budget import MIN_STEPS, PAPER_IMAGES, RECIPE_MIN_STEPS, Budget, plan_budget
from spaces.definitions import AUGMENT_CHOICES, SCRATCH_RECIPE, SHORT_RECIPES

SCRATCH = {"arch": ["resnet20"], "batch_size": [64, 128, 256, 512], "schedule": ["cosine", "onecycle", "step"],
           "optimizer": ["sgd", "nesterov"], "augment": AUGMENT_CHOICES}
# The short recipes at half their batch (128 -> 64) and half their lr: a short run's steps.
HALVED = [{**r, "batch_size": 64, "lr": r["lr"] / 2} for r in SHORT_RECIPES]


def test_a_short_budget_drops_what_cannot_pay_off_and_starts_from_one_cycle():
    plan = plan_budget("scratch", SCRATCH, Budget(max_epochs=4, train_images=10_000))
    # 4 x 10,000 / 512 = 78 steps < 150; 4 x 10,000 / 256 = 156 steps stay.
    assert plan.choices == {"batch_size": [64, 128, 256], "augment": ["none", "crop_flip", "crop_flip_cutout"],
                            "schedule": ["cosine", "onecycle"]}
    # The paper's step schedule is not in the narrowed space; 40,000 / 128 = 312 steps < 500, so batch 64.
    assert plan.recipes == HALVED and 40_000 / 128 < RECIPE_MIN_STEPS <= 40_000 / 64
    assert plan.recipes[0]["schedule"] == "onecycle" and plan.recipes[0]["optimizer"] == "nesterov"
    assert plan.recipes[0]["lr"] == 0.05 and plan.recipes[1]["lr"] == 0.1
    assert len(plan.reasons) == 5 and any("Li et al. 2020" in r for r in plan.reasons)
    assert sum("Goyal et al. 2017" in r for r in plan.reasons) == 2


def test_the_rules_follow_the_budget_not_a_constant():
    few_images = plan_budget("scratch", SCRATCH, Budget(max_epochs=12, train_images=2_000))
    assert few_images.choices["batch_size"] == [64, 128]  # 24,000 images / 256 = 94 steps
    many_images = plan_budget("scratch", SCRATCH, Budget(max_epochs=12, train_images=45_000))
    assert "batch_size" not in many_images.choices  # 540,000 / 512 = 1,055 steps
    assert many_images.choices["schedule"] == ["cosine", "onecycle"]
    thirty = plan_budget("scratch", SCRATCH, Budget(max_epochs=30, train_images=45_000))
    assert "augment" not in thirty.choices  # TrivialAugment kept from 30 epochs on
    # The smallest batch always stays, however small the budget.
    tiny = plan_budget("scratch", SCRATCH, Budget(max_epochs=1, train_images=100))
    assert tiny.choices["batch_size"] == [64] and 100 / 64 < MIN_STEPS
    assert tiny.recipes == HALVED  # at the one batch kept
    # Enough steps at batch 128 (12 x 20,000 / 128 = 1,875): the recipes as written.
    assert plan_budget("scratch", SCRATCH, Budget(max_epochs=12, train_images=20_000)).recipes == SHORT_RECIPES


def test_a_long_budget_keeps_the_full_space_and_the_paper_recipe_first():
    paper = Budget(max_epochs=164, train_images=PAPER_IMAGES // 164 + 1)
    plan = plan_budget("scratch", SCRATCH, paper)
    assert plan.choices == {} and plan.reasons == []
    assert plan.recipes[0] == SCRATCH_RECIPE and plan.recipes[1:] == SHORT_RECIPES


def test_parameters_the_user_fixed_are_left_alone():
    plan = plan_budget("scratch", SCRATCH, Budget(max_epochs=4, train_images=10_000), fixed={"schedule", "augment"})
    assert set(plan.choices) == {"batch_size"}
    assert plan.recipes[0] == HALVED[0]
    # A batch size the user fixed is not halved: with --choices batch_size=128 the recipe stays at 128.
    fixed = plan_budget("scratch", {**SCRATCH, "batch_size": [128]}, Budget(max_epochs=4, train_images=10_000),
                        fixed={"batch_size"})
    assert fixed.recipes == SHORT_RECIPES


def test_spaces_without_rules_have_no_plan():
    assert plan_budget("smoke", {"arch": ["resnet20"]}, Budget(4, 1000)) is None
    assert plan_budget("my.py:space", {}, Budget(4, 1000)) is None


def _plan(**flags):
    import spaces
    from search.config import SearchConfig
    from search.driver import plan_space
    from spaces.asks import inspect_space

    config = SearchConfig(space="scratch", **flags)
    fn = spaces.get_space("scratch")
    info = inspect_space(fn, "scratch")
    return plan_space(config, fn, info, None, train_images=10_000)


def test_the_search_applies_the_plan_and_full_space_turns_it_off():
    _, narrowed, points, plan = _plan(max_epochs=4, choices={"arch": ["resnet20"]})
    assert narrowed["schedule"] == ["cosine", "onecycle"] and narrowed["batch_size"] == [64, 128, 256]
    assert narrowed["arch"] == ["resnet20"]  # the user's narrowing stays
    assert points == HALVED and plan.recipes == HALVED
    space, narrowed, points, plan = _plan(max_epochs=4, choices={"arch": ["resnet20"]}, full_space=True)
    assert plan is None and narrowed == {"arch": ["resnet20"]}
    assert points == [SCRATCH_RECIPE]  # the paper's recipe, as the space declares it
    # A --choices the budget would have narrowed is the user's: the step schedule stays if asked for.
    _, narrowed, points, _ = _plan(max_epochs=4, choices={"schedule": ["step", "cosine"]})
    assert narrowed["schedule"] == ["step", "cosine"]
    # The one-cycle recipes leave their schedule to the sampler; the paper's (step) recipe is for long budgets.
    assert [p.get("schedule") for p in points] == [None, None] and points[0]["lr"] == HALVED[0]["lr"]


def test_the_flag_is_in_the_cli():
    from search.cli import get_args_parser

    assert get_args_parser().parse_args(["--space", "scratch", "--full-space"]).full_space is True


def test_the_grace_period_scales_with_max_epochs():
    from search.config import SearchConfig

    assert [SearchConfig(space="smoke", max_epochs=e).grace_period for e in (1, 3, 4, 12, 30)] == [1, 1, 2, 6, 15]
    assert SearchConfig(space="smoke", max_epochs=30, grace_period=3).grace_period == 3  # as the user set it
