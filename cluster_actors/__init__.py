"""cluster_actors: OTP-style cluster coordination for Ray.

Leader election, Raft-replicated linearizable state, phi accrual failure
detection, membership, CRDT data sync and versioned configuration, run as
supervised Ray actors, with plug-in strategies and chaos built in.

The public API is what this module exports (``__all__``); everything in
private modules may change.
"""

from __future__ import annotations

from .core.kv import Command, KeyValue, KVResult, KVStateMachine
from .core.raft import ProposalDropped, RaftNode, RaftOptions
from .core.raft_types import ConfChange, ConfChangeType, ConfState, Entry, Ready, Role
from .errors import (
    ClusterError,
    CoordinationTimeout,
    NoQuorum,
    NotLeader,
    SyncFailed,
    UnknownStrategy,
    ValidationFailed,
)

__version__ = "0.1.0"

__all__ = [
    "ClusterError",
    "Command",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "CoordinationTimeout",
    "Entry",
    "KVResult",
    "KVStateMachine",
    "KeyValue",
    "NoQuorum",
    "NotLeader",
    "ProposalDropped",
    "RaftNode",
    "RaftOptions",
    "Ready",
    "Role",
    "SyncFailed",
    "UnknownStrategy",
    "ValidationFailed",
    "__version__",
]
