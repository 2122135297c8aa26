import optuna
import pytest

import spaces
from model.config import RunConfig
from search.config import trial_config
from spaces.asks import sample_space


@pytest.mark.parametrize("name", spaces.list_spaces())
def test_every_space_suggests_valid_run_configs(name):
    trials = sample_space(spaces.get_space(name), 30)
    base = RunConfig(epochs=3, seed=0, device="cpu")
    for t in trials:
        cfg = trial_config(base, t.params, {"resnet18": "w18.pth"})  # every parameter is a RunConfig field
        assert isinstance(cfg, RunConfig) and cfg.epochs == 3
        if cfg.arch == "resnet18" and spaces.needs_weights(name):
            assert cfg.weights == "w18.pth"


def test_finetune_asks_backbone_lr_only_when_the_backbone_trains():
    trials = sample_space(spaces.get_space("finetune"), 60)
    assert {t.params["frozen_stages"] for t in trials} == {0, 1, 2, 3, 4}
    for t in trials:
        assert ("backbone_lr_mult" in t.params) == (t.params["frozen_stages"] < 4)


def test_scratch_covers_depth_lr_augmentation():
    distributions = {}
    for t in sample_space(spaces.get_space("scratch"), 20):
        distributions.update(t.distributions)
    assert set(distributions["arch"].choices) == {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                                                  "resnet18"}
    assert distributions["lr"].log and distributions["weight_decay"].log
    assert "trivialaugment" in distributions["augment"].choices and "none" in distributions["augment"].choices


def test_registry_names_and_errors():
    assert spaces.list_spaces() == ["finetune", "scratch", "smoke"]
    assert spaces.needs_weights("finetune") and not spaces.needs_weights("scratch")
    with pytest.raises(ValueError, match="valid: finetune, scratch, smoke"):
        spaces.get_space("imagenet")
    with pytest.raises(ValueError, match="already registered"):
        spaces.register_space(spaces.get_space("smoke"))


def test_fixed_values_come_from_the_caller_not_the_space():
    trial = optuna.create_study().ask()
    spaces.get_space("scratch")(trial)
    assert "epochs" not in trial.params and "seed" not in trial.params
