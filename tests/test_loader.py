import pytest
import torch
import torch.nn.functional as F

from model.loader import AUGMENTATIONS, DeviceLoader
from tests._op_counter import OpCounter


def ramp_images(n, seed=0):
    """Unique random uint8 images (so every sample can be identified)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def denormalize(x):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)


def make_loader(images, labels=None, **kwargs):
    labels = torch.arange(len(images)) if labels is None else labels
    kwargs.setdefault("batch_size", 8)
    return DeviceLoader(images, labels, mean=MEAN, std=STD, **kwargs)


def test_eval_loader_in_order_exact_and_keeps_last_batch():
    images = ramp_images(20)
    loader = make_loader(images, augment="crop_flip_cutout")  # ignored for eval
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(y) for _, y in batches] == [8, 8, 4]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.float32 and x.shape == (20, 3, 32, 32)
    assert y.dtype == torch.int64 and y.tolist() == list(range(20))
    assert torch.equal(denormalize(x), images)


def test_train_loader_drops_last_by_default():
    loader = make_loader(ramp_images(20), train=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [8, 8]


def test_train_shuffle_covers_every_sample_once():
    images = ramp_images(21)
    loader = make_loader(images, train=True, drop_last=False)
    assert len(loader) == 3
    torch.manual_seed(0)
    batches = list(loader)
    y = torch.cat([b[1] for b in batches])
    assert sorted(y.tolist()) == list(range(21))
    assert y.tolist() != list(range(21))
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(denormalize(x), images[y])


@pytest.mark.parametrize("augment", AUGMENTATIONS)
def test_same_global_seed_same_batches(augment):
    loader = make_loader(ramp_images(32), train=True, augment=augment)
    torch.manual_seed(5)
    first = list(loader)
    torch.manual_seed(5)
    second = list(loader)
    third = list(loader)  # the next epoch continues the RNG stream
    for (x1, y1), (x2, y2) in zip(first, second):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert torch.isfinite(x1).all() and x1.shape == (8, 3, 32, 32)
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, third))


def test_flip_is_per_image():
    image = ramp_images(1)
    loader = make_loader(image.expand(64, -1, -1, -1).clone(), batch_size=64, train=True,
                         augment="flip")
    torch.manual_seed(0)
    (x, _), = list(loader)
    out = denormalize(x)
    same = (out == image).flatten(1).all(1)
    flipped = (out == image.flip(3)).flatten(1).all(1)
    assert (same | flipped).all()
    assert 10 < flipped.sum() < 54


def test_crop_flip_loader_changes_images_differently():
    image = ramp_images(1)
    loader = make_loader(image.expand(64, -1, -1, -1).clone(), batch_size=64, train=True,
                         augment="crop_flip")
    torch.manual_seed(1)
    (x, _), = list(loader)
    out = denormalize(x)
    assert len({o.numpy().tobytes() for o in out}) > 20
    assert (out != image).flatten(1).any(1).sum() > 50


def test_cutout_loader_fills_with_zero_after_normalization():
    loader = make_loader(ramp_images(16), batch_size=16, train=True, augment="crop_flip_cutout")
    torch.manual_seed(0)
    (x, _), = list(loader)
    zero = (x == 0).all(1)
    assert (zero.flatten(1).sum(1) >= 16).all()


@pytest.mark.parametrize("augment", ["trivialaugment", "randaugment"])
def test_policy_epoch_makes_no_tensors_from_python_data(augment):
    # On CUDA each tensor made from Python data is a blocking host-to-device copy, and each
    # .item() a sync; per batch, they would stall the training loop.
    loader = make_loader(ramp_images(256), batch_size=64, train=True, augment=augment)
    torch.manual_seed(0)
    batches = iter(loader)
    with OpCounter() as counter:
        assert len(list(batches)) == 4
    assert counter.counts["lift_fresh"] == 0 and counter.counts["_local_scalar_dense"] == 0


@pytest.mark.parametrize("train", [False, True])
def test_input_size_and_channels_last(train):
    loader = make_loader(ramp_images(16), train=train, augment="crop_flip", input_size=64,
                         channels_last=True)
    x, y = next(iter(loader))
    assert x.shape == (8, 3, 64, 64) and y.shape == (8,)
    assert x.is_contiguous(memory_format=torch.channels_last)
    plain, _ = next(iter(make_loader(ramp_images(16), train=train, input_size=64)))
    assert plain.shape == (8, 3, 64, 64) and plain.is_contiguous()


def test_eval_resize_is_bilinear():
    images = ramp_images(4)
    x, _ = next(iter(make_loader(images, input_size=64)))
    expected = F.interpolate(images.float(), size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(denormalize(x).float(), expected.round(), atol=1)


def test_unknown_augment_lists_choices():
    with pytest.raises(ValueError, match="crop_flip_cutout.*randaugment"):
        make_loader(ramp_images(4), augment="mixup")
