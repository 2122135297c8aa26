"""torchvision's ImageNet weights for a search: from the cache, downloaded quietly, or one line naming every missing file."""

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from model.build import TORCHVISION_WEIGHTS, WeightsError
from search.weights import resolve_weights
from tests._offline import run_in_empty_folder

ARCHS = list(TORCHVISION_WEIGHTS)  # resnet18, resnet34, resnet50: what the finetune space asks


def imagenet_weights_file(arch):
    """torchvision's URL for arch's ImageNet weights and torch.hub's cache file for it."""
    url = getattr(torchvision.models, TORCHVISION_WEIGHTS[arch]).IMAGENET1K_V1.url
    return url, Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def offline(monkeypatch):
    """Every HTTP request fails as it does with no network, below torch.hub's own code."""
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "urlopen", no_network)


def save_random_weights(arch, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(getattr(torchvision.models, arch)().state_dict(), path)


def test_offline_names_every_missing_file_at_once_and_prints_nothing(empty_cache, offline, capfd):
    with pytest.raises(WeightsError) as excinfo:
        resolve_weights("finetune", None, ARCHS)
    message = str(excinfo.value)
    assert "\n" not in message
    for arch in ARCHS:
        url, cache = imagenet_weights_file(arch)
        assert url in message and cache.parent == empty_cache
    assert f"in {empty_cache}," in message and "--weights PATH" in message
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")  # torch.hub would print 'Downloading: "...resnet18-f37072fd.pth"'


def test_offline_with_one_file_cached_names_only_the_others(empty_cache, offline, capfd):
    save_random_weights("resnet34", imagenet_weights_file("resnet34")[1])
    with pytest.raises(WeightsError) as excinfo:
        resolve_weights("finetune", None, ARCHS)
    message = str(excinfo.value)
    assert "resnet18, resnet50" in message and "resnet34" not in message
    assert capfd.readouterr() == ("", "")


def test_online_downloads_each_missing_file_quietly_into_the_cache(empty_cache, monkeypatch, capfd):
    fetched = []

    def download(url, dst, hash_prefix=None, progress=True):
        arch = next(a for a in ARCHS if f"/{a}-" in url)
        assert hash_prefix and hash_prefix in url and not progress
        fetched.append(arch)
        save_random_weights(arch, Path(dst))

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    found = resolve_weights("finetune", None, ARCHS)
    assert fetched == ARCHS and sorted(found) == sorted(ARCHS)
    assert {label for label, _ in found.values()} == {"imagenet"}
    assert all(imagenet_weights_file(a)[1].is_file() for a in ARCHS)
    assert capfd.readouterr() == ("", "")
    resolve_weights("finetune", None, ARCHS)  # now all cached: nothing fetched again
    assert fetched == ARCHS


@pytest.mark.slow
def test_offline_finetune_search_is_one_line_naming_all_three_files(tmp_path):
    proc = run_in_empty_folder(tmp_path, "-m", "search.run", "--space", "finetune")
    assert proc.returncode == 2
    assert "Downloading" not in proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    for arch in ARCHS:
        assert imagenet_weights_file(arch)[0] in line, line
    assert str(tmp_path / "home" / ".cache" / "torch" / "hub" / "checkpoints") in line
