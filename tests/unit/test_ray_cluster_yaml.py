"""``ray_cluster.yaml`` is a config the Ray cluster launcher accepts.

Validation uses Ray's own code, not a copy of its schema: the same
``_bootstrap_config`` that ``ray up`` runs (fill in the provider's defaults,
prepare the local provider's node type, check against
``ray/autoscaler/ray-schema.json``), offline, without SSH or a config cache.
The start commands are checked against the project's own CLI parser, so the
file cannot drift from the ``cluster-actors`` command it runs.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import shlex
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import yaml

from cluster_actors.cli.app import _up, build_parser
from tests.conftest import PROJECT_ROOT

autoscaler_util = pytest.importorskip("ray.autoscaler._private.util")
autoscaler_commands = pytest.importorskip("ray.autoscaler._private.commands")

CONFIG_PATH = PROJECT_ROOT / "ray_cluster.yaml"
DOCUMENTATION_RANGE = ipaddress.ip_network("192.0.2.0/24")  # RFC 5737 TEST-NET-1


@pytest.fixture()
def config() -> dict[str, Any]:
    with CONFIG_PATH.open() as file:
        loaded = yaml.safe_load(file)
    assert isinstance(loaded, dict)
    return loaded


def ray_up_resolve(config: dict[str, Any]) -> dict[str, Any]:
    """What ``ray up`` does to the file before it touches any machine."""
    return autoscaler_commands._bootstrap_config(copy.deepcopy(config), no_config_cache=True)


def schema_check(config: dict[str, Any]) -> None:
    """Ray's schema check on the file merged with the provider's defaults."""
    autoscaler_util.validate_config(autoscaler_util.fillout_defaults(copy.deepcopy(config)))


def _port(command: str, flag: str) -> int:
    match = re.search(rf"{flag}=(?:\S*:)?(\d+)(?:\s|$)", command)
    assert match, f"no {flag} in {command!r}"
    return int(match.group(1))


# ------------------------------------------------------------ the file is valid
def test_ray_up_accepts_the_file(config: dict[str, Any]) -> None:
    resolved = ray_up_resolve(config)
    workers = len(config["provider"]["worker_ips"])
    (node_type,) = resolved["available_node_types"].values()
    assert resolved["head_node_type"] in resolved["available_node_types"]
    assert node_type["min_workers"] == node_type["max_workers"] == workers
    # setup_commands run on the head and on every worker
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert resolved[key][:len(config["setup_commands"])] == config["setup_commands"]


def test_schema_accepts_the_file_with_defaults(config: dict[str, Any]) -> None:
    schema_check(config)


def test_local_provider_placeholders_are_documentation_addresses(
        config: dict[str, Any]) -> None:
    provider = config["provider"]
    assert provider["type"] == "local"
    hosts = [provider["head_ip"], *provider["worker_ips"]]
    assert len(set(hosts)) == len(hosts)
    assert all(ipaddress.ip_address(host) in DOCUMENTATION_RANGE for host in hosts)
    assert config["max_workers"] == len(provider["worker_ips"])
    assert config["auth"]["ssh_user"]


# ------------------------------------------------------- broken copies rejected
def _unknown_top_level_key(c: dict[str, Any]) -> None:
    c["max_wrkers"] = 2


def _max_workers_not_an_integer(c: dict[str, Any]) -> None:
    c["max_workers"] = "two"


def _unknown_auth_key(c: dict[str, Any]) -> None:
    c["auth"]["ssh_usr"] = "ubuntu"


def _commands_not_a_list(c: dict[str, Any]) -> None:
    c["head_start_ray_commands"] = "ray start --head"


@pytest.mark.parametrize(("break_it", "complaint"), [
    (_unknown_top_level_key, "'max_wrkers' was unexpected"),
    (_max_workers_not_an_integer, "'two' is not of type 'integer'"),
    (_unknown_auth_key, "'ssh_usr' was unexpected"),
    (_commands_not_a_list, "is not of type 'array'"),
])
def test_schema_rejects_a_broken_copy(config: dict[str, Any],
                                      break_it: Callable[[dict[str, Any]], None],
                                      complaint: str) -> None:
    broken = copy.deepcopy(config)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError, match=re.escape(complaint)):
        schema_check(broken)


def test_schema_requires_a_provider(config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    del broken["provider"]
    with pytest.raises(jsonschema.ValidationError, match="'provider' is a required property"):
        autoscaler_util.validate_config(broken)


def test_ray_up_rejects_an_unknown_key(config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    _unknown_top_level_key(broken)
    with pytest.raises(jsonschema.ValidationError, match="'max_wrkers' was unexpected"):
        ray_up_resolve(broken)


def test_ray_up_rejects_a_local_provider_without_worker_ips(config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    del broken["provider"]["worker_ips"]
    with pytest.raises(Exception, match="worker_ips"):
        ray_up_resolve(broken)


# ---------------------------------------------------------- the start commands
def test_head_starts_ray_then_the_layer(config: dict[str, Any]) -> None:
    commands = config["head_start_ray_commands"]
    assert commands[0] == "ray stop"
    ray_start = next(i for i, c in enumerate(commands) if c.startswith("ray start --head"))
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in commands[ray_start]
    layer = [i for i, c in enumerate(commands) if c.startswith("cluster-actors up")]
    assert layer == [len(commands) - 1], "cluster-actors up must run once, after Ray starts"
    assert ray_start < layer[0]
    # the command line is one the real CLI parses into `up`
    args = build_parser().parse_args(shlex.split(commands[layer[0]])[1:])
    assert args.run is _up
    assert args.address == "auto"
    assert args.name == "cluster"
    assert args.nodes >= 3 and args.nodes % 2 == 1, "an odd number of nodes, at least 3"


def test_workers_join_the_head_port(config: dict[str, Any]) -> None:
    head_port = _port(next(c for c in config["head_start_ray_commands"]
                           if c.startswith("ray start --head")), "--port")
    worker_commands = config["worker_start_ray_commands"]
    assert worker_commands[0] == "ray stop"
    join = next(c for c in worker_commands if c.startswith("ray start"))
    assert "$RAY_HEAD_IP" in join
    assert _port(join, "--address") == head_port


def test_setup_installs_the_package(config: dict[str, Any]) -> None:
    installs = [shlex.split(c) for c in config["setup_commands"]]
    assert any(words[:2] == ["pip", "install"] and "cluster-actors" in words
               for words in installs)
