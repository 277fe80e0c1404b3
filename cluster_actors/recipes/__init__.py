"""Coordination recipes on the cluster's leases and linearizable KV
(ZooKeeper/Curator, etcd concurrency, Consul, Akka): a read-write lock, a
semaphore, barriers, a FIFO queue, service registration and a cluster
singleton. Each is reached through a :class:`~cluster_actors.cluster.Cluster`
method (``cluster.rwlock(name)``, ...); the classes load on first use.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "LeaseLine": "line", "LeaderInfo": "line", "Cancelled": "line",
    "LineHolder": "holder",
    "RWLock": "rwlock", "ReadLock": "rwlock", "WriteLock": "rwlock",
    "Semaphore": "semaphore",
    "Barrier": "barrier",
    "Queue": "queue",
    "Registration": "registry", "ServiceInstance": "registry", "ServiceWatch": "registry",
    "ServiceChange": "registry",
    "Singleton": "singleton", "SingletonProxy": "singleton",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_LAZY)
