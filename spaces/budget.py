"""What a budget can afford: the recipes and choices a space keeps at a given ``--max-epochs`` and data size.

A space is written for the long runs its literature uses (the ResNet paper trains 164 epochs).
A search of 4 epochs on 10,000 images that spends most trials on a step schedule, batch 512 or
TrivialAugment wastes them: those only pay off over long runs. Each rule below is a function
of the budget, not of one benchmark, and names its evidence. The plan is recorded in
``search.json`` and the report; ``--full-space`` turns every rule off, and a parameter the user
narrowed with ``--choices`` is left as the user chose it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .definitions import FINETUNE_RECIPE, SCRATCH_RECIPE, SHORT_RECIPES

# He et al. 2016, section 4.2: 64k iterations at batch 128, i.e. 8.2M images seen (164 epochs of 45k).
PAPER_IMAGES = 64_000 * 128
# A run needs enough optimizer steps for any schedule to warm up and decay: the step schedule's
# milestones and one-cycle's 30% warm-up each take a share of them. Goyal et al. 2017 ("Accurate,
# Large Minibatch SGD") scale batch only with a matching number of iterations; 150 steps is the
# fewest at which a 4-epoch, batch-256 run on 10,000 images still trains (the hand-written arm
# searched batch 64-256 there: benchmarks/README.md, "The default search against a hand-written
# Optuna script").
MIN_STEPS = 150
# The step schedule divides the lr at 50% and 75% of the run. Li, Yumer & Ramanan ("Budgeted
# Training", ICLR 2020, Table 1 and Fig. 3) find linear and one-cycle-like decays beat it at every
# budget below the full one, increasingly so at 25% and less of it.
STEP_SCHEDULE_MIN_FRACTION = 0.25
# Policy augmentation (TrivialAugment: Mueller & Hutter 2021, 200+ epochs; RandAugment: Cubuk et
# al. 2020, 200 epochs) regularises: it only pays once a model has seen each image many times.
# airbench's short CIFAR-10 runs (10-20 epochs) use flip and translate alone.
POLICY_AUGMENT_MIN_EPOCHS = 30
# The short recipes are written at batch 128, and a short run at batch 128 takes few optimizer
# steps. On the recorded table (12 epochs of 2,000 images: 188 steps at batch 128) the first
# short recipe did better at batch 64 and half the lr than at 128, and the best configs are all
# batch 64; in the 4-epoch, 10,000-image comparison (312 steps at 128) the hand-written arm's best
# was mostly batch 64 (docs/budget.md gives the figures; benchmarks/README.md, "Search quality on
# recorded curves" and "The default search against a hand-written Optuna script", measured them).
# Below this many steps at its batch, a recipe runs at half the batch and half the lr (the linear
# scaling rule, Goyal et al. 2017), while that batch is kept. 500 lies above both measured points;
# nothing above it is measured.
RECIPE_MIN_STEPS = 500
# At half the paper's budget or more, the paper's own recipe is the first config to evaluate.
PAPER_RECIPE_MIN_FRACTION = 0.5
# ASHA's grace period: half of --max-epochs. A fixed grace of 2 epochs means something else at 4
# epochs (half the run) than at 160; early accuracies rank configs poorly until the lr schedule
# has done part of its work (one-cycle warms up over its first 30%). On the recorded curves a half
# is the only grace period tried at which TPE + ASHA beats random search, and it held on fresh
# seeds; shorter ones end no better than random (benchmarks/README.md, "Search quality on recorded
# curves"; docs/budget.md).
def default_grace_period(max_epochs: int) -> int:
    """ASHA's grace period for runs of ``max_epochs``: half of them, at least 1."""
    return max(1, max_epochs // 2)


# ASHA's early rungs (--early-rungs K: K rungs below the grace period, each stopping trials only once the best
# finished trials show that early epochs rank configs as their ends do; search/tune/scheduler.py): none by default.
# Chosen as the default on AlexNet and CIFAR, they made the held-out DeBERTa searches worse at all 8 settings, since
# a search of a fixed --num-samples whose trials got cheaper stopped with 27-57% of its budget unspent
# (benchmarks/README.md, "Early rungs that the study earns"; docs/budget.md).
EARLY_RUNGS = 0


@dataclass(frozen=True)
class Budget:
    """What one trial can spend: epochs, and the training images each epoch sees."""

    max_epochs: int
    train_images: int

    @property
    def images_seen(self) -> int:
        return self.max_epochs * self.train_images

    @property
    def paper_fraction(self) -> float:
        return self.images_seen / PAPER_IMAGES


@dataclass
class BudgetPlan:
    """The budget's narrowing of a space, the recipes it evaluates first, and why."""

    choices: dict[str, list] = field(default_factory=dict)  # categorical -> the choices kept
    recipes: list[dict] = field(default_factory=list)  # evaluated first, in order
    reasons: list[str] = field(default_factory=list)  # one line per rule that changed something

    def to_dict(self) -> dict:
        return asdict(self)


def _keep(plan: BudgetPlan, name: str, choices: list, kept: list, reason: str) -> None:
    if kept and kept != choices:
        plan.choices[name] = kept
        dropped = ", ".join(str(c) for c in choices if c not in kept)
        plan.reasons.append(f"{name}: dropped {dropped} ({reason})")


def _common_rules(plan: BudgetPlan, categorical: dict, budget: Budget, fixed: set) -> None:
    if "batch_size" in categorical and "batch_size" not in fixed:
        choices = categorical["batch_size"]
        kept = [b for b in choices if budget.images_seen / b >= MIN_STEPS] or [min(choices)]
        _keep(plan, "batch_size", choices, kept, f"fewer than {MIN_STEPS} optimizer steps in "
                                                 f"{budget.max_epochs} epochs of {budget.train_images:,} images")
    if "augment" in categorical and "augment" not in fixed and budget.max_epochs < POLICY_AUGMENT_MIN_EPOCHS:
        choices = categorical["augment"]
        kept = [a for a in choices if a not in ("trivialaugment", "randaugment")]
        _keep(plan, "augment", choices, kept, f"policy augmentation pays off only past "
                                              f"{POLICY_AUGMENT_MIN_EPOCHS} epochs")


def scratch_plan(categorical: dict, budget: Budget, fixed: set) -> BudgetPlan:
    plan = BudgetPlan()
    _common_rules(plan, categorical, budget, fixed)
    if "schedule" in categorical and "schedule" not in fixed and budget.paper_fraction < STEP_SCHEDULE_MIN_FRACTION:
        choices = categorical["schedule"]
        _keep(plan, "schedule", choices, [s for s in choices if s != "step"],
              f"{budget.paper_fraction:.1%} of the paper's budget; below {STEP_SCHEDULE_MIN_FRACTION:.0%} "
              "linear/one-cycle decays win (Li et al. 2020)")
    # A recipe value the plan dropped (batch 128 where only 64 is kept) is left to the sampler
    # (spaces.recipe.fit_recipe); the paper's recipe is its step schedule, so it goes only where that pays.
    long = budget.paper_fraction >= PAPER_RECIPE_MIN_FRACTION
    short = [_enough_steps(r, budget, _batches(plan, categorical), plan) for r in STEP_SCALED_RECIPES["scratch"]]
    plan.recipes = [dict(r) for r in ([SCRATCH_RECIPE, *short] if long else short)]
    return plan


def _batches(plan: BudgetPlan, categorical: dict) -> list:
    """The batch sizes ``plan`` keeps of the space's."""
    return plan.choices.get("batch_size") or categorical.get("batch_size") or []


def _enough_steps(recipe: dict, budget: Budget, batches: list, plan: BudgetPlan) -> dict:
    """``recipe`` at half the batch and half the lr while it takes fewer than RECIPE_MIN_STEPS steps."""
    batch, lr = recipe["batch_size"], recipe["lr"]
    while budget.images_seen / batch < RECIPE_MIN_STEPS and batch // 2 in batches:
        batch, lr = batch // 2, lr / 2
    if batch == recipe["batch_size"]:
        return dict(recipe)
    reason = (f"recipe lr {recipe['lr']:g} at batch {recipe['batch_size']}: run at batch {batch}, lr {lr:g} "
              f"({budget.images_seen // recipe['batch_size']} steps < {RECIPE_MIN_STEPS}; linear scaling, Goyal et al. 2017)")
    plan.reasons.append(reason)
    return {**recipe, "batch_size": batch, "lr": lr}


def finetune_plan(categorical: dict, budget: Budget, fixed: set) -> BudgetPlan:
    plan = BudgetPlan()
    _common_rules(plan, categorical, budget, fixed)
    plan.recipes = [dict(FINETUNE_RECIPE)]
    return plan


PLANS = {"scratch": scratch_plan, "finetune": finetune_plan}
# The recipes each plan runs at the batch their steps afford (_enough_steps): the one rule that changes a config
# with the run's length, and so the one that plan_retrain re-plans.
STEP_SCALED_RECIPES = {"scratch": SHORT_RECIPES}


def plan_budget(space_name: str, categorical: dict, budget: Budget, fixed: set = frozenset()) -> BudgetPlan | None:
    """The plan of a registered space for ``budget``; None for spaces without rules (user spaces, smoke).

    ``categorical``: the space's categorical parameters and their choices (``SpaceInfo.categorical``);
    ``fixed``: parameters the user narrowed with ``--choices``, which no rule touches.
    """
    rules = PLANS.get(space_name)
    return rules(categorical, budget, set(fixed)) if rules else None


def plan_retrain(space_name: str, params: dict, categorical: dict, trials: Budget, retrain: Budget,
                 fixed: set = frozenset()) -> dict:
    """The best config's budget-dependent parameters, re-planned for the retrain's own length.

    The retrain trains the best config for its own epochs on train + validation, often many more
    steps than a trial took. Of the rules above, only RECIPE_MIN_STEPS sets a config's values from
    the run's length; the others narrow what the sampler may propose, and a longer run affords all
    that a shorter one does. So a best config that is a recipe at the batch and lr that rule gave
    the trials gets the batch and lr it gives the retrain (within the space's batches as
    ``--choices`` left them; a batch size the user fixed stays). Returns ``{"epochs",
    "images_seen", "params", "changed", "reasons"}``: ``params`` to retrain, ``changed`` as
    ``{name: [trials' value, retrain's value]}``.
    """
    plan = {"epochs": retrain.max_epochs, "images_seen": retrain.images_seen, "params": dict(params), "changed": {},
            "reasons": []}
    recipes = STEP_SCALED_RECIPES.get(space_name, [])
    if not recipes or "batch_size" in fixed or space_name not in PLANS:
        return plan
    before = _batches(plan_budget(space_name, categorical, trials, fixed), categorical)
    after = _batches(plan_budget(space_name, categorical, retrain, fixed), categorical)
    for recipe in recipes:
        ran = _enough_steps(recipe, trials, before, BudgetPlan())
        if (params.get("batch_size"), params.get("lr")) != (ran["batch_size"], ran["lr"]):
            continue
        now = _enough_steps(recipe, retrain, after, BudgetPlan())
        if (now["batch_size"], now["lr"]) != (ran["batch_size"], ran["lr"]) and \
                now["batch_size"] in categorical.get("batch_size", []):
            plan["params"].update(batch_size=now["batch_size"], lr=now["lr"])
            plan["changed"] = {k: [ran[k], now[k]] for k in ("batch_size", "lr")}
            plan["reasons"].append(
                f"batch_size {ran['batch_size']} -> {now['batch_size']}, lr {ran['lr']:g} -> {now['lr']:g}: the "
                f"recipe at lr {recipe['lr']:g}, batch {recipe['batch_size']} ran at batch {ran['batch_size']} for "
                f"the trials' {trials.images_seen // recipe['batch_size']} steps at its batch; the retrain's "
                f"{retrain.images_seen // recipe['batch_size']} give batch {now['batch_size']} "
                f"(RECIPE_MIN_STEPS {RECIPE_MIN_STEPS}, linear scaling)")
        break
    return plan
