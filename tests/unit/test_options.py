"""Cluster options: checked before anything starts, with errors that say what to
do, and version 1 of the replicated configuration derived from them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from cluster_actors.cluster import initial_config_of
from cluster_actors.errors import UnknownStrategy, ValidationFailed
from cluster_actors.options import ClusterOptions

SEED_CONFIG = {"quorum": 2, "heartbeat_interval": 5000, "election_timeout": 15000,
               "sync_strategy": "anti_entropy", "partition_strategy": "majority_side",
               "failover_strategy": "automatic", "metadata": {}}


def test_the_seeds_config_keys_are_options_except_members_and_version() -> None:
    options = ClusterOptions.parse(SEED_CONFIG)
    assert (options.heartbeat_interval, options.election_timeout) == (5000, 15000)
    with pytest.raises(ValidationFailed) as error:
        ClusterOptions.parse({**SEED_CONFIG, "version": 1, "members": ["n1", "n2", "n3"]})
    messages = dict(error.value.errors)
    assert "nodes=[...]" in messages["members"] and "log" in messages["version"]


def test_an_unknown_option_lists_the_valid_ones_and_bad_timings_are_refused() -> None:
    with pytest.raises(ValidationFailed) as error:
        ClusterOptions.parse({"heartbeat_intervall": 100})
    [(path, message)] = error.value.errors
    assert path == "heartbeat_intervall" and "heartbeat_interval" in message
    with pytest.raises(ValidationFailed, match="3x raft_heartbeat_ms"):
        ClusterOptions.parse({"election_timeout": 100, "raft_heartbeat_ms": 40})
    with pytest.raises(UnknownStrategy, match="majority_side"):
        ClusterOptions.parse({"partition_strategy": "keep_everything"})


def test_version_one_of_the_config_holds_the_options_values() -> None:
    options = ClusterOptions.parse({**SEED_CONFIG, "metadata": {"team": "infra"}})
    config = initial_config_of(options, ["a", "b", "c"])
    assert config == {"members": ["a", "b", "c"], "quorum": 2, "heartbeat_interval": 5000,
                      "election_timeout": 15000, "sync_strategy": "anti_entropy",
                      "partition_strategy": "majority_side", "failover_strategy": "automatic",
                      "metadata": {"team": "infra"}}


@pytest.mark.parametrize(("quorum", "fragment"), [(5, "larger than the 3 members"),
                                                  (1, "split brain")])
def test_a_quorum_the_nodes_cannot_satisfy_safely_is_refused(quorum: int, fragment: str) -> None:
    with pytest.raises(ValidationFailed, match=fragment) as error:
        initial_config_of(ClusterOptions.parse({"quorum": quorum}), ["n1", "n2", "n3"])
    assert [path for path, _ in error.value.errors] == ["quorum"]


def test_the_default_data_root_is_a_per_user_directory_that_survives_reboots(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cluster_actors.options import DATA_DIR_ENV

    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "explicit"))
    assert ClusterOptions().data_root() == str(tmp_path / "explicit")
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert ClusterOptions().data_root() == str(tmp_path / "xdg" / "cluster_actors")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = ClusterOptions().data_root()
    assert root == str(tmp_path / "home" / ".local" / "share" / "cluster_actors")
    assert not root.startswith(tempfile.gettempdir() + os.sep + "cluster_actors")
    given = ClusterOptions(data_dir=str(tmp_path / "mine"))
    assert given.data_root() == str(tmp_path / "mine")
    assert given.resolved_data_dir("demo") == str(tmp_path / "mine" / "demo")


NUMERIC_OPTIONS = [name for name, field in ClusterOptions.model_fields.items()
                   if field.annotation in (int, float, int | None)]


@pytest.mark.parametrize("name", NUMERIC_OPTIONS)
def test_every_numeric_option_has_an_upper_bound(name: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        ClusterOptions.parse({name: 10**30})
    assert name in [path for path, _ in error.value.errors]


@pytest.mark.parametrize(("options", "path"), [
    ({"election_timeout": 10**30}, "election_timeout"),
    ({"phi_threshold": float("nan")}, "phi_threshold"),
    ({"phi_threshold": float("inf")}, "phi_threshold"),
    ({"supervisor_period": float("inf")}, "supervisor_period"),
    ({"max_value_bytes": 10}, "max_value_bytes"),
    ({"max_value_bytes": 1 << 30}, "max_value_bytes"),
    ({"metadata": {"sync_merkle_depth": 99}}, "metadata"),
    ({"metadata": {"sync_merkle_depth": 0}}, "metadata"),
])
def test_options_out_of_bounds_are_refused_with_their_path(options: dict, path: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        ClusterOptions.parse(options)
    assert [p for p, _ in error.value.errors] == [path]


def test_deep_or_large_metadata_is_a_validation_error_not_a_recursion_error() -> None:
    deep: dict = {}
    for _ in range(100_000):
        deep = {"a": deep}
    with pytest.raises(ValidationFailed, match="levels deep"):
        ClusterOptions.parse({"metadata": deep})
    with pytest.raises(ValidationFailed, match="bytes"):
        ClusterOptions.parse({"metadata": {"blob": "x" * 100_000}})
    assert ClusterOptions.parse({"metadata": {"sync_merkle_depth": 12}}).metadata == {
        "sync_merkle_depth": 12}


def test_max_value_bytes_defaults_to_etcds_one_and_a_half_mib() -> None:
    assert ClusterOptions().max_value_bytes == 1_572_864 == int(1.5 * 2**20)
    assert ClusterOptions.parse({"max_value_bytes": 4 << 20}).max_value_bytes == 4 << 20
