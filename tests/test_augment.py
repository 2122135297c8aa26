import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from model.augment import (OPS, RandAugment, TrivialAugmentWide, batch_crop_flip, batch_cutout_,
                           equalize)
from model.data import synthetic_cifar10
from tests._op_counter import HOST_ROUND_TRIPS, OpCounter

POLICIES = {
    "trivialaugment": (TrivialAugmentWide, v2.TrivialAugmentWide),
    "randaugment": (RandAugment, v2.RandAugment),
}
# Ops whose arithmetic is exact (integer, or the same single float op as torchvision): they
# must match torchvision on every machine. The others round in float32 (fused multiply-add,
# a matmul for the sampling grid) like torchvision does here, where every pixel matches, but
# a different kernel elsewhere could round a value the other way at an integer boundary (one
# intensity level) or a nearest-pixel tie (the neighbouring pixel): allowed on 1% of pixels.
EXACT = ("Identity", "Brightness", "Posterize", "Solarize", "AutoContrast", "Equalize")
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


def ramp_images(n, seed=0, size=(32, 32)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, *size), dtype=torch.uint8, generator=g)


@pytest.fixture(scope="module")
def images():
    """Smooth images (like photos), noise, and edge cases: flat, two levels, a flat channel."""
    smooth = synthetic_cifar10(num_train=40, num_test=1, val_size=0, noise=0.05).train_images[:6]
    flat = torch.full((1, 3, 32, 32), 77, dtype=torch.uint8)
    two = torch.where(torch.arange(32) < 5, 10, 200).to(torch.uint8).expand(1, 3, 32, 32)
    one_flat = ramp_images(1, seed=3).clone()
    one_flat[:, 1] = 255
    return torch.cat([smooth, ramp_images(3), flat, two, one_flat])


def reference(image, name, mag):
    """torchvision's functional op, with the parameters its policies pass (one op for a batch)."""
    nearest = InterpolationMode.NEAREST
    if name in ("ShearX", "ShearY"):
        deg = math.degrees(math.atan(mag))
        shear = [deg, 0.0] if name == "ShearX" else [0.0, deg]
        return TF.affine(image, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
                         interpolation=nearest, center=[0, 0])
    if name in ("TranslateX", "TranslateY"):
        shift = [int(mag), 0] if name == "TranslateX" else [0, int(mag)]
        return TF.affine(image, angle=0.0, translate=shift, scale=1.0, shear=[0.0, 0.0],
                         interpolation=nearest)
    ops = {
        "Identity": lambda: image,
        "Rotate": lambda: TF.rotate(image, mag, interpolation=nearest),
        "Brightness": lambda: TF.adjust_brightness(image, 1.0 + mag),
        "Color": lambda: TF.adjust_saturation(image, 1.0 + mag),
        "Contrast": lambda: TF.adjust_contrast(image, 1.0 + mag),
        "Sharpness": lambda: TF.adjust_sharpness(image, 1.0 + mag),
        "Posterize": lambda: TF.posterize(image, int(mag)),
        "Solarize": lambda: TF.solarize(image, 255.0 * mag),
        "AutoContrast": lambda: TF.autocontrast(image),
        "Equalize": lambda: TF.equalize(image),
    }
    return ops[name]()


def magnitude(tv_cls, name, magnitude_bin, negate, size=(32, 32)):
    """The magnitude torchvision's policy uses for this op, bin and sign."""
    bins, signed = tv_cls._AUGMENTATION_SPACE[name]
    values = bins(31, *size)
    mag = 0.0 if values is None else float(values[magnitude_bin])
    return -mag if signed and negate else mag


def assert_matches(out, expected, name):
    diff = (out.int() - expected.int()).abs()
    if name in EXACT:
        assert torch.equal(out, expected), f"{name}: {int((diff > 0).sum())} pixels differ"
        return
    assert (diff > 0).float().mean() <= 0.01, name
    if name not in GEOMETRIC:
        assert diff.max() <= 1, name


# ---------------------------------------------------------------------------------------
# TrivialAugmentWide and RandAugment, op by op


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", OPS)
def test_op_matches_torchvision_at_every_bin_and_sign(images, name, policy):
    # The whole-batch (accelerator) path is checked against this one below.
    ours_cls, tv_cls = POLICIES[policy]
    ours = ours_cls((32, 32))
    n = len(images)
    for magnitude_bin in range(31):
        for negate in (0, 1):
            mag = magnitude(tv_cls, name, magnitude_bin, negate)
            out = ours.apply(images, torch.full((n,), OPS.index(name)),
                             torch.full((n,), magnitude_bin), torch.full((n,), negate))
            expected = reference(images, name, mag)
            assert_matches(out, expected, name)


@pytest.mark.parametrize("subset", [True, False], ids=["subset", "masked"])
@pytest.mark.parametrize("policy", POLICIES)
def test_mixed_batch_matches_torchvision_image_by_image(images, policy, subset):
    ours_cls, tv_cls = POLICIES[policy]
    size = (20, 28)  # not square: no rot90 shortcut, and x and y scale differently
    ours = ours_cls(size, subset=subset)
    batch = torch.cat([F.interpolate(images, size=size), ramp_images(84, seed=1, size=size)])
    g = torch.Generator().manual_seed(0)
    op, magnitude_bin, negate = (torch.randint(k, (len(batch),), generator=g) for k in (14, 31, 2))
    out = ours.apply(batch, op, magnitude_bin, negate)
    for i, image in enumerate(batch):
        name = OPS[op[i]]
        mag = magnitude(tv_cls, name, int(magnitude_bin[i]), int(negate[i]), size)
        assert_matches(out[i], reference(image, name, mag), name)


def test_equalize_matches_torchvision(images):
    expected = torch.stack([TF.equalize(image) for image in images])
    assert torch.equal(equalize(images), expected)
    odd_size = ramp_images(4, size=(16, 40))
    assert torch.equal(equalize(odd_size), torch.stack([TF.equalize(image) for image in odd_size]))


# ---------------------------------------------------------------------------------------
# Drawing per image


@pytest.mark.parametrize("policy", POLICIES)
def test_images_in_one_batch_get_different_ops(images, policy):
    ours = POLICIES[policy][0]((32, 32))
    batch = images[:1].expand(256, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    out = ours(batch)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert len({o.numpy().tobytes() for o in out}) > 100
    groups = out.view(32, 8, -1)
    assert not (groups == groups[:, :1]).all(2).all(1).any()  # no group of 8 shares one op


@pytest.mark.parametrize("policy", POLICIES)
def test_seeded_runs_repeat_and_both_paths_agree(images, policy):
    ours_cls = POLICIES[policy][0]
    batch = images.repeat(8, 1, 1, 1)
    runs = {}
    for subset in (True, False):
        for seed in (3, 3, 4):
            torch.manual_seed(seed)
            runs.setdefault((subset, seed), []).append(ours_cls((32, 32), subset=subset)(batch))
    first = runs[True, 3][0]
    assert torch.equal(first, runs[True, 3][1]) and torch.equal(first, runs[False, 3][0])
    assert not torch.equal(first, runs[True, 4][0])
    assert torch.equal(runs[True, 4][0], runs[False, 4][0])


def test_randaugment_applies_num_ops_in_sequence_at_its_magnitude(images):
    ours = RandAugment((32, 32), num_ops=2, magnitude=5)
    batch = images.repeat(4, 1, 1, 1)
    n = len(batch)
    torch.manual_seed(0)
    out = ours(batch)
    torch.manual_seed(0)  # RandAugment draws every op first, then each op's sign
    ops = [torch.randint(14, (n,)) for _ in range(2)]
    signs = [torch.randint(2, (n,)) for _ in range(2)]
    expected = batch
    for op, negate in zip(ops, signs):
        expected = ours.apply(expected, op, torch.full((n,), 5), negate)
    assert torch.equal(out, expected)
    assert not torch.equal(out, batch)


def test_wrong_images_are_refused():
    ours = TrivialAugmentWide((32, 32))
    with pytest.raises(ValueError, match="uint8"):
        ours(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\[B, 3, 32, 32\]"):
        ours(torch.zeros(2, 3, 24, 24, dtype=torch.uint8))


@pytest.mark.parametrize("policy", POLICIES)
def test_accelerator_path_makes_no_tensors_from_python_data_and_no_syncs(images, policy):
    ours = POLICIES[policy][0]((32, 32), subset=False)  # what runs on CUDA
    with OpCounter() as counter:
        ours(images.repeat(4, 1, 1, 1))
    assert not {op: counter.counts[op] for op in HOST_ROUND_TRIPS if counter.counts[op]}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("policy", POLICIES)
def test_cuda_policy_never_syncs_and_matches_cpu(images, policy):
    ours_cls = POLICIES[policy][0]
    on_cuda, on_cpu = ours_cls((32, 32), device="cuda"), ours_cls((32, 32))
    batch = images.repeat(8, 1, 1, 1)
    x = batch.cuda()
    on_cuda(x)  # the first call may initialise CUDA libraries
    torch.cuda.set_sync_debug_mode("error")
    try:
        on_cuda(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    g = torch.Generator().manual_seed(0)
    op, magnitude_bin, negate = (torch.randint(k, (len(batch),), generator=g) for k in (14, 31, 2))
    out = on_cuda.apply(x, op, magnitude_bin, negate).cpu()
    expected = on_cpu.apply(batch, op, magnitude_bin, negate)
    for k, name in enumerate(OPS):
        assert_matches(out[op == k], expected[op == k], name)


# ---------------------------------------------------------------------------------------
# Crop, flip and cutout


def test_crop_flip_matches_reflect_padded_crops():
    image = ramp_images(1)
    padded = F.pad(image.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)[0]
    candidates = torch.stack([
        crop.flip(2) if mirror else crop
        for dy in range(9) for dx in range(9) for mirror in (False, True)
        for crop in [padded[:, dy:dy + 32, dx:dx + 32]]
    ])
    torch.manual_seed(0)
    out = batch_crop_flip(image.expand(128, -1, -1, -1))
    matches = (out[:, None] == candidates[None]).flatten(2).all(2)
    assert (matches.sum(1) == 1).all()  # every output is exactly one valid crop
    assert len(set(matches.float().argmax(1).tolist())) > 40  # offsets differ per image
    assert not (out == image).flatten(1).all(1).all()


def test_cutout_zeroes_one_clipped_square():
    torch.manual_seed(0)
    ones = torch.ones(200, 3, 32, 32)
    out = batch_cutout_(ones, 8)
    assert out is ones
    holes = out[:, 0] == 0
    assert torch.equal(holes, (out == 0).all(1))  # same hole in every channel
    counts = holes.flatten(1).sum(1)
    assert (counts >= 16).all() and (counts <= 64).all() and (counts == 64).any()
    assert (counts < 64).any()  # some holes are clipped at the border
    for hole in holes:
        rows, cols = hole.any(1).nonzero(), hole.any(0).nonzero()
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height * width == hole.sum() and height <= 8 and width <= 8
    assert len({tuple(h.nonzero()[0].tolist()) for h in holes}) > 50
