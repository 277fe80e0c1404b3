"""cluster_actors: OTP-style cluster coordination for Ray.

Leader election, Raft-replicated linearizable state, phi accrual failure
detection, membership, CRDT data sync and versioned configuration, run as
supervised Ray actors, with plug-in strategies and chaos built in.

The public API is what this module exports (``__all__``); everything in
private modules may change.
"""

from __future__ import annotations

from .core.kv import Command, KeyValue, KVResult, KVStateMachine
from .core.mvcc import RangeResult, prefix_end
from .core.raft import ProposalDropped, RaftNode, RaftOptions
from .core.raft_types import ConfChange, ConfChangeType, ConfState, Entry, Ready, Role
from .errors import (
    ClusterError,
    Compacted,
    CoordinationTimeout,
    NoQuorum,
    NotFound,
    NotLeader,
    SyncFailed,
    UnknownStrategy,
    ValidationFailed,
)

__version__ = "0.1.0"

# The Ray-backed names load on first use, so that the pure cores, the
# simulator and the strategies import without starting Ray's machinery.
_LAZY = {
    "Cluster": "cluster_actors.cluster",
    "ClusterStatus": "cluster_actors.cluster",
    "NodeStatus": "cluster_actors.cluster",
    "ClusterOptions": "cluster_actors.options",
    "Coordinator": "cluster_actors.coordinator_client",
    "ClusterStatusModel": "cluster_actors.coordinator_client",
    "LifecycleTransition": "cluster_actors.coordinator_client",
    "Quorum": "cluster_actors.coordinator_client",
    "ConfigClient": "cluster_actors.config_client",
    "Subscription": "cluster_actors.client",
    "ChaosMonkey": "cluster_actors.chaos",
    "DataStore": "cluster_actors.data_client",
    "KVClient": "cluster_actors.client",
    "Watch": "cluster_actors.kv_watch",
    "WatchEvent": "cluster_actors.kv_watch",
    "LeaderElection": "cluster_actors.election",
    "Lock": "cluster_actors.lock",
    "Leadership": "cluster_actors.election",
    "StaleToken": "cluster_actors.election",
    "Lease": "cluster_actors.lease",
    "LeaderActor": "cluster_actors.leader_actor",
    "leader_only": "cluster_actors.leader_actor",
    "Barrier": "cluster_actors.recipes.barrier",
    "Queue": "cluster_actors.recipes.queue",
    "RWLock": "cluster_actors.recipes.rwlock",
    "Registration": "cluster_actors.recipes.registry",
    "Semaphore": "cluster_actors.recipes.semaphore",
    "ServiceInstance": "cluster_actors.recipes.registry",
    "ServiceWatch": "cluster_actors.recipes.registry",
    "Singleton": "cluster_actors.recipes.singleton",
    "SingletonProxy": "cluster_actors.recipes.singleton",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

__all__ = [
    "Barrier",
    "ChaosMonkey",
    "Cluster",
    "ClusterError",
    "ClusterOptions",
    "ClusterStatus",
    "ClusterStatusModel",
    "Command",
    "Compacted",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "ConfigClient",
    "CoordinationTimeout",
    "Coordinator",
    "DataStore",
    "Entry",
    "KVClient",
    "KVResult",
    "KVStateMachine",
    "KeyValue",
    "LeaderActor",
    "LeaderElection",
    "Leadership",
    "Lease",
    "LifecycleTransition",
    "Lock",
    "NoQuorum",
    "NodeStatus",
    "NotFound",
    "NotLeader",
    "ProposalDropped",
    "Queue",
    "Quorum",
    "RWLock",
    "RaftNode",
    "RaftOptions",
    "RangeResult",
    "Ready",
    "Registration",
    "Role",
    "Semaphore",
    "ServiceInstance",
    "ServiceWatch",
    "Singleton",
    "SingletonProxy",
    "StaleToken",
    "Subscription",
    "SyncFailed",
    "UnknownStrategy",
    "ValidationFailed",
    "Watch",
    "WatchEvent",
    "__version__",
    "leader_only",
    "prefix_end",
]
