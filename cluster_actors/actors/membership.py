"""The membership component: a thin Ray shell around the gossip-mergeable
:class:`~cluster_actors.core.membership.MembershipView`, with the seed's
Membership Manager API.

The view starts with the cluster's founding voters all ``up``
(:meth:`MembershipView.founded`; a node started with ``join=True`` founds its
view without itself and enters through :meth:`MembershipActor.join_cluster`).
Every ``heartbeat_interval`` ms the actor gossips its view to up to
:data:`GOSSIP_FANOUT` random live peers, one Ray call each, and pushes it to
every live peer right after a local change. A receiver merges the view (a
CRDT join, so order, loss and duplicates do not matter) and answers with its
own view when the two still differ (push-pull), so replicas converge in a
round trip.

Events, derived from each change of a member's status or reachability:
``member_join_requested`` (joining), ``member_joined`` (up), ``member_left``
(leaving), ``member_exiting``, ``member_down``, ``member_removed`` (with the
reason, e.g. ``rejected: ...``), ``member_unreachable`` / ``member_reachable``
(some live member's failure detector sees it as failed / no one does any
more), and ``quorum_lost`` / ``quorum_regained`` when :meth:`has_quorum`
flips.

Quorum is judged from this node: ``current`` counts the voters (role voter,
status up or leaving) that this node reaches, i.e. itself and every voter its
own failure detector has not marked unreachable. So on the majority side of a
partition ``has_quorum`` stays true and on the minority side it turns false.
``get_quorum(scope="cluster")`` counts instead the voters no live member marks
unreachable.

Voter-set changes of the Raft group are not made here: the consensus
component's ``change_membership`` does that and is driven by the caller that
approves a join.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import ray

from ..core.membership import (
    MemberChange,
    MemberInfo,
    MemberNotFound,
    MembershipView,
    MemberStatus,
    QuorumStatus,
    quorum_size,
)
from ..core.peer_checks import (
    GOSSIP_STATUSES,
    MAX_NODE_ID_CHARS,
    gossip_problem,
    gossip_sender_allowed,
    is_node_id,
    message_src,
)
from ..errors import ClusterError, ValidationFailed
from ..runtime.hosting import find_component
from .base import ComponentActor

logger = logging.getLogger(__name__)

#: Random live peers each gossip round goes to.
GOSSIP_FANOUT = 2

#: Statuses listed by get_member_ids() / get_members().
LISTED_STATUSES = frozenset({MemberStatus.JOINING, MemberStatus.UP, MemberStatus.LEAVING})
#: Statuses whose nodes the heartbeat component monitors (admitted, not yet gone).
MONITORED_STATUSES = frozenset({MemberStatus.UP, MemberStatus.LEAVING, MemberStatus.EXITING})

_STATUS_EVENTS = {
    MemberStatus.JOINING: "member_join_requested", MemberStatus.UP: "member_joined",
    MemberStatus.LEAVING: "member_left", MemberStatus.EXITING: "member_exiting",
    MemberStatus.DOWN: "member_down", MemberStatus.REMOVED: "member_removed",
}


def _node(node: Any, field: str = "node") -> str:
    """``node`` if it can be a node id, else ValidationFailed."""
    if not is_node_id(node):
        raise ValidationFailed([(field, f"must be a node id (a string of 1..{MAX_NODE_ID_CHARS} "
                                        f"characters), got {type(node).__name__}")])
    return node  # type: ignore[no-any-return]


@ray.remote(num_cpus=0, max_restarts=0)
class MembershipActor(ComponentActor):
    """Membership of one node (see the module doc).

    The seed's API: :meth:`join_cluster`, :meth:`leave_cluster`,
    :meth:`approve_join`, :meth:`reject_join`, :meth:`get_members`,
    :meth:`get_member_info`, :meth:`get_quorum_size`, :meth:`has_quorum`,
    :meth:`update_member_status`, ``subscribe`` / ``unsubscribe``; plus
    :meth:`get_quorum`, :meth:`request_join`, :meth:`update_reachability`
    and :meth:`view`. Operations that change a member return its info as a
    dict; refused ones raise ValidationFailed (``IllegalTransition``, or
    ``MemberNotFound`` with code ``not_found``) and change nothing.
    """

    component = "membership"

    # ------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        founders = [v for v in self.voters if v != self.node_id] if self.join else self.voters
        self.membership = MembershipView.founded(self.node_id, founders,
                                                 configured_quorum=self.options.quorum)
        self.rng = random.Random(f"{self.cluster}:{self.node_id}")
        self.merged = 0
        self._digest = self.membership.digest()
        self._quorum = self._local_quorum().has_quorum
        self._monitored: list[str] = []
        self._sync_peers()
        self.every(self.options.heartbeat_interval / 1000, self._gossip_round)

    # ---------------------------------------------------------------- gossip
    def _gossip_targets(self) -> list[str]:
        return [info.node for info in self.membership.members()
                if info.status in GOSSIP_STATUSES and info.node != self.node_id]

    def _message(self) -> dict[str, Any]:
        return {"type": "view", "src": self.node_id, "digest": self._digest, "view": self.membership.to_dict()}

    def _gossip_round(self) -> None:
        targets = self._gossip_targets()
        if len(targets) > GOSSIP_FANOUT:
            targets = self.rng.sample(targets, GOSSIP_FANOUT)
        self._gossip_to(targets)

    def _gossip_to(self, peers: list[str]) -> None:
        if not peers:
            return
        message = self._message()
        for peer in peers:
            self.transport.send_batch(peer, [message])

    async def receive(self, cluster: Any, src: Any, messages: Any) -> None:
        """Views gossiped by ``src``: merge each; answer with ours if we know more.
        Dropped and counted in ``transport`` of :meth:`gossip_stats`: a batch from
        a node this view does not list as joining, up, leaving or exiting
        (``dropped_non_member``), a message naming another sender
        (``dropped_spoofed``), a malformed message or view (``dropped_malformed``);
        see :mod:`~cluster_actors.core.peer_checks`."""
        if not self.started:
            return
        accepted = self.transport.accept(
            cluster, src, messages, gossip_problem, src_of=message_src,
            is_member=lambda node: gossip_sender_allowed(self.membership, node))
        for message in accepted:
            if message["digest"] == self._digest:
                continue
            try:
                self._apply(lambda m=message: self.membership.merge_from(m["view"]),
                            push=False)
            except ValidationFailed as error:
                self.transport.stats["dropped_malformed"] += 1
                logger.debug("dropped a malformed view from %s: %s", src, error)
                continue
            self.merged += 1
            if message["digest"] != self._digest:
                self._gossip_to([src])

    # ------------------------------------------------------ applying changes
    def _apply(self, operation: Any, push: bool = True) -> Any:
        """Run a view operation, then publish what changed, re-derive the peer
        sets and quorum, and (``push``) gossip the new view to every live peer."""
        before = self._summaries()
        result = operation()
        digest = self.membership.digest()
        if digest == self._digest:
            return result
        self._digest = digest
        after = self._summaries()
        for node in sorted(set(before) | set(after)):
            old, new = before.get(node, (None, False)), after.get(node, (None, False))
            if old != new:
                self._publish(MemberChange(node, old[0], new[0], old[1], new[1]))
        self._sync_peers()
        self._recheck_quorum()
        if push:
            self._gossip_to(self._gossip_targets())
        return result

    def _recheck_quorum(self) -> None:
        quorum = self._local_quorum()
        if quorum.has_quorum != self._quorum:
            self._quorum = quorum.has_quorum
            self.events.publish("quorum_regained" if quorum.has_quorum else "quorum_lost",
                                quorum_size=quorum.quorum_size, current=quorum.current)

    def _summaries(self) -> dict[str, tuple[MemberStatus | None, bool]]:
        return {info.node: (info.status, info.unreachable)
                for info in self.membership.members(include_removed=True)}

    def _publish(self, change: MemberChange) -> None:
        info = self.membership.get_member_info(change.node)
        fields: dict[str, Any] = {"node": change.node,
                                  "reason": info.reason if info is not None else ""}
        if change.after is not None and change.after is not change.before:
            self.events.publish(_STATUS_EVENTS[change.after], status=change.after.value,
                                previous=change.before.value if change.before else None,
                                **fields)
        if change.unreachable_after != change.unreachable_before:
            self.events.publish(
                "member_unreachable" if change.unreachable_after else "member_reachable",
                unreachable_by=list(info.unreachable_by) if info is not None else [], **fields)

    def _sync_peers(self) -> None:
        """Point the transport at the live members and tell the heartbeat
        sibling which nodes to monitor when that set changed."""
        self.transport.set_peers(self._gossip_targets())
        monitored = self._monitored_nodes()
        if monitored != self._monitored:
            self._monitored = monitored
            self.run_forever(self._tell_heartbeat(monitored), "telling the heartbeat")

    def _monitored_nodes(self) -> list[str]:
        return [info.node for info in self.membership.members()
                if info.status in MONITORED_STATUSES]

    async def _tell_heartbeat(self, nodes: list[str]) -> None:
        try:
            await self.sibling("heartbeat").set_nodes.remote(nodes)
        except ClusterError:
            pass  # not up yet: it asks for monitored_nodes when it starts
        except Exception:
            self.forget_sibling("heartbeat")

    def _local_quorum(self) -> QuorumStatus:
        view = self.membership
        reachable = [v for v in view.voters()
                     if v == self.node_id or self.node_id not in view.unreachable_by(v)]
        return view.quorum(reachable)

    # ---------------------------------------------------- the seed's API
    async def join_cluster(self, seed_node: str, metadata: dict[str, Any] | None = None,
                           role: str = "voter") -> str:
        """Ask ``seed_node``'s membership to record this node's join request;
        returns ``"pending"`` until a member approves (or rejects) it."""
        self.require_started()
        if not isinstance(seed_node, str) or not seed_node or seed_node == self.node_id:
            raise ValidationFailed([("seed_node", f"must be another node's id, "
                                                  f"got {seed_node!r}")])
        try:
            seed = find_component(self.cluster, seed_node, self.component)
        except ValueError:
            raise ClusterError(f"no membership component on seed node {seed_node!r}: "
                               "give a running member") from None
        try:
            seed_view = await seed.request_join.remote(self.node_id, metadata, role)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, ClusterError):
                raise cause from None  # e.g. IllegalTransition: already a member
            raise
        self._apply(lambda: self.membership.merge_from(seed_view["view"]), push=False)
        return "pending"

    async def request_join(self, node: str, metadata: dict[str, Any] | None = None,
                           role: str = "voter") -> dict[str, Any]:
        """Record ``node``'s request to join (status joining, pending approval);
        returns ``{"status": "pending", "view": <this view>}``."""
        self.require_started()
        _node(node)
        status = self._apply(lambda: self.membership.request_join(node, metadata, role))
        return {"status": status, "view": self.membership.to_dict()}

    async def approve_join(self, node: str,
                           metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Move a pending member up (idempotent for one already up)."""
        self.require_started()
        _node(node)
        return self._info(self._apply(lambda: self.membership.approve_join(node, metadata)))

    async def reject_join(self, node: str, reason: str = "") -> dict[str, Any]:
        """Refuse a pending member: it becomes removed with ``rejected: reason``."""
        self.require_started()
        _node(node)
        return self._info(self._apply(lambda: self.membership.reject_join(node, str(reason))))

    async def leave_cluster(self, reason: str = "") -> dict[str, Any]:
        """This node starts leaving (status leaving)."""
        self.require_started()
        return self._info(self._apply(lambda: self.membership.leave(self.node_id,
                                                                    str(reason))))

    async def update_member_status(self, node: str, status: str,
                                   reason: str = "") -> dict[str, Any]:
        """Move ``node`` to ``status`` if the transition is allowed (forward only)."""
        self.require_started()
        _node(node)
        return self._info(self._apply(
            lambda: self.membership.update_member_status(node, status, str(reason))))

    async def update_reachability(self, node: str, reachable: bool) -> bool:
        """Record what this node's failure detector sees of ``node``; True if
        that changed the view. Unknown nodes and this node itself are ignored."""
        return (await self.report_reachability({_node(node): reachable})) == [node]

    async def report_reachability(self, observations: dict[str, bool]) -> list[str]:
        """Several :meth:`update_reachability` in one call; the nodes changed."""
        self.require_started()
        if not isinstance(observations, dict) or not all(
                is_node_id(node) and isinstance(reachable, bool)
                for node, reachable in observations.items()):
            raise ValidationFailed([("observations", "must map node ids to bools")])
        changed: list[str] = []

        def observe() -> None:
            for node, reachable in observations.items():
                if node == self.node_id or self.membership.get_member_info(node) is None:
                    continue
                mark = (self.membership.mark_reachable if reachable
                        else self.membership.mark_unreachable)
                if mark(node):
                    changed.append(node)

        self._apply(observe)
        return changed

    async def get_members(self) -> list[str]:
        """Node ids of the members that are joining, up or leaving (sorted)."""
        self.require_started()
        return [info.node for info in self.membership.members()
                if info.status in LISTED_STATUSES]

    async def get_members_info(self, include_removed: bool = False) -> list[dict[str, Any]]:
        """Every member's info (status, role, metadata, reachability)."""
        self.require_started()
        return [info.to_dict() for info in self.membership.members(include_removed)]

    async def get_member_info(self, node: str) -> dict[str, Any]:
        """The member's info; ``MemberNotFound`` (code ``not_found``) if unknown."""
        self.require_started()
        info = self.membership.get_member_info(_node(node))
        if info is None:
            raise MemberNotFound(node)
        return info.to_dict()

    async def set_quorum(self, quorum: int | None) -> int:
        """Use a static ``quorum`` (None: a majority of the voters), as the
        replicated config's ``quorum`` says; returns the quorum size now."""
        self.require_started()
        quorum_size(0, quorum)  # ValidationFailed for a non-positive quorum; nothing changes
        self.membership.configured_quorum = quorum
        self._recheck_quorum()
        return self.membership.quorum_size()

    async def get_quorum_size(self) -> int:
        self.require_started()
        return self.membership.quorum_size()

    async def has_quorum(self) -> bool:
        """True if this node reaches a quorum of the voters (see the module doc)."""
        self.require_started()
        return self._local_quorum().has_quorum

    async def get_quorum(self, scope: str = "local") -> tuple[bool, int, int]:
        """``(has_quorum, quorum_size, current)``; ``scope`` "local" counts the
        voters this node reaches, "cluster" those no live member marks unreachable."""
        self.require_started()
        if scope not in ("local", "cluster"):
            raise ValidationFailed([("scope", f"must be 'local' or 'cluster', got {scope!r}")])
        quorum = self._local_quorum() if scope == "local" else self.membership.quorum()
        return (quorum.has_quorum, quorum.quorum_size, quorum.current)

    async def view(self) -> dict[str, Any]:
        """The whole view as plain data (equal on replicas that have converged)."""
        self.require_started()
        return self.membership.to_dict()

    async def monitored_nodes(self) -> list[str]:
        """The nodes the heartbeat component should monitor (up, leaving, exiting)."""
        self.require_started()
        return self._monitored_nodes()

    async def gossip_stats(self) -> dict[str, Any]:
        return {"digest": self._digest, "merged": self.merged,
                "transport": dict(self.transport.stats)}

    @staticmethod
    def _info(info: MemberInfo) -> dict[str, Any]:
        return info.to_dict()
