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
    "Coordinator": "cluster_actors.client.coordinator",
    "ClusterStatusModel": "cluster_actors.client.coordinator",
    "LifecycleTransition": "cluster_actors.client.coordinator",
    "Quorum": "cluster_actors.client.coordinator",
    "ConfigClient": "cluster_actors.client.config",
    "Subscription": "cluster_actors.client.components",
    "ChaosMonkey": "cluster_actors.chaos.monkey",
    "DataStore": "cluster_actors.client.data",
    "KVClient": "cluster_actors.client.kv",
    "Watch": "cluster_actors.client.watch",
    "WatchEvent": "cluster_actors.client.watch",
    "LeaderElection": "cluster_actors.recipes.election",
    "Lock": "cluster_actors.recipes.lock",
    "Leadership": "cluster_actors.recipes.election",
    "StaleToken": "cluster_actors.recipes.election",
    "Lease": "cluster_actors.recipes.lease",
    "LeaderActor": "cluster_actors.recipes.leader_actor",
    "leader_only": "cluster_actors.recipes.leader_actor",
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


# Old import paths (layout version 2): the modules that moved into
# subpackages are still importable under their old names, with a
# DeprecationWarning; the module object is the new one (one class object per
# actor, so Ray and pickle see a single definition).
_MOVED_MODULES = {
    "cluster_actors.actors.strategy_driver": "strategies.driver",
    "cluster_actors.chaos_cli": "cluster_actors.cli.chaos",
    "cluster_actors.checker": "cluster_actors.chaos.checker",
    "cluster_actors.config_client": "cluster_actors.client.config",
    "cluster_actors.coordinator_client": "cluster_actors.client.coordinator",
    "cluster_actors.data_client": "cluster_actors.client.data",
    "cluster_actors.demo": "cluster_actors.cli.demo",
    "cluster_actors.election": "cluster_actors.recipes.election",
    "cluster_actors.kv_watch": "cluster_actors.client.watch",
    "cluster_actors.leader_actor": "cluster_actors.recipes.leader_actor",
    "cluster_actors.leader_watch": "cluster_actors.client.leader_watch",
    "cluster_actors.lease": "cluster_actors.recipes.lease",
    "cluster_actors.lock": "cluster_actors.recipes.lock",
    "cluster_actors.sim_demo": "cluster_actors.cli.sim_demo",
    "cluster_actors.testing.sim_cli": "cluster_actors.cli.sim",
    "cluster_actors.workload": "cluster_actors.chaos.workload",
}


class _MovedModuleLoader:
    """Loads an old module name as the module it moved to."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: object) -> object:
        import importlib
        import warnings

        old = getattr(spec, "name", "")
        # stacklevel 2: the importing line (warnings skips importlib's own frames)
        warnings.warn(f"{old} moved to {self.new}; import it from there",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: object) -> None:
        module.__spec__ = self._spec  # type: ignore[attr-defined]

    def get_code(self, name: str) -> object:
        """`python -m <old name>` runs the new module as `__main__`."""
        return compile(f"import runpy; runpy.run_module({self.new!r}, run_name='__main__', "
                       "alter_sys=True)", f"<{name} moved to {self.new}>", "exec")


class _MovedModuleFinder:
    """A `sys.meta_path` finder for the old module names. First in line, so
    an old name always means the new module, even where an editable install
    or a stale file could still provide the old one."""

    @staticmethod
    def find_spec(fullname: str, path: object = None, target: object = None) -> object:
        new = _MOVED_MODULES.get(fullname)
        if new is None:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new))  # type: ignore[arg-type]


def _install_moved_module_finder() -> None:
    import sys

    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())


_install_moved_module_finder()


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
