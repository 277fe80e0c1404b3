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
