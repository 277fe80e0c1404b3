"""Guards the public API: what `cluster_actors` exports, and the contract's
import paths from DESIGN.md."""

from __future__ import annotations

import importlib

import cluster_actors

EXPECTED_EXPORTS = {
    "ChaosMonkey",
    "Cluster", "ClusterOptions", "ClusterStatus", "Coordinator", "DataStore",
    "KVClient", "LeaderElection", "Lock", "NodeStatus", "LeaderActor", "Leadership", "Lease",
    "StaleToken", "leader_only",
    "ClusterError", "Command", "ConfChange", "ConfChangeType", "ConfState",
    "CoordinationTimeout", "Entry", "KVResult", "KVStateMachine", "KeyValue", "NoQuorum",
    "NotLeader", "ProposalDropped", "RaftNode", "RaftOptions", "Ready", "Role", "SyncFailed",
    "UnknownStrategy", "ValidationFailed", "__version__",
    "NotFound", "ConfigClient", "Subscription", "Quorum", "ClusterStatusModel",
    "LifecycleTransition",
    "Barrier", "Queue", "RWLock", "Registration", "Semaphore", "ServiceInstance",
    "ServiceWatch", "Singleton", "SingletonProxy",
    "Compacted", "RangeResult", "Watch", "WatchEvent", "prefix_end",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(cluster_actors.__all__) == EXPECTED_EXPORTS
    assert len(cluster_actors.__all__) == len(set(cluster_actors.__all__))
    for name in cluster_actors.__all__:
        assert hasattr(cluster_actors, name), name


def test_contract_import_paths() -> None:
    paths = {
        "cluster_actors": ["Cluster", "ClusterOptions"],
        "strategies": ["available", "load"],
        "cluster_actors.errors": ["ClusterError", "NotLeader", "NoQuorum",
                                  "CoordinationTimeout", "ValidationFailed", "SyncFailed",
                                  "NotFound"],
        "cluster_actors.core.phi": ["PhiAccrualDetector"],
        "cluster_actors.core.vclock": ["VectorClock"],
        "cluster_actors.core.merkle": ["MerkleTree", "verify_merkle_proof"],
        "cluster_actors.core.crdt": ["GCounter", "PNCounter", "ORSet", "LWWRegister",
                                     "LWWElementSet", "ORMap"],
        "cluster_actors.testing.linearizability": ["check_operations", "Operation", "Model"],
    }
    for module_name, names in paths.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert hasattr(module, name), f"{module_name}.{name}"


def test_error_codes_match_the_seed() -> None:
    from cluster_actors import errors

    codes = {errors.NotLeader: "not_leader", errors.NoQuorum: "no_quorum",
             errors.CoordinationTimeout: "timeout", errors.ValidationFailed: "validation_failed",
             errors.SyncFailed: "sync_failed", errors.NotFound: "not_found"}
    for cls, code in codes.items():
        assert cls.code == code
        assert issubclass(cls, errors.ClusterError)
    error = errors.NotLeader("n2", "n1")
    assert error.leader_id == "n1" and "n1" in str(error)


def test_every_not_found_error_is_one_class_with_a_plain_message() -> None:
    from cluster_actors.actors.heartbeat import NotFound as HeartbeatNotFound
    from cluster_actors.actors.monitor import NotFound as MonitorNotFound
    from cluster_actors.actors.sync import KeyNotFound
    from cluster_actors.core.config import ConfigNotFound
    from cluster_actors.core.membership import MemberNotFound
    from cluster_actors.errors import NotFound, ValidationFailed

    assert HeartbeatNotFound is NotFound and MonitorNotFound is NotFound
    for cls in (KeyNotFound, ConfigNotFound, MemberNotFound):
        assert issubclass(cls, NotFound) and cls.code == "not_found"
    assert issubclass(MemberNotFound, ValidationFailed)  # what it was first
    assert str(ConfigNotFound("no config key 'x'")) == "no config key 'x'"
    assert isinstance(MemberNotFound("n9"), KeyError)


def test_errors_survive_pickling() -> None:
    import pickle

    from cluster_actors.errors import NotLeader, ValidationFailed

    error = pickle.loads(pickle.dumps(NotLeader("n2", "n1")))
    assert isinstance(error, NotLeader) and error.leader_id == "n1"
    failed = pickle.loads(pickle.dumps(ValidationFailed([("quorum", "too large")])))
    assert failed.errors == [("quorum", "too large")] and "quorum" in str(failed)


def test_cores_are_pure() -> None:
    """Protocol cores must not import IO, clocks or Ray."""
    import pathlib
    import re

    core = pathlib.Path(cluster_actors.__file__).parent / "core"
    forbidden = re.compile(r"^\s*(import|from)\s+(ray|asyncio|socket|time|sqlite3|threading)\b",
                           re.MULTILINE)
    offenders = [p.name for p in core.glob("*.py") if forbidden.search(p.read_text())]
    assert not offenders, f"cores importing IO or clocks: {offenders}"
