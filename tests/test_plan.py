"""The plan line (search/plan.py): what a search will do and cost, said before its first trial trains an epoch."""

import json
import re
import subprocess
import sys

import pytest

import spaces
from model.config import RunConfig
from model.data import synthetic_cifar10
from search.config import SearchConfig
from search.plan import EVAL_COST, make_plan, measure, mult_adds, plan_line
from search.progress import format_duration
from tests._searches import ROOT, SEARCH, trial_rows

DATA = synthetic_cifar10(num_train=400, num_test=20, val_size=100, seed=0)


def test_multiply_adds_follow_depth_and_input_size():
    r20, r56 = (mult_adds(RunConfig(arch=a), 10) for a in ("resnet20", "resnet56"))
    assert 40e6 < r20 < 42e6  # the ResNet paper's ResNet-20: 41M multiply-adds at 32 px
    assert r56 / r20 == pytest.approx(125.8 / 40.8, rel=0.02)
    # The ImageNet stem at 64 px against 32 px: four times the pixels, four times the work.
    big, small = (mult_adds(RunConfig(arch="resnet18", weights="imagenet", input_size=s), 10) for s in (64, 32))
    assert big / small == pytest.approx(4, rel=0.05)


def test_the_speed_is_measured_through_the_training_loop():
    speed = measure(RunConfig(arch="resnet20", batch_size=32, device="cpu", threads=1, augment="crop_flip"), DATA)
    assert 20 < speed < 50_000  # images/s of ResNet-20 on one CPU thread, whatever the day's CPU


def plan_for(config, speed=100.0, start_s=5.0, trials=None):
    base = config.base_run_config("cpu")
    return make_plan(config, base=base, space=spaces.get_space(config.space), first={"lr": 0.1, "batch_size": 64},
                     weights_by_arch={}, data=DATA, speed=speed, start_s=start_s,
                     trials=config.num_samples if trials is None else trials, slots=2)


def test_the_estimate_is_the_documented_arithmetic():
    config = SearchConfig(space="smoke", num_samples=8, max_epochs=4, grace_period=2, reduction_factor=3,
                          retrain_epochs=10)
    plan = plan_for(config)
    # The smoke space is ResNet-20 only: the measured speed is the space's. ASHA's one rung at epoch 2 keeps a
    # third: 2 + 2/3 epochs a trial. An epoch: 300 images trained, 100 validated at a third of the cost.
    assert (len(DATA.train_labels), len(DATA.val_labels)) == (300, 100)
    assert plan.images_per_second == 100.0 and plan.trial_epochs == pytest.approx(8 * (2 + 2 / 3))
    epoch = (300 + EVAL_COST * 100) / 100.0
    assert plan.search_seconds == pytest.approx((8 * (2 + 2 / 3) * epoch + 8 * 5.0) / 2)  # 2 trials at once
    assert plan.retrain_seconds == pytest.approx(10 * 400 / 100.0)
    line = plan_line(plan, config)
    assert line.startswith("plan: 8 trials of at most 4 epochs on 300 images (+100 to validate), 2 at once on cpu, "
                           "2 threads each; measured here 100 images/s (resnet20, batch 64)")
    assert f"should take about {format_duration(plan.search_seconds)}" in line and "--time-budget" not in line


def test_a_long_search_names_the_time_budget_and_the_first_look():
    config = SearchConfig(space="smoke", num_samples=32, max_epochs=30)
    line = plan_line(plan_for(config, speed=1.0), config)
    assert "(est.); to bound it add --time-budget (e.g. 2h), or take the first look: ./hpo search" in line
    readme = (ROOT / "README.md").read_text()
    assert line.split("take the first look: ")[1] in re.sub(r"\\\n\s*", "", readme)  # the README's command
    bounded = SearchConfig(space="smoke", num_samples=32, max_epochs=30, time_budget="2h")
    assert plan_line(plan_for(bounded, speed=1.0), bounded).endswith("(est.); --time-budget 2h bounds it")


@pytest.mark.slow
def test_the_plan_line_comes_before_the_first_epoch_and_matches_search_json(image_folder, tmp_path):
    out = tmp_path / "smoke"
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *SEARCH, "--data", str(image_folder), "--out",
                             str(out), "--num-samples", "3", "--max-epochs", "2", "--no-retrain", "--no-report"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:  # read as the search prints it
        lines.append(line)
        if line.startswith("plan:"):
            epochs_then = [epochs for _, epochs in trial_rows(out / "study.db").values()]
            break
    rest, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, "".join(lines) + rest + err[-3000:]
    (line,) = [x for x in lines if x.startswith("plan:")]
    assert sum(epochs_then) == 0  # no trial had trained an epoch when the plan was said
    plan = json.loads((out / "search.json").read_text())["plan"]
    assert line.startswith(f"plan: 3 trials of at most 2 epochs on {plan['train_images']:,} images "
                           f"(+{plan['val_images']:,} to validate), {plan['at_once']} at once on cpu")
    assert f"measured here {plan['measured']['images_per_second']:,.0f} images/s (resnet20" in line
    assert f"{plan['trial_epochs']:,.0f} trial-epochs should take about " \
           f"{format_duration(plan['search_seconds'])} (est.)" in line
