"""The coordinator component: the node's 15-state lifecycle and the seed's
Coordinator API, over the pure :class:`~cluster_actors.core.lifecycle.Lifecycle`.

**What drives the lifecycle.** The coordinator follows its consensus
sibling's event stream with a long-poll on ``wait_events`` (and the membership
and heartbeat siblings' streams when those components are installed), and
runs a health round every ``heartbeat_interval`` (sooner when an event asks
for one): its consensus ``status()`` plus one ``ping`` per peer's consensus
actor. From these it keeps a :class:`NodeView` (leader known? which voters
answer? quorum?) and after every change hands its
:class:`~cluster_actors.core.lifecycle.LifecycleView` to the pure
:func:`~cluster_actors.core.lifecycle.next_event` (the first of
:func:`~cluster_actors.core.lifecycle.events_for` the table admits) and fires it
until none applies; the guards then choose between stable, degraded, electing
and partitioning:

=====================================  =====================================
observation                            lifecycle
=====================================  =====================================
a leader is known, quorum reachable    forming → stable (or degraded/electing)
leader lost (``leader_changed`` with   → electing; a new leader → stable, or
no leader, the leader's actor died,    degraded while a voter is unreachable
or a leader replaced by another)
a voter unreachable, quorum kept       stable → degraded (and back)
quorum lost                            → partitioning; when it returns:
                                       merging → resyncing → resume
this node's consensus actor died, or   → recovery; when consensus answers
the coordinator itself was restarted   again: resyncing → resume (once the
by the node supervisor                 log is applied up to the commit index)
a proposal (config change or join)     → voting; all decided → resume
awaits the voters' approval
=====================================  =====================================

``snapshot``, ``start_upgrade``/``finish_upgrade``, ``split``,
``report_partition``/``heal_partition`` and ``leave_cluster``/``stop`` enter
the other states on request. Every transition is published as a
``state_changed`` event; the siblings' events are republished with a
``component`` field, so one subscription to the coordinator sees the node.

The coordinator is assembled from mixins along its seams: observing
(:mod:`~cluster_actors.actors.coordinator_observe`: the event streams, the
health round, the :class:`NodeView`), membership commands
(:mod:`~cluster_actors.actors.coordinator_membership`), configuration
commands and votes (:mod:`~cluster_actors.actors.coordinator_config`), the
leader's autopilot (:mod:`~cluster_actors.actors.coordinator_autopilot`) and
the strategies (:mod:`~cluster_actors.actors.coordinator_strategies`); this
module holds the lifecycle and the rest of the seed's API.

**Configuration** (:mod:`~cluster_actors.actors.coordinator_config`): a
change is validated and prepared on the leader's replicated store (invalid:
:class:`ValidationFailed` with field paths, nothing is proposed) and committed
through consensus; the coordinator *forwards* it to the leader's consensus
actor when this node does not lead. Plain key-value writes are not forwarded
(a follower answers them with :class:`NotLeader`, and the kv client redirects).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import ray
from ray.exceptions import RayActorError

import strategies

from ..core.lifecycle import (
    Lifecycle,
    LifecycleEvent,
    LifecycleState,
    LifecycleView,
    NodeView,
    next_event,
)
from ..core.limits import check_seq, check_timeout
from ..core.monitoring import health_summary
from ..errors import ClusterError, CoordinationTimeout, NoQuorum, ValidationFailed
from ..runtime.calls import bounded, task_cause
from ..runtime.naming import namespace, root_supervisor_name
from ..telemetry.tracing import (
    configure_tracing_from_env,
    configure_tracing_from_options,
    election_span,
)
from .base import ComponentActor
from .coordinator_autopilot import AutopilotRunner
from .coordinator_config import ConfigCommands
from .coordinator_membership import MembershipCommands
from .coordinator_observe import FOLLOWED, Observer, installed
from .coordinator_strategies import StrategyRunner

logger = logging.getLogger(__name__)

S = LifecycleState
E = LifecycleEvent


@ray.remote(num_cpus=0, max_restarts=0)
class CoordinatorActor(Observer, MembershipCommands, ConfigCommands, AutopilotRunner,
                       StrategyRunner, ComponentActor):
    """The seed's Coordinator API for one node (see the module doc)."""

    component = "coordinator"
    uses_transport = False

    def __init__(self, cluster: str, node_id: str, voters: list[str],
                 options: dict[str, Any], initial_config: dict[str, Any] | None = None,
                 join: bool = False) -> None:
        super().__init__(cluster, node_id, voters, options, initial_config, join)
        self._init_config_commands()
        self._init_autopilot()
        self.lifecycle = Lifecycle()
        self.view = NodeView(voters=[] if join else list(voters))
        self._consensus_up = False
        self._peer_handles: dict[str, Any] = {}
        self._slow: dict[str, int] = {}  # consecutive ping timeouts per peer
        self._partition: dict[str, Any] | None = None
        self._partition_log: deque[dict[str, Any]] = deque(maxlen=50)
        self._split: dict[str, Any] | None = None
        self._upgrade: dict[str, Any] | None = None
        self._refresh_lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._stats = {"config_committed": 0, "config_forwarded": 0, "config_rejected": 0,
                       "refreshes": 0, "local_failures": 0}
        self._heartbeat_status: dict[str, Any] | None = None
        self._start_strategies()  # in the constructor: calls may arrive while it starts

    # ============================================================ running
    async def on_start(self) -> None:
        configure_tracing_from_env()
        configure_tracing_from_options(self.options)
        restarted = await self._was_restarted()
        consensus_events = await self._consensus_tail()
        await self._refresh(reconcile=False)
        if restarted:
            self._fire(E.FAILURE_DETECTED, reason="the coordinator was restarted by its "
                                                  "supervisor")
        self._reconcile()
        self._timers.append(self.run_forever(self._follow_consensus(consensus_events),
                                             "following the consensus events"))
        self._timers.extend(self.run_forever(self._follow(c), f"following {c}")
                            for c in FOLLOWED if installed(c))
        self._timers.append(self.run_forever(self._health_loop(), "the health loop"))
        if restarted:  # the config may have changed (a fresh cluster's equals the options)
            self._spawn_config_adoption()


    # ---------------------------------------------------------- lifecycle
    def _is_member(self) -> bool:
        return self.view.is_member(self.node_id)

    def _lifecycle_view(self) -> LifecycleView:
        """What the lifecycle's events need of the view, now."""
        view = self.view
        return LifecycleView(consensus_up=self._consensus_up, member=self._is_member(),
                             caught_up=self._consensus_up and self.view.caught_up(), has_quorum=view.quorum[0],
                             has_leader=view.has_leader, members_down=len(view.unreachable),
                             partition_held=self._partition is not None,
                             config_pending=bool(self._pending))

    def _reconcile(self) -> None:
        """Fire observed events until the lifecycle agrees with the view."""
        for _ in range(16):
            event = next_event(self.lifecycle.state, self._lifecycle_view())
            if event is None:
                return
            self._fire(event)
            if self.lifecycle.state in (S.RESYNCING, S.MERGING):
                self._kick.set()  # the next step needs a fresh status

    def _fire(self, event: LifecycleEvent, reason: str | None = None) -> dict[str, Any]:
        """Take ``event`` now (raises IllegalTransition if the table forbids it)."""
        transition = self.lifecycle.fire(event, self.view.context(), at=time.time())
        record = self._transition_dict(transition)
        self.events.publish("state_changed", reason=reason, **record)
        return record

    @staticmethod
    def _transition_dict(transition: Any) -> dict[str, Any]:
        return {"sequence": transition.sequence, "from": transition.source.value,
                "event": transition.event.value, "to": transition.target.value,
                "guard": transition.guard, "at": transition.at}

    async def lifecycle_state(self) -> str:
        return self.lifecycle.state.value

    async def lifecycle_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Transitions taken, oldest first: ``sequence, from, event, to, guard, at``."""
        history = [self._transition_dict(t) for t in self.lifecycle.history]
        return history[-check_seq(limit, "limit"):] if limit else history

    async def local_view(self) -> dict[str, Any]:
        """Cheap, no remote calls: lifecycle state, leader, quorum, reachability."""
        return {"node": self.node_id, "lifecycle_state": self.lifecycle.state.value,
                "leader": self.view.leader, "term": self.view.term,
                "has_quorum": self.view.quorum[0] if self.started else None,
                "quorum": list(self.view.quorum), "unreachable": self.view.unreachable}

    # ============================================================ the API
    async def stop(self) -> None:
        """The seed's ``stop``: end this node without changing the membership.

        Lifecycle leave_requested → draining; a leader hands its leadership
        off first; drain_complete → shutdown; then the root supervisor is asked
        to terminate this node's subtree (so nothing restarts it). The call
        returns before the actors are gone. Use :meth:`leave_cluster` to also
        remove the node from the voters.
        """
        self._fire(E.LEAVE_REQUESTED, reason="stop")
        await self._hand_off_leadership()
        self._fire(E.DRAIN_COMPLETE, reason="stop")
        root = ray.get_actor(root_supervisor_name(self.cluster), namespace=namespace(self.cluster))
        root.terminate_child.remote(self.node_id)


    async def get_leader(self) -> str | None:
        """The leader this node's consensus follows (None during an election)."""
        return await self._consensus_call("get_leader")

    async def become_leader(self, timeout: float = 5.0) -> None:
        """Force an election on this node and wait until it leads; raises
        :class:`CoordinationTimeout` if another node won."""
        timeout = check_timeout(timeout)
        with election_span(self.node_id, self.view.term + 1, forced=True):
            await self._consensus_call("force_election")
            deadline = time.monotonic() + timeout
            while await self._consensus_call("get_leader") != self.node_id:
                if time.monotonic() > deadline:
                    raise CoordinationTimeout(f"{self.node_id} did not win the election within "
                                              f"{timeout} s (its log may be behind); retry")
                await asyncio.sleep(0.02)

    async def step_down(self, successor: str | None = None) -> str | None:
        """Hand leadership to ``successor`` (default: the most caught-up voter);
        returns it. Raises :class:`NotLeader` on a follower."""
        return await self._consensus_call("step_down", successor)

    async def force_election(self) -> None:
        """Start an election on this node now (it may lose)."""
        with election_span(self.node_id, self.view.term + 1, forced=True):
            await self._consensus_call("force_election")

    async def _leader_handle(self, deadline: float, known: str | None = None
                             ) -> tuple[str, Any]:
        """The leader's id and consensus handle, waiting for an election if needed.
        ``known``: a leader to try first without asking (its handle may say
        NotLeader; the caller asks again then)."""
        if known is not None and (handle := self._consensus_of(known)) is not None:
            return known, handle
        while True:
            leader = await self._consensus_call("get_leader")
            if leader is not None and (handle := self._consensus_of(leader)) is not None:
                return leader, handle
            if time.monotonic() > deadline:
                raise NoQuorum("no leader known: the cluster may have lost its quorum; "
                               "restore nodes or heal the partition, then retry")
            await asyncio.sleep(0.05)


    async def _hand_off_leadership(self, timeout: float = 5.0) -> None:
        if await self._consensus_call("get_leader") != self.node_id:
            return
        if len(self.view.voters) > 1:
            await self._consensus_call("step_down", self._successor())
            deadline = time.monotonic() + timeout
            while await self._consensus_call("get_leader") in (self.node_id, None):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)

    async def _consensus_call(self, method: str, *args: Any) -> Any:
        """Call this node's consensus actor; its own errors are re-raised as is."""
        try:
            return await bounded(getattr(self.sibling("consensus"), method).remote(*args), 10.0)
        except RayActorError:
            self.forget_sibling("consensus")
            raise ClusterError(f"the consensus actor of {self.node_id} is restarting; "
                               "retry in a moment") from None
        except asyncio.TimeoutError:
            raise CoordinationTimeout(f"consensus of {self.node_id} did not answer "
                                      f"{method}") from None
        except Exception as error:
            raise task_cause(error) from None

    # ------------------------------------------------------------ monitoring
    async def get_cluster_status(self) -> tuple[str, dict[str, Any]]:
        """``(lifecycle state, status)`` after a fresh health round."""
        await self._refresh()
        view, status = self.view, self.view.status
        components = {c: self._running(c) for c in
                      ("consensus", "membership", "heartbeat", "sync", "monitor")}
        return self.lifecycle.state.value, {
            "node_id": self.node_id, "cluster": self.cluster,
            "state": self.lifecycle.state.value, "leader": view.leader, "term": view.term,
            "role": status.get("role"), "members": await self.get_members(),
            "voters": list(view.voters), "learners": list(view.learners),
            "reachable": sorted(view.reachable), "unreachable": view.unreachable,
            "quorum": list(view.quorum), "commit": status.get("commit"),
            "applied": status.get("applied"), "config_version": status.get("config_version"),
            "components": components, "pending_proposals": sorted(self._pending),
            "partition": self._partition, "lifecycle_sequence": self.lifecycle.sequence}

    def _running(self, component: str) -> bool:
        try:
            self.sibling(component)
        except ClusterError:
            return False
        return True

    async def get_metrics(self) -> dict[str, Any]:
        """Lifecycle counts, the coordinator's own counters and the consensus figures."""
        status = self.view.status
        transitions: dict[str, int] = {}
        for t in self.lifecycle.history:
            transitions[t.target.value] = transitions.get(t.target.value, 0) + 1
        return {"node": self.node_id, "state": self.lifecycle.state.value,
                "transitions": self.lifecycle.sequence, "entered": transitions,
                "events_published": self.events.seq, **self._stats,
                "consensus": {k: status.get(k) for k in (
                    "term", "commit", "applied", "last_index", "snapshot_index",
                    "leader_changes", "commit_latency_p50_ms", "commit_latency_p99_ms")}}

    async def subscribe_events(self, handle: Any, types: list[str] | None = None) -> None:
        """Push every event (of ``types``, default all) to ``handle.on_event(event)``
        (a Ray actor handle; anything else raises ValidationFailed)."""
        self.events.subscribe(handle, types=types)

    async def unsubscribe_events(self, handle: Any) -> bool:
        return self.events.unsubscribe(handle)

    async def health_check(self) -> tuple[str, dict[str, Any]]:
        """``(health, details)``: the monitor's verdict, or (no monitor) one from
        this coordinator's view."""
        health = await self._ask("monitor", "get_health")
        if health is not None:
            return tuple(health)  # type: ignore[return-value]
        view = self.view
        return health_summary({"node_id": self.node_id, "leader": view.leader,
                               "has_leader": view.has_leader, "term": view.term,
                               "has_quorum": view.quorum[0], "members": len(view.voters),
                               "lifecycle_state": self.lifecycle.state.value})

    async def force_health_check(self) -> tuple[str, dict[str, Any]]:
        """Run a health round and the monitor's check now; returns :meth:`health_check`."""
        await self._refresh()
        await self._ask("monitor", "force_check")
        return await self.health_check()

    async def get_quorum(self) -> tuple[bool, int, int]:
        """``(has_quorum, quorum_size, current)`` after a fresh health round: from
        the membership component when it runs, else voters answering pings."""
        await self._refresh()
        return self.view.quorum

    # ------------------------------------------------------------ partitions
    async def report_partition(self, nodes: list[str], reason: str = "") -> None:
        """Record that ``nodes`` are cut off from this node: lifecycle
        partitioning until :meth:`heal_partition`."""
        if not isinstance(nodes, (list, tuple)) or not all(isinstance(n, str) for n in nodes):
            raise ValidationFailed([("nodes", "give a list of node ids")])
        self._partition = {"nodes": sorted(nodes), "reason": reason, "at": time.time(),
                           "reported_by": self.node_id}
        self._partition_log.append({"kind": "reported", **self._partition})
        self.events.publish("partition_reported", nodes=sorted(nodes), reason=reason)
        self._reconcile()

    async def heal_partition(self, strategy: str | None = None) -> dict[str, Any]:
        """Declare the partition healed, resolved by partition ``strategy``
        (default the configured one; an unknown name raises UnknownStrategy):
        partitioning → merging → resyncing → resume. Raises :class:`NoQuorum`,
        changing nothing, while this node still cannot reach a quorum."""
        strategy = strategy or self.options.partition_strategy
        strategies.check_name("partition", strategy)
        await self._refresh()
        if not self.view.quorum[0]:
            raise NoQuorum(f"the partition is not healed: {self.view.quorum[2]} of "
                           f"{len(self.view.voters)} voters reachable, "
                           f"{self.view.quorum[1]} needed")
        self.driver.operator_heal()
        if await self._ask("sync", "set_mode", "serve",
                           f"healed by an operator ({strategy})") == "serve":
            self.data_mode_applied = "serve"
        self._declare_healed(strategy)
        await self._ask("sync", "sync_all")
        return await self.get_partition_info()

    def _declare_healed(self, strategy: str) -> None:
        """partitioning → merging → resyncing → resume (the lifecycle's part of a heal)."""
        self._partition_log.append({"kind": "healed", "strategy": strategy, "at": time.time(),
                                    "nodes": (self._partition or {}).get("nodes", [])})
        self._partition = None
        self.events.publish("partition_healed", strategy=strategy)
        self._reconcile()

    async def get_partition_info(self) -> dict[str, Any]:
        view = self.view
        return {"state": self.lifecycle.state.value, "reported": self._partition,
                "unreachable": view.unreachable, "has_quorum": view.quorum[0],
                "quorum": list(view.quorum), "strategy": self.driver.partition.strategy_name,
                "action": self.driver.last.partition.this_side_action.value
                if self.driver.last else None,
                "data_mode": self.data_mode_applied,
                "awaiting_operator": self.driver.awaiting_operator,
                "split": self._split, "history": list(self._partition_log)}

    # ----------------------------------------------------------------- sync
    async def trigger_sync(self, sync_type: str = "full_sync") -> Any:
        return await self._sync_call(("trigger_sync",), sync_type)

    async def sync_status(self) -> Any:
        return await self._sync_call(("get_sync_status", "sync_status"))

    async def resolve_conflict(self, key: str, resolution: str, value: Any = None) -> Any:
        return await self._sync_call(("resolve_conflict",), key, resolution, value)

    async def _sync_call(self, methods: tuple[str, ...], *args: Any) -> Any:
        """Delegate to the sync component; ClusterError when it is not running."""
        try:
            handle = self.sibling("sync")
        except ClusterError:
            raise ClusterError(f"the sync component is not running on {self.node_id}; "
                               "data sync is unavailable") from None
        method = next((m for m in methods if hasattr(handle, m)), None)
        if method is None:
            raise ClusterError(f"the sync component of {self.node_id} has no {methods[0]}")
        try:
            return await getattr(handle, method).remote(*args)
        except RayActorError:
            self.forget_sibling("sync")
            raise ClusterError(f"the sync component of {self.node_id} is restarting; "
                               "retry in a moment") from None
        except Exception as error:
            raise task_cause(error) from None

    # ------------------------------------------------------------ activities
    async def snapshot(self) -> int:
        """Compact the log now (snapshotting → resume); returns the snapshot index."""
        self._fire(E.SNAPSHOT_REQUESTED)
        try:
            return await self._consensus_call("snapshot_now")
        finally:
            if self.lifecycle.can_fire(E.SNAPSHOT_COMPLETE, self.view.context()):
                self._fire(E.SNAPSHOT_COMPLETE)
            self._reconcile()

    async def start_upgrade(self, version: str | None = None) -> str:
        """Mark a rolling upgrade of this node as started (stable → upgrading)."""
        self._fire(E.UPGRADE_STARTED)
        self._upgrade = {"version": version, "started_at": time.time()}
        return self.lifecycle.state.value

    async def finish_upgrade(self) -> str:
        """The upgrade is done: upgrading → resume (stable/degraded/...)."""
        self._fire(E.UPGRADE_COMPLETE)
        self._upgrade = None
        self._reconcile()
        return self.lifecycle.state.value

    async def split(self, groups: list[list[str]]) -> dict[str, Any]:
        """Record a controlled split of the members into ``groups``.

        The split is a decision recorded (and published as ``split``) for
        operators and partition strategies; it does not change the Raft
        membership — carry it out with ``leave_cluster``/``join_cluster``.
        Lifecycle stable → splitting → resume. ``groups`` must be at least two
        disjoint, non-empty lists of members, one of them holding this node.
        """
        members = set(await self.get_members())
        well_formed = isinstance(groups, (list, tuple)) and all(
            isinstance(g, (list, tuple)) and g and all(isinstance(n, str) for n in g)
            for g in groups)
        flat = [n for g in groups for n in g] if well_formed else []
        errors = []
        if not well_formed or len(groups) < 2:
            errors.append(("groups", "give at least two non-empty groups of node ids"))
        elif len(flat) != len(set(flat)):
            errors.append(("groups", "a node appears in more than one group"))
        elif set(flat) - members:
            errors.append(("groups", f"not members: {sorted(set(flat) - members)}"))
        elif self.node_id not in flat:
            errors.append(("groups", f"{self.node_id} is in no group"))
        if errors:
            raise ValidationFailed(errors)
        self._fire(E.SPLIT_REQUESTED)
        part = next(sorted(g) for g in groups if self.node_id in g)
        self._split = {"groups": [sorted(g) for g in groups], "part": part, "at": time.time()}
        self.events.publish("split", **self._split)
        self._fire(E.SPLIT_COMPLETE)
        self._reconcile()
        return dict(self._split)
