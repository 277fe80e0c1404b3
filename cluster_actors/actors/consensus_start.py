"""The consensus actor's start: identity, the bootstrap decision, rejoining.

The decision itself is pure (:mod:`cluster_actors.core.bootstrap`); this
module carries it out through Ray:

* :func:`start_info` asks the cluster's registry for the cluster id handed
  out by ``Cluster.start``, whether the start is ``fresh`` and whether this
  node may still found the cluster;
* :func:`probe_peers` asks each peer's consensus actor what its storage
  holds (``ConsensusActor.identity``: a cheap call answered from the open
  database, also while the peer itself is still deciding);
* :class:`Rejoin` re-admits a node whose storage was empty while its peers
  hold the cluster's state: it asks the leader to remove it, then to add it
  back as a learner, waits until it caught up, then asks the leader to
  promote it (etcd's "member remove", "member add --learner", "promote",
  done by the node itself). Until promoted it drops every vote request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import ray

from ..core.bootstrap import PeerReport
from ..runtime.calls import bounded, task_cause
from ..runtime.hosting import find_component
from ..runtime.naming import namespace, registry_name

logger = logging.getLogger(__name__)

#: Seconds a peer gets to answer an identity probe or a leadership poll.
PROBE_TIMEOUT = 2.0
#: Seconds between probe rounds: from the first to the longest.
FIRST_RETRY, LONGEST_RETRY = 0.05, 1.0
#: At most this many peers probed per round (the next unanswered, in start order).
PROBE_BATCH = 8


async def start_info(cluster: str, node_id: str) -> dict[str, Any]:
    """The registry's ``start_info`` for ``node_id``; without a registry (a
    core started outside ``Cluster.start``): no id, not fresh, no founding."""
    try:
        registry = ray.get_actor(registry_name(cluster), namespace=namespace(cluster))
        return dict(await bounded(registry.start_info.remote(node_id), PROBE_TIMEOUT * 5))
    except Exception as error:
        logger.warning("consensus of %s: no start info from the registry: %s", node_id,
                       task_cause(error))
        return {"cluster_id": None, "fresh": False, "founder": False}


async def registered_nodes(cluster: str) -> frozenset[str] | None:
    """The node ids the cluster's registry lists now (``cluster.add_node``
    registers a node before starting it; ``remove_node`` unregisters it);
    None without Ray, a registry or an answer in time."""
    if not ray.is_initialized():
        return None
    try:
        registry = ray.get_actor(registry_name(cluster), namespace=namespace(cluster))
        info = await bounded(registry.info.remote(), PROBE_TIMEOUT * 5)
        return frozenset(str(node) for node in info["node_ids"])
    except Exception as error:
        logger.debug("no node list from the registry of %s: %s", cluster, task_cause(error))
        return None


async def claim_founding(cluster: str, node_id: str) -> bool:
    """Tell the registry ``node_id`` founds the cluster (False if it already did)."""
    registry = ray.get_actor(registry_name(cluster), namespace=namespace(cluster))
    return bool(await bounded(registry.claim_founding.remote(node_id), PROBE_TIMEOUT * 5))


async def probe_peers(cluster: str, peers: Iterable[str]
                      ) -> dict[str, PeerReport | None]:
    """Each peer's identity, asked in parallel; None for a peer that is not
    running, still opening its storage, or did not answer in time."""

    async def one(peer: str) -> PeerReport | None:
        try:
            handle = find_component(cluster, peer, "consensus")
            answer = await bounded(handle.identity.remote(), PROBE_TIMEOUT)
        except Exception:
            return None
        if not answer or (answer["state"] and not answer["cluster_id"]):
            return None  # not open yet, or state without a recorded id: uninformative
        return PeerReport(answer["cluster_id"] if answer["state"] else None)

    names = sorted(set(peers))
    answers = await asyncio.gather(*(one(peer) for peer in names))
    return dict(zip(names, answers, strict=True))


class Rejoin:
    """Re-admits this node through the leader, as etcd re-adds a member whose
    data is gone: removed from the configuration, then added back as a learner
    (the leader starts its progress from nothing, so it sends the whole log or
    a snapshot), then promoted to voter once caught up.

    ``begin`` is called once the removal is applied: only then does the node
    run its Raft core and answer the leader, which still counts the old log
    of this node as matched until the removal. ``state``: "pending" (looking
    for a leader), "removed", "learner" (catching up), "done" (promoted) or
    "stopped". ``voting`` is False until the promotion is applied: the shell
    drops vote requests until then.
    """

    def __init__(self, cluster: str, node_id: str, peers: Iterable[str], events: Any,
                 begin: Callable[[], None], change_timeout: float = 10.0,
                 on_done: Callable[[], None] | None = None) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.peers = sorted(set(peers) - {node_id})
        self.events = events
        self.begin = begin
        self.on_done = on_done
        self.change_timeout = change_timeout
        self.state = "pending"
        self.attempts = 0
        self.last_error: str | None = None

    @property
    def voting(self) -> bool:
        return self.state == "done"

    def describe(self) -> dict[str, Any]:
        return {"state": self.state, "attempts": self.attempts, "last_error": self.last_error}

    async def run(self) -> None:
        """Retry until promoted (a wiped majority: no leader, retried forever,
        the node never votes: the cluster stays unavailable, never wrong)."""
        delay = FIRST_RETRY
        while self.state != "done":
            self.attempts += 1
            try:
                await self._attempt()
            except asyncio.CancelledError:
                self.state = "stopped"
                raise
            except Exception as error:
                self.last_error = f"{type(task_cause(error)).__name__}: {task_cause(error)}"
                if self.attempts in (1, 10) or self.attempts % 100 == 0:
                    logger.warning("consensus of %s: rejoin attempt %d failed: %s",
                                   self.node_id, self.attempts, self.last_error)
                await asyncio.sleep(delay)
                delay = min(LONGEST_RETRY, delay * 2)

    async def _change(self, handle: Any, kind: str) -> dict[str, Any]:
        return dict(await bounded(handle.change_membership.remote(
            [(kind, self.node_id)], self.change_timeout), self.change_timeout + 1))

    async def _attempt(self) -> None:
        leader, handle = await self._leader()
        if self.state == "pending":
            await self._change(handle, "remove")
            self.state = "removed"
            self.events.publish("rejoin_removed", leader=leader)
            self.begin()
        if self.state == "removed":
            await self._change(handle, "add_learner")
            self.state = "learner"
            self.events.publish("rejoin_learner", leader=leader)
        deadline = time.monotonic() + self.change_timeout
        while True:
            status = await bounded(handle.status.remote(), PROBE_TIMEOUT)
            if status.get("role") != "leader":
                raise RuntimeError(f"{leader} is no longer the leader")
            progress = (status.get("progress") or {}).get(self.node_id)
            if progress and progress["match"] >= status["commit"]:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.node_id} did not catch up with {leader}")
            await asyncio.sleep(0.02)
        result = await self._change(handle, "add_voter")
        self.state = "done"
        if self.on_done is not None:
            self.on_done()
        self.events.publish("rejoined", leader=leader, voters=result.get("voters"))

    async def _leader(self) -> tuple[str, Any]:
        """A peer that says it leads (asked in parallel), with its handle."""

        async def ask(peer: str) -> tuple[str, Any] | None:
            with contextlib.suppress(Exception):
                handle = find_component(self.cluster, peer, "consensus")
                status = await bounded(handle.leadership.remote(), PROBE_TIMEOUT)
                if status.get("role") == "leader":
                    return peer, handle
            return None

        for found in await asyncio.gather(*(ask(peer) for peer in self.peers)):
            if found is not None:
                return found
        raise LookupError(f"no leader among {', '.join(self.peers)}")


__all__ = ["FIRST_RETRY", "LONGEST_RETRY", "PROBE_BATCH", "Rejoin", "claim_founding", "probe_peers", "start_info"]
