#!/usr/bin/env bash
# pytest and its pure-Python dependencies, for a GPU machine that has neither pytest nor a package registry.
# Run it where pip works, from anywhere; it fills .gpu_deps/ (git-ignored) at the repository root, which
# travels with the working tree. benchmarks.gpu_check puts that folder on sys.path, after the machine's own
# packages, so a pytest already installed there wins.
#
#   bash benchmarks/gpu_deps.sh                 # wheels for Python 3.12, the GPU machine's
#   PYTHON_VERSION=3.11 bash benchmarks/gpu_deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=.gpu_deps
version=${PYTHON_VERSION:-3.12}
python=${PYTHON:-python3}
rm -rf "$target"
# --python-version with --only-binary: the wheels and conditional dependencies of that Python, not
# this one's; --implementation py / --abi none / --platform any: pure-Python wheels only, which run on
# any processor.
"$python" -m pip install --quiet --disable-pip-version-check --no-compile --target "$target" \
    --python-version "$version" --implementation py --abi none --platform any --only-binary=:all: \
    "pytest>=7.4,<10"
"$python" - "$target" <<'PY'
import pathlib, sys
found = sorted(p.name.removesuffix(".dist-info").replace("-", " ") for p in pathlib.Path(sys.argv[1]).glob("*.dist-info"))
print(f"{sys.argv[1]}/: " + ", ".join(found))
PY
