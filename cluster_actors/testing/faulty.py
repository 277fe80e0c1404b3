"""Deliberately broken components, to prove that the chaos checks catch the
bugs they are meant to catch.

* :data:`ForgetfulConsensusActor` acknowledges without persisting: after
  its first start nothing it appends, votes or commits reaches its disk, so
  a crash of every node (``ChaosMonkey.kill_all``) forgets acknowledged
  writes and reuses terms.
* :data:`DoubleApplyConsensusActor` applies every command as if it were new:
  its state machine forgets the client sessions, so a command retried after
  a failover takes effect twice.
* :data:`FullDiskConsensusActor` is not broken: it is the usual consensus
  actor over a storage double whose persists can be made to fail like a full
  disk (``fail_persists``, a test-only call), to prove the fail-stop path:
  the actor crashes, its supervisor restarts it from disk, nothing
  acknowledged is lost.

:func:`component_overrides` swaps them in for the clusters started inside
it (the specs are built when ``Cluster.start`` runs, so the override sticks
to that cluster's restarts too)::

    with component_overrides(consensus=FORGETFUL, only=("consensus",)):
        cluster = Cluster.start("buggy", nodes=3)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from ..actors.consensus import ConsensusActor
from ..core.cluster_state import ClusterStateMachine
from ..node import COMPONENT_CLASSES
from ..runtime.storage import StorageError

FORGETFUL = "cluster_actors.testing.faulty:ForgetfulConsensusActor"
DOUBLE_APPLY = "cluster_actors.testing.faulty:DoubleApplyConsensusActor"
FULL_DISK = "cluster_actors.testing.faulty:FullDiskConsensusActor"

_Consensus: Any = ConsensusActor.__ray_actor_class__


class _Forgetful(_Consensus):
    async def on_activate(self) -> None:
        await super().on_activate()
        storage = self.core.storage
        persist = storage.persist
        # the bug: once anything is on disk (a new node's first Ready, which it
        # may write after on_activate returns, once its peers answered), nothing more
        storage.persist = lambda ready: persist(ready) if storage.is_empty() else None


class _SessionlessStateMachine(ClusterStateMachine):
    def apply(self, entry: Any) -> tuple[Any, bool]:
        self.sessions.clear()  # the bug: every retry looks new
        return super().apply(entry)


class _DoubleApply(_Consensus):
    async def on_activate(self) -> None:
        await super().on_activate()
        self.core.sm.__class__ = _SessionlessStateMachine


class _FullDiskStorage:
    """Wraps the node's RaftStorage; from the ``after``-th next persist on,
    ``count`` persists raise as SQLite does on a full disk (nothing written)."""

    def __init__(self, storage: Any, after: int, count: int) -> None:
        self._storage = storage
        self._countdown = after
        self._failures_left = count
        self.failed = 0

    def persist(self, ready: Any) -> None:
        self._countdown -= 1
        if self._countdown <= 0 and self._failures_left > 0:
            self._failures_left -= 1
            self.failed += 1
            raise StorageError(f"persisting to {self._storage.path} failed, nothing of this "
                               "Ready was written: database or disk is full")
        self._storage.persist(ready)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


class _FullDisk(_Consensus):
    async def fail_persists(self, after: int = 1, count: int = 1) -> None:
        """Test only: the ``after``-th next persist and the ``count - 1`` after
        it raise :class:`StorageError` (a full disk)."""
        self.core.require_started()
        self.core.storage = _FullDiskStorage(self.core.storage, after, count)


ForgetfulConsensusActor = ray.remote(num_cpus=0, max_restarts=0)(_Forgetful)
DoubleApplyConsensusActor = ray.remote(num_cpus=0, max_restarts=0)(_DoubleApply)
FullDiskConsensusActor = ray.remote(num_cpus=0, max_restarts=0)(_FullDisk)


@contextlib.contextmanager
def component_overrides(only: Sequence[str] | None = None, **classes: str) -> Iterator[None]:
    """Within the block, clusters start with ``classes`` (component ->
    ``"module:Class"``) in place of the usual ones, and with the ``only``
    components if given. Restores the usual classes on exit."""
    saved = dict(COMPONENT_CLASSES)
    unknown = set(classes) - set(saved)
    if unknown:
        raise ValueError(f"unknown components {sorted(unknown)}; known: {sorted(saved)}")
    try:
        COMPONENT_CLASSES.update(classes)
        if only is not None:
            for component in list(COMPONENT_CLASSES):
                if component not in only:
                    del COMPONENT_CLASSES[component]
        yield
    finally:
        COMPONENT_CLASSES.clear()
        COMPONENT_CLASSES.update(saved)


__all__ = ["DOUBLE_APPLY", "FORGETFUL", "FULL_DISK", "DoubleApplyConsensusActor",
           "ForgetfulConsensusActor", "FullDiskConsensusActor", "component_overrides"]
