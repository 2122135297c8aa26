"""Checks cluster.yaml (the Ray autoscaler config for AWS) with Ray's own code.

No cloud calls. `ray up` runs `ray.autoscaler._private.commands._bootstrap_config`,
which does three things:
  1. `prepare_config`: merges ray/autoscaler/aws/defaults.yaml and fills in
     per-node-type min/max workers. Local only.
  2. the provider's `fillout_available_node_types_resources` and
     `bootstrap_config`: boto3 calls to EC2/IAM (instance types, key pairs,
     subnets, security groups, instance profile). Step 2 contacts AWS, so these
     tests leave it out.
  3. `validate_config`: `jsonschema.validate` against the ray-schema.json that
     ships inside the installed ray package, plus Ray's own checks
     (head_node_type, sum of min_workers, ...). Local only.
These tests run steps 1 and 3. They also check facts this project relies on. A
socket guard fails any test that tries to open a TCP/UDP connection.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import socket
from pathlib import Path

import click
import jsonschema
import pytest
import yaml

import ray
import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO_ROOT / "cluster.yaml"
SCHEMA_PATH = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
BUCKET_PLACEHOLDER = "s3://YOUR-BUCKET/resnet-hpo"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail on any attempt to reach the network, AWS included."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def _guard(self, address, _real):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"test tried to open a network connection to {address!r}")
        return _real(self, address)

    monkeypatch.setattr(socket.socket, "connect", lambda s, a: _guard(s, a, real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda s, a: _guard(s, a, real_connect_ex))
    # boto3 never gets imported here, but if it were, stop it asking the EC2
    # metadata endpoint for credentials.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def raw_text() -> str:
    assert CLUSTER_YAML.is_file(), f"missing {CLUSTER_YAML}"
    return CLUSTER_YAML.read_text()


@pytest.fixture(scope="module")
def raw(raw_text) -> dict:
    # `ray up` itself loads the file with yaml.safe_load.
    cfg = yaml.safe_load(raw_text)
    assert isinstance(cfg, dict)
    return cfg


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _prepare(cfg: dict) -> dict:
    return prepare_config(copy.deepcopy(cfg))


def _worker_types(cfg: dict) -> dict:
    return {
        name: nt
        for name, nt in cfg["available_node_types"].items()
        if name != cfg["head_node_type"]
    }


# --------------------------------------------------------------------------
# Ray's schema and loader
# --------------------------------------------------------------------------


def test_schema_ships_with_installed_ray(schema):
    assert SCHEMA_PATH.is_file(), f"ray {ray.__version__} has no {SCHEMA_PATH}"
    # Unknown top-level keys are errors, so the broken-copy test below can fail.
    assert schema.get("additionalProperties") is False
    assert {"cluster_name", "provider"} <= set(schema["required"])


def test_raw_config_matches_schema(raw, schema):
    jsonschema.validate(raw, schema)


def test_prepared_config_passes_ray_validate_config(raw):
    prepared = _prepare(raw)
    validate_config(prepared)  # raises on any problem
    # prepare_config merged in the AWS defaults ...
    assert prepared["provider"]["type"] == "aws"
    assert "cluster_synced_files" in prepared
    # ... kept our node types (no legacy conversion) and filled their limits.
    assert set(prepared["available_node_types"]) == set(raw["available_node_types"])
    for nt in prepared["available_node_types"].values():
        assert "min_workers" in nt and "max_workers" in nt
    assert prepared["available_node_types"][prepared["head_node_type"]]["max_workers"] == 0


def test_validate_config_needs_prepared_config(raw):
    # Ray's validate_config wants the fields that prepare_config fills in, so the
    # test above must run prepare_config first, as `ray up` does.
    with pytest.raises(RuntimeError, match="cluster_synced_files"):
        validate_config(copy.deepcopy(raw))


def _unknown_top_level_key(cfg):
    cfg["max_wrokers"] = 4


def _max_workers_not_int(cfg):
    cfg["max_workers"] = "many"


def _node_type_without_resources(cfg):
    del cfg["available_node_types"][cfg["head_node_type"]]["resources"]


def _head_type_missing(cfg):
    cfg["head_node_type"] = "no_such_node_type"


def _min_workers_exceed_global_max(cfg):
    worker = next(iter(_worker_types(cfg).values()))
    worker["min_workers"] = worker["max_workers"] = cfg["max_workers"] + 1


def _negative_idle_timeout(cfg):
    cfg["idle_timeout_minutes"] = -1


@pytest.mark.parametrize(
    "mutate, error",
    [
        (_unknown_top_level_key, jsonschema.ValidationError),
        (_max_workers_not_int, jsonschema.ValidationError),
        (_node_type_without_resources, jsonschema.ValidationError),
        (_negative_idle_timeout, jsonschema.ValidationError),
        (_head_type_missing, ValueError),
        (_min_workers_exceed_global_max, ValueError),
    ],
    ids=lambda p: getattr(p, "__name__", None),
)
def test_broken_copies_fail_validation(raw, mutate, error):
    broken = copy.deepcopy(raw)
    mutate(broken)
    with pytest.raises(error):
        validate_config(_prepare(broken))


# --------------------------------------------------------------------------
# Project-specific facts
# --------------------------------------------------------------------------


def test_head_node_type_is_declared_and_cpu_only(raw):
    head = raw["head_node_type"]
    assert head in raw["available_node_types"]
    # The head runs the driver; trials need a GPU, so none may be scheduled there.
    assert raw["available_node_types"][head]["resources"].get("GPU", 0) == 0


def test_a_worker_type_advertises_gpus(raw):
    prepared = _prepare(raw)
    gpu_workers = {
        name: nt
        for name, nt in _worker_types(prepared).items()
        if nt["resources"].get("GPU", 0) >= 1
    }
    assert gpu_workers, "no worker node type advertises a GPU"
    for name, nt in gpu_workers.items():
        assert 0 <= nt["min_workers"] <= nt["max_workers"], name
        assert nt["max_workers"] <= prepared["max_workers"], name
        assert nt["max_workers"] >= 1, f"{name} can never be launched"
        assert nt["resources"].get("CPU", 0) >= 1, f"{name} leaves trials no CPU"
    # search.run counts the cluster's GPUs when it starts (resolve_gpus): with zero
    # it runs trials on CPUs or refuses. Autoscaling from zero GPU nodes would not work.
    assert any(nt["min_workers"] >= 1 for nt in gpu_workers.values()), (
        "no GPU node is up when the search starts; set min_workers >= 1"
    )


def test_setup_commands_install_this_project_from_the_mounted_repo(raw):
    installs = [
        m.group(1)
        for cmd in raw["setup_commands"]
        for m in [re.search(r"\bpip\s+install\b.*?\s-e\s+(\S+)", cmd)]
        if m
    ]
    assert installs, "setup_commands never `pip install -e` the project"
    mounts = raw["file_mounts"]
    assert any(path in mounts for path in installs), (installs, mounts)
    for path in installs:
        if path in mounts:
            local = (CLUSTER_YAML.parent / mounts[path]).resolve()
            pyproject = local / "pyproject.toml"
            assert pyproject.is_file(), f"{path} is mounted from {local}, not the repo"
            assert 'name = "resnet-hpo"' in pyproject.read_text()
    # Every node, workers included, gets the project: setup_commands (not
    # head_setup_commands) and a file mount (not a head-only rsync).
    prepared = _prepare(raw)
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert any(" -e " in c and installs[0] in c for c in prepared[key]), key


def test_cluster_ray_version_matches_installed_ray(raw):
    pins = [
        m.group(1)
        for cmd in raw["setup_commands"]
        for m in [re.search(r"\bray\[[^\]]*\]==([0-9][\w.]*)", cmd)]
        if m
    ]
    assert pins, "setup_commands do not pin the Ray version"
    assert set(pins) == {ray.__version__}, (
        f"cluster.yaml pins ray {pins}, installed is {ray.__version__}; "
        "the laptop and the cluster need the same Ray"
    )


def test_start_commands(raw):
    head = " ".join(raw["head_start_ray_commands"])
    worker = " ".join(raw["worker_start_ray_commands"])
    assert "ray start --head" in head and "--port=6379" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--dashboard-host=0.0.0.0" in head
    assert "--address=$RAY_HEAD_IP:6379" in worker


def test_storage_bucket_placeholder_is_referenced(raw, raw_text):
    assert raw["metadata"]["storage_path"] == BUCKET_PLACEHOLDER
    # The usage comment passes the same location to the search.
    assert f"--storage-path {BUCKET_PLACEHOLDER}" in raw_text
    assert "ray job submit --address http://127.0.0.1:8265" in raw_text
    assert "ray down cluster.yaml" in raw_text


def _commented_command(raw_text: str, starts: str) -> str:
    """The shell command in the header comments that starts with `starts`,
    with its backslash-continued lines joined."""
    lines = [l.lstrip("#").strip() for l in raw_text.splitlines() if l.startswith("#")]
    i = next(i for i, l in enumerate(lines) if l.startswith(starts))
    parts = []
    for line in lines[i:]:
        parts.append(line.rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    return " ".join(parts)


def test_documented_job_submit_matches_search_cli(raw, raw_text):
    """The job command in the comments parses with search.run's own parser, its
    --out is where `ray rsync-down` fetches from, and a trial fits on a GPU node."""
    cmd = _commented_command(raw_text, "ray job submit")
    _, entrypoint = cmd.split(" -- ", 1)
    argv = shlex.split(entrypoint)
    assert argv[:3] == ["python", "-m", "search.run"], argv

    from search.cli import get_args_parser  # imports torch: a few seconds

    args = get_args_parser().parse_args(argv[3:])
    assert args.space == "finetune"
    assert args.address == "auto"
    assert args.storage_path == raw["metadata"]["storage_path"]
    home = f"/home/{raw['auth']['ssh_user']}"
    assert args.out.startswith(home + "/"), "a ray job's relative --out lands in a temp dir"
    fetch = _commented_command(raw_text, "ray rsync-down cluster.yaml")
    remote = shlex.split(fetch)[3]
    assert remote.replace("~", home, 1) == args.out, (remote, args.out)
    assert any(remote.startswith(mount + "/") for mount in raw["file_mounts"]), remote

    gpu = [nt["resources"] for nt in _worker_types(raw).values() if nt["resources"].get("GPU")]
    assert args.gpus_per_trial is not None and args.gpus_per_trial > 0
    assert any(args.cpus_per_trial <= r.get("CPU", 0) and args.gpus_per_trial <= r["GPU"] for r in gpu), (
        f"a trial needs {args.cpus_per_trial} CPU + {args.gpus_per_trial} GPU; the GPU nodes offer {gpu}"
    )


def test_fields_to_change_are_marked(raw_text):
    lines = raw_text.splitlines()
    active = [l for l in lines if not l.lstrip().startswith("#")]
    # Every active line that sets one of these needs a "CHANGE ME" comment.
    for key in ("region:", "availability_zone:", "InstanceType:", "ImageId:",
                "Arn:", "storage_path:"):
        hits = [l for l in active if l.lstrip().startswith(key)]
        assert hits, f"no active {key} line"
        for line in hits:
            assert "CHANGE ME" in line, line
    # The optional ssh key is commented out, but still marked.
    for key in ("ssh_private_key:", "KeyName:"):
        assert any(key in l and "CHANGE ME" in l for l in lines), key


# --------------------------------------------------------------------------
# The on-prem variant described in the comments
# --------------------------------------------------------------------------


def _on_prem(raw: dict) -> dict:
    cfg = copy.deepcopy(raw)
    for key in ("available_node_types", "head_node_type", "docker"):
        cfg.pop(key, None)
    cfg["provider"] = {
        "type": "local",
        "head_ip": "10.0.0.10",
        "worker_ips": ["10.0.0.11", "10.0.0.12"],
    }
    cfg["auth"] = {"ssh_user": "hpo", "ssh_private_key": "~/.ssh/id_ed25519"}
    return cfg


def test_on_prem_variant_validates(raw, raw_text):
    assert "type: local" in raw_text and "worker_ips" in raw_text
    prepared = _prepare(_on_prem(raw))
    validate_config(prepared)
    (node_type,) = prepared["available_node_types"].values()
    # max_workers is capped at the number of worker IPs.
    assert node_type["max_workers"] == 2
    assert prepared["setup_commands"] == raw["setup_commands"]


def test_on_prem_rejects_available_node_types(raw):
    # This is why the comments say to delete available_node_types.
    cfg = _on_prem(raw)
    cfg["available_node_types"] = raw["available_node_types"]
    with pytest.raises(click.ClickException):
        prepare_config(cfg)
