"""A fresh user's machine with no network: an empty folder, empty caches, every download refused at once."""

import os
import subprocess
import sys
from pathlib import Path

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
