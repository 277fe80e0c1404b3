"""Deliberately broken components, to prove that the chaos checks catch the
bugs they are meant to catch.

* :data:`ForgetfulConsensusActor` acknowledges without persisting: after
  its first start nothing it appends, votes or commits reaches its disk, so
  a crash of every node (``ChaosMonkey.kill_all``) forgets acknowledged
  writes and reuses terms.
* :data:`DoubleApplyConsensusActor` applies every command as if it were new:
  its state machine forgets the client sessions, so a command retried after
  a failover takes effect twice.

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

FORGETFUL = "cluster_actors.testing.faulty:ForgetfulConsensusActor"
DOUBLE_APPLY = "cluster_actors.testing.faulty:DoubleApplyConsensusActor"

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


ForgetfulConsensusActor = ray.remote(num_cpus=0, max_restarts=0)(_Forgetful)
DoubleApplyConsensusActor = ray.remote(num_cpus=0, max_restarts=0)(_DoubleApply)


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


__all__ = ["DOUBLE_APPLY", "FORGETFUL", "DoubleApplyConsensusActor", "ForgetfulConsensusActor",
           "component_overrides"]
