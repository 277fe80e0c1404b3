"""``Coordinator``: the blocking, typed client of one node's coordinator.

Every remote method of :class:`~cluster_actors.actors.coordinator.CoordinatorActor`
is available (through :class:`~cluster_actors.client.ComponentClient`); the
calls below return typed values instead of plain data::

    coord = Coordinator("demo", "n1")
    coord.get_leader()                        # "n2" or None
    ok, size, current = coord.get_quorum()    # Quorum(has_quorum=True, quorum_size=2, current=3)
    state, status = coord.get_cluster_status()  # "stable", ClusterStatusModel(...)
    version = coord.propose_config({"heartbeat_interval": 150})

    subscription = coord.subscribe_events(print)   # a callable: delivered by a daemon thread
    subscription.cancel()

Errors are the package's own (:class:`~cluster_actors.errors.ValidationFailed`,
:class:`~cluster_actors.errors.NotLeader`, ...), unwrapped from Ray's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from ..core.limits import check_timeout
from .components import DEFAULT_TIMEOUT, ComponentClient, Event, Subscription, listed


class Quorum(NamedTuple):
    """``(has_quorum, quorum_size, current)``: reachable voters against the size needed."""

    has_quorum: bool
    quorum_size: int
    current: int


class ClusterStatusModel(BaseModel):
    """One node's view of the cluster, as ``get_cluster_status`` reports it."""

    model_config = ConfigDict(extra="allow")

    node_id: str
    cluster: str
    state: str
    leader: str | None = None
    term: int = 0
    role: str | None = None
    members: list[str] = Field(default_factory=list)
    voters: list[str] = Field(default_factory=list)
    learners: list[str] = Field(default_factory=list)
    reachable: list[str] = Field(default_factory=list)
    unreachable: list[str] = Field(default_factory=list)
    quorum: Quorum
    commit: int | None = None
    applied: int | None = None
    config_version: int | None = None
    components: dict[str, bool] = Field(default_factory=dict)
    pending_proposals: list[int] = Field(default_factory=list)
    partition: dict[str, Any] | None = None
    lifecycle_sequence: int = 0


class LifecycleTransition(BaseModel):
    """One transition of a node's lifecycle."""

    model_config = ConfigDict(populate_by_name=True)

    sequence: int
    source: str = Field(alias="from")
    event: str
    target: str = Field(alias="to")
    guard: str | None = None
    at: float | None = None


class Coordinator(ComponentClient):
    """Blocking, typed calls on the coordinator of ``node_id`` (see the module doc)."""

    def __init__(self, cluster: str, node_id: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(cluster, node_id, "coordinator", timeout)

    @property
    def node_id(self) -> str:
        return self._node_id

    def get_leader(self) -> str | None:
        return self.call("get_leader")

    def get_members(self) -> list[str]:
        return list(self.call("get_members"))

    def get_cluster_status(self) -> tuple[str, ClusterStatusModel]:
        state, status = self.call("get_cluster_status")
        return state, ClusterStatusModel.model_validate(status)

    def get_quorum(self) -> Quorum:
        return Quorum(*self.call("get_quorum"))

    def get_config(self, key: str | None = None) -> Any:
        """The replicated configuration as applied on this node (a dict), or the
        value of one ``key`` (a field or ``metadata.<path>``; NotFound if none)."""
        return self.call("get_config", key)

    def propose_config(self, new_config: dict[str, Any], require_approval: bool = False,
                       timeout: float | None = None) -> int:
        """Validate and replicate ``new_config`` (the keys to change); its version."""
        seconds = self._timeout if timeout is None else timeout
        return int(self.call("propose_config", new_config, require_approval, seconds,
                             timeout=check_timeout(seconds) + 5.0))

    def approve_config(self, version: int, approve: bool = True,
                       timeout: float | None = None) -> int | None:
        """This node's vote on pending proposal ``version``: the committed
        version when it completed the quorum, else None (pending or rejected)."""
        seconds = self._timeout if timeout is None else timeout
        return self.call("approve_config", version, approve, seconds, timeout=check_timeout(seconds) + 5.0)

    def pending_proposals(self) -> list[dict[str, Any]]:
        """The replicated proposals awaiting the voters' approval (config changes
        and joins): ``id``, ``kind``, ``subject``, ``electorate``, ``needed``,
        ``approvals``, ``rejections``, ``status``."""
        return list(self.call("pending_proposals"))

    def get_proposal(self, proposal_id: int) -> dict[str, Any]:
        """A pending or recently decided proposal; NotFound if it is neither."""
        return dict(self.call("get_proposal", proposal_id))

    def approve_join(self, node: str, timeout: float | None = None) -> dict[str, Any]:
        """This node's approval of ``node``'s pending join; the proposal now."""
        seconds = self._timeout if timeout is None else timeout
        return dict(self.call("approve_join", node, seconds, timeout=check_timeout(seconds) + 5.0))

    def reject_join(self, node: str, reason: str = "",
                    timeout: float | None = None) -> dict[str, Any]:
        """This node's rejection of ``node``'s pending join; the proposal now."""
        seconds = self._timeout if timeout is None else timeout
        return dict(self.call("reject_join", node, reason, seconds, timeout=check_timeout(seconds) + 5.0))

    def rollback_config(self, version: int, timeout: float | None = None) -> int:
        seconds = self._timeout if timeout is None else timeout
        return int(self.call("rollback_config", version, seconds, timeout=check_timeout(seconds) + 5.0))

    def join_cluster(self, seed_nodes: list[str], timeout: float = 30.0) -> dict[str, Any]:
        """Join the cluster of ``seed_nodes`` (a no-op for a member)."""
        return self.call("join_cluster", listed(seed_nodes, "seed_nodes"), timeout, timeout=check_timeout(timeout) + 5.0)

    def leave_cluster(self, reason: str = "", timeout: float = 30.0) -> None:
        """Leave the cluster: the node ends in lifecycle ``shutdown``."""
        self.call("leave_cluster", reason, timeout, timeout=check_timeout(timeout) + 5.0)

    def become_leader(self, timeout: float = 5.0) -> None:
        """Force an election here and wait until this node leads."""
        self.call("become_leader", timeout, timeout=check_timeout(timeout) + 5.0)

    def request_leadership(self, target: str) -> str:
        """Ask the failover strategy to move leadership to ``target`` (the one
        thing ``manual`` waits for); forwarded to the leader."""
        return str(self.call("request_leadership", target))

    def get_failover_info(self) -> dict[str, Any]:
        """The failover strategy's ranking, this node's election bias, the last
        reason, and the partition strategy's decision and data mode here."""
        return dict(self.call("get_failover_info"))

    def get_member_info(self, node: str) -> dict[str, Any]:
        """Role, reachability, leadership and progress of ``node``; NotFound if it
        is not a member."""
        return dict(self.call("get_member_info", node))

    def step_down(self, successor: str | None = None) -> str | None:
        """Hand leadership to ``successor`` (default: the most caught-up voter);
        NotLeader on a follower."""
        return self.call("step_down", successor)

    def force_election(self) -> None:
        """Start an election on this node now (it may lose)."""
        self.call("force_election")

    def get_metrics(self) -> dict[str, Any]:
        return dict(self.call("get_metrics"))

    def force_health_check(self) -> tuple[str, dict[str, Any]]:
        """A health round now; ``(health, details)``."""
        health, details = self.call("force_health_check")
        return health, details

    def report_partition(self, nodes: list[str], reason: str = "") -> None:
        """Record that ``nodes`` are cut off from this node (lifecycle partitioning)."""
        self.call("report_partition", listed(nodes, "nodes"), reason)

    def heal_partition(self, strategy: str | None = None) -> dict[str, Any]:
        """Declare the partition healed, resolved by partition ``strategy``."""
        return dict(self.call("heal_partition", strategy))

    def get_partition_info(self) -> dict[str, Any]:
        return dict(self.call("get_partition_info"))

    def trigger_sync(self, sync_type: str = "full_sync") -> str:
        """Start a data sync on this node; its id (``full_sync`` or ``incremental``)."""
        return str(self.call("trigger_sync", sync_type))

    def sync_status(self) -> dict[str, Any]:
        return dict(self.call("sync_status"))

    def resolve_conflict(self, key: str, resolution: str, value: Any = None) -> bool:
        """Settle ``key``'s siblings: ``local_wins``, ``remote_wins``, ``merge`` or
        ``value`` (with ``value``); True if the store changed."""
        return bool(self.call("resolve_conflict", key, resolution, value))

    def split(self, groups: list[list[str]]) -> dict[str, Any]:
        """Record a controlled split of the members into ``groups`` (at least two
        disjoint, non-empty lists of members, one holding this node): lifecycle
        stable -> splitting -> resume. The Raft membership is not changed."""
        return dict(self.call("split", [listed(group, "groups")
                                        for group in listed(groups, "groups")]))

    def snapshot(self) -> int:
        """Compact this node's log now (lifecycle snapshotting); the snapshot index."""
        return int(self.call("snapshot"))

    def start_upgrade(self, version: str | None = None) -> str:
        """Mark a rolling upgrade of this node as started (stable -> upgrading);
        the lifecycle state after it."""
        return str(self.call("start_upgrade", version))

    def finish_upgrade(self) -> str:
        """The upgrade is done (upgrading -> resume); the lifecycle state after it."""
        return str(self.call("finish_upgrade"))

    def stop(self) -> None:
        """End this node without changing the membership (the seed's ``stop``)."""
        self.call("stop")

    def lifecycle_state(self) -> str:
        return str(self.call("lifecycle_state"))

    def lifecycle_history(self, limit: int | None = None) -> list[LifecycleTransition]:
        return [LifecycleTransition.model_validate(t)
                for t in self.call("lifecycle_history", limit)]

    def health_check(self) -> tuple[str, dict[str, Any]]:
        health, details = self.call("health_check")
        return health, details

    def subscribe_events(self, subscriber: Callable[[Event], Any] | Any,
                         types: Collection[str] | None = None) -> Subscription | None:
        """The node's events (of ``types``, default all; the siblings' events
        carry a ``component`` field). A Python callable: delivered from a daemon
        thread, returns the :class:`~cluster_actors.client.Subscription`. A Ray
        actor handle: the coordinator pushes to its ``on_event`` (returns None)."""
        return self._subscribe("subscribe_events", subscriber, types)

    def unsubscribe_events(self, subscriber: Callable[[Event], Any] | Any) -> bool:
        return self._unsubscribe("unsubscribe_events", subscriber)

    def __repr__(self) -> str:
        return f"<Coordinator of {self._cluster}:{self._node_id}>"


__all__ = ["ClusterStatusModel", "Coordinator", "LifecycleTransition", "Quorum",
           "Subscription"]  # Subscription: re-exported from cluster_actors.client
