import pytest

from model.data import synthetic_cifar10
from tests._data_utils import write_image_folders


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """A small learnable CIFAR-like image-folder tree on disk (what --data points at)."""
    data = synthetic_cifar10(num_train=1000, num_test=200, val_size=200, seed=0)
    return write_image_folders(data, tmp_path_factory.mktemp("synth") / "images")
