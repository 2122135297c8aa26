"""The mission's commands as a new user types them, in an empty folder, offline: one line each, exit 2."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def offline_env(home: Path) -> dict:
    """A fresh user's environment with no network: empty caches, every download refused at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESNET_HPO_", "TORCH_HOME"))}
    # urllib (torchvision's and torch.hub's downloads) goes through the proxy, which is a closed
    # port: a connection error in milliseconds, as offline, and never a real download.
    closed = "http://127.0.0.1:9"
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), http_proxy=closed, https_proxy=closed,
               HTTP_PROXY=closed, HTTPS_PROXY=closed, no_proxy="", NO_PROXY="",
               PYTHONPATH=str(ROOT))
    return env


def run_in_empty_folder(tmp_path, *argv):
    cwd = tmp_path / "empty"
    cwd.mkdir()
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=offline_env(tmp_path / "home"),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, needles", [
    # No flags: pretrained spaces default to torchvision's ImageNet weights, which cannot be had.
    (["-m", "search.run", "--space", "finetune"],
     ["ImageNet weights", "https://download.pytorch.org/models/resnet", "--weights PATH"]),
    # The default data folder, downloaded into when missing.
    (["-m", "search.run", "--space", "scratch"],
     ["could not download CIFAR-10", ".cache/resnet-hpo/cifar10", "--data PATH"]),
    (["-m", "search.run", "--space", "scratch", "--download"],
     ["could not download CIFAR-10", "--data PATH"]),
    (["-m", "model.train"], ["could not download CIFAR-10", "--data PATH"]),
])
@pytest.mark.slow
def test_offline_first_commands_say_what_to_pass_in_one_line(tmp_path, argv, needles):
    proc = run_in_empty_folder(tmp_path, *argv)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "empty").iterdir())  # nothing half-made is left behind
