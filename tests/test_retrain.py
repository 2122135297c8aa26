"""The retrain of a search's best config, and loading the model it writes."""

import pytest
import torch

from model.config import RunConfig
from model.data import load_cifar10, synthetic_cifar10
from search.retrain import load_best_model, retrain
from tests._data_utils import write_image_folders


@pytest.mark.slow
def test_load_best_model_loads_a_model_trained_on_three_classes(tmp_path):
    # An image-folder tree may hold any number of classes; this one has three.
    three = synthetic_cifar10(num_train=150, num_test=30, num_classes=3, val_size=30, seed=0)
    data = load_cifar10(write_image_folders(three, tmp_path / "three"), val_size=30)
    assert len(data.classes) == 3
    best = {"trial": 0, "val_acc": 0.5, "config": RunConfig(arch="resnet20", epochs=1, batch_size=30).to_dict()}
    (tmp_path / "run" / "best").mkdir(parents=True)
    retrain(best, data, tmp_path / "run", epochs=1, device="cpu", threads=2)
    model = load_best_model(tmp_path / "run")
    saved = torch.load(tmp_path / "run" / "best" / "model.pt", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
