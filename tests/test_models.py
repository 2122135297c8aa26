import pytest
import torch
import torchvision

from model import WeightsError, build_model, list_models
from model.build import TORCHVISION_WEIGHTS, trainable_parameters

# He et al. 2016, table 6.
PAPER_PARAMS = {"resnet20": 0.27e6, "resnet32": 0.46e6, "resnet44": 0.66e6, "resnet56": 0.85e6, "resnet110": 1.7e6}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", list(PAPER_PARAMS))
def test_cifar_resnet_parameter_counts_match_the_paper(arch):
    assert n_params(build_model(arch)) == pytest.approx(PAPER_PARAMS[arch], rel=0.03)


@pytest.mark.parametrize("arch", list_models())
def test_forward_shapes_and_finite(arch):
    model = build_model(arch, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_unknown_arch_lists_valid_names():
    with pytest.raises(ValueError, match="resnet20.*resnet110.*resnet50"):
        build_model("resnet21")


@pytest.mark.parametrize("arch", list(TORCHVISION_WEIGHTS))
def test_torchvision_state_dict_loads_and_matches_features(arch, tmp_path):
    reference = getattr(torchvision.models, arch)().eval()
    path = tmp_path / f"{arch}.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(arch, weights=path).eval()
    assert model.stem == "imagenet"
    assert model.fc.out_features == 10
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = torch.flatten(model.avgpool(model.forward_features(x)), 1)
        reference.fc = torch.nn.Identity()
        theirs = reference(x)
    torch.testing.assert_close(ours, theirs)


def test_imagenet_stem_and_cifar_stem_names_match_torchvision():
    tv_names = {k for k in torchvision.models.resnet18().state_dict() if not k.startswith("fc.")}
    ours = {k for k in build_model("resnet18", stem="imagenet").state_dict() if not k.startswith("fc.")}
    assert ours == tv_names
    cifar = build_model("resnet18")
    assert cifar.conv1.kernel_size == (3, 3) and isinstance(cifar.maxpool, torch.nn.Identity)


def test_bad_weights_give_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        build_model("resnet18", weights=tmp_path / "missing.pth")
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsError, match="do not fit resnet18"):
        build_model("resnet18", weights=tmp_path / "r34.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        build_model("resnet18", weights=tmp_path / "junk.pth")
    with pytest.raises(WeightsError, match="no pretrained weights"):
        build_model("resnet20", weights=tmp_path / "r34.pth")


def test_imagenet_weights_offline_says_how_to_pass_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match="--weights PATH"):
        build_model("resnet18", weights="imagenet")


@pytest.mark.parametrize("frozen,trainable_prefixes", [
    (0, ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")),
    (1, ("layer2", "layer3", "layer4", "fc")),
    (3, ("layer4", "fc")),
    (4, ("fc",)),
])
def test_frozen_stages_select_trainable_parameters(frozen, trainable_prefixes):
    model = build_model("resnet18", frozen_stages=frozen)
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(trainable_prefixes)
    assert len(trainable_parameters(model)) == sum(p.requires_grad for p in model.parameters())


def test_frozen_batchnorm_stays_in_eval_mode():
    model = build_model("resnet18", frozen_stages=2).train()
    assert not model.bn1.training and not model.layer2[0].bn1.training
    assert model.layer3[0].bn1.training and model.fc.training
    with pytest.raises(ValueError, match="0..4"):
        build_model("resnet18", frozen_stages=5)
