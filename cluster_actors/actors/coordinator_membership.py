"""The coordinator's membership commands: the seed's ``join_cluster`` (with
``join_approval``, waiting for the voters' tally; with ``voters=N``, staying
a learner beyond N), ``leave_cluster``, ``get_members`` and
``get_member_info``. :class:`MembershipCommands` is a mixin of
:class:`~cluster_actors.actors.coordinator.CoordinatorActor`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.lifecycle import LifecycleEvent, NodeView
from ..core.limits import check_timeout
from ..errors import CoordinationTimeout, NoQuorum, NotFound, ValidationFailed
from ..runtime.calls import bounded, task_cause
from ..runtime.hosting import find_component
from .coordinator_observe import PING_TIMEOUT

logger = logging.getLogger(__name__)

E = LifecycleEvent


class MembershipCommands:
    """Mixin: joining, leaving and the member list (see the module doc)."""

    # provided by the coordinator
    cluster: str
    node_id: str
    options: Any
    events: Any
    lifecycle: Any
    view: NodeView
    quorum_setting: int | None
    _fire: Callable[..., dict[str, Any]]
    _refresh: Callable[..., Awaitable[None]]
    _ask: Callable[..., Awaitable[Any]]
    _resolve_peer: Callable[[str], Any]
    _leader_handle: Callable[..., Awaitable[tuple[str, Any]]]
    _hand_off_leadership: Callable[..., Awaitable[None]]
    _commit_approval: Callable[..., Awaitable[dict[str, Any]]]
    _is_member: Callable[[], bool]

    async def join_cluster(self, seed_nodes: list[str], timeout: float = 30.0) -> dict[str, Any]:
        """Join the cluster the ``seed_nodes`` belong to (a node started with ``join``).

        The leader (found through the seeds' consensus actors) adds this node
        as a learner, then promotes it to voter once it has caught up (unless
        ``ClusterOptions(voters=N)`` has N voters already: it stays a learner,
        a spare autopilot promotes when a voter stays down). With
        ``join_approval`` the join first waits for a quorum of the voters'
        ``approve_join``. When
        the membership component runs, the join is also requested there and
        approved on the leader's node (best effort: the Raft configuration is
        the authority on who is a member). Lifecycle forming → joining → stable/degraded; a failure fires
        join_rejected (→ forming) and re-raises. A node that already is a
        member returns at once with nothing changed.
        """
        await self._refresh()
        if self._is_member():
            return {"joined": False, "member": True, "voters": self.view.voters}
        if not seed_nodes:
            raise ValidationFailed([("seed_nodes", "name at least one node of the cluster")])
        deadline = time.monotonic() + timeout
        self._fire(E.SEED_CONNECTED)
        await self._ask("membership", "join_cluster", seed_nodes[0])
        try:
            leader, handle = await self._leader_among(list(seed_nodes), deadline)
            if self.options.join_approval:
                await self._await_join_approval(leader, handle, deadline)
            await bounded(handle.change_membership.remote([("add_learner", self.node_id)]),
                          timeout)
            await self._wait_caught_up(leader, handle, deadline)
            voters = (await bounded(handle.status.remote()))["voters"]
            # with ClusterOptions(voters=N) a node beyond N stays a learner (autopilot)
            role = "add_voter" if self.options.voters is None or \
                len(voters) < self.options.voters else "add_learner"
            result = await bounded(handle.change_membership.remote(
                [(role, self.node_id)]), max(0.1, deadline - time.monotonic()))
        except BaseException as error:
            if self.lifecycle.can_fire(E.JOIN_REJECTED):
                self._fire(E.JOIN_REJECTED, reason=str(task_cause(error)))
            raise task_cause(error) from None
        await self._approve_membership(leader)
        await self._refresh()
        return {"joined": True, "member": True, "voters": result["voters"]}

    async def _await_join_approval(self, leader: str, handle: Any, deadline: float) -> None:
        """Propose this node's join to the voters (``join_approval``) and wait for
        their tally: returns once approved; a rejection raises ValidationFailed,
        no decision by ``deadline`` CoordinationTimeout."""
        status = await bounded(handle.status.remote())
        me = self.node_id
        action = {"action": "propose", "kind": "join", "subject": me, "proposer": me,
                  "electorate": sorted(status["voters"]), "quorum": self.quorum_setting}

        def propose(sm: Any) -> tuple[str, dict[str, Any]]:
            current = sm.approvals.join_of(me)
            if current is not None and current.status == "pending":
                return "approval", {"action": "withdraw", "id": current.id,
                                    "reason": "proposed again"}
            return "approval", action

        self.view.leader = leader
        result = await self._commit_approval(propose, max(0.1, deadline - time.monotonic()))
        if result["proposal"]["kind"] != "join" or result["proposal"]["subject"] != me \
                or result["proposal"]["status"] != "pending":
            result = await self._commit_approval(propose, max(0.1, deadline - time.monotonic()))
        self.events.publish("join_proposed", node=me, id=result["proposal"]["id"])
        while True:
            decided = await bounded(handle.query_state.remote(
                lambda sm: (p := sm.approvals.join_of(me)) and p.to_dict()))
            if decided and decided["status"] == "approved":
                return
            if decided and decided["status"] == "rejected":
                raise ValidationFailed([("join", f"the voters rejected {me}'s join "
                                                 f"({', '.join(decided['rejections'])})")])
            if time.monotonic() > deadline:
                raise CoordinationTimeout(f"the join of {me} was not approved in time: approve "
                                          f"it with approve_join({me!r}) on a quorum of voters")
            await asyncio.sleep(0.1)

    async def _approve_membership(self, leader: str) -> None:
        """Best effort: mark the join approved in the membership view (when the
        membership component runs; its gossip carries it everywhere)."""
        try:
            handle = find_component(self.cluster, leader, "membership")
            await bounded(handle.approve_join.remote(self.node_id))
        except Exception as error:
            logger.info("coordinator of %s: membership approval skipped: %s", self.node_id,
                        task_cause(error))

    async def leave_cluster(self, reason: str = "", timeout: float = 30.0) -> None:
        """Leave the cluster: draining (the membership view marks the node
        leaving; a leader hands off first), the leader removes this node from
        the voters, then shutdown. The actors keep
        running (shut the node down separately). Needs a leader and quorum:
        raises :class:`NoQuorum` before changing anything otherwise."""
        timeout = check_timeout(timeout)
        await self._refresh()
        if not self.view.quorum[0] or not self.view.has_leader:
            raise NoQuorum("cannot leave now: no leader or no quorum to approve the removal; "
                           "restore the cluster first")
        self._fire(E.LEAVE_REQUESTED, reason=reason or "leave_cluster")
        await self._ask("membership", "leave_cluster", reason)
        await self._hand_off_leadership()
        deadline = time.monotonic() + timeout
        _, handle = await self._leader_handle(deadline)
        await bounded(handle.change_membership.remote([("remove", self.node_id)]), timeout)
        self._fire(E.DRAIN_COMPLETE, reason=reason or "leave_cluster")

    async def get_members(self) -> list[str]:
        """Voters and learners of the Raft configuration (the authority on who is in)."""
        return sorted(set(self.view.voters) | set(self.view.learners))

    async def get_member_info(self, node: str) -> dict[str, Any]:
        """Role, reachability, leadership and replication progress of ``node``;
        raises :class:`NotFound` (``not_found``) for a node that is not a member."""
        await self._refresh()
        view = self.view
        if node not in view.voters and node not in view.learners:
            raise NotFound(f"{node!r} is not a member; members: "
                           f"{', '.join(await self.get_members())}")
        info: dict[str, Any] = {
            "node": node, "role": "voter" if node in view.voters else "learner",
            "is_leader": node == view.leader, "reachable": node in view.reachable,
            "progress": (view.status.get("progress") or {}).get(node)}
        membership = await self._ask("membership", "get_member_info", node)
        if membership is not None:
            info["membership"] = membership
        return info

    async def _leader_among(self, nodes: list[str], deadline: float) -> tuple[str, Any]:
        while True:
            for node in nodes:
                handle = self._resolve_peer(node)
                if handle is None:
                    continue
                try:
                    leader = await bounded(handle.get_leader.remote(), PING_TIMEOUT)
                except Exception:
                    continue
                target = leader and self._resolve_peer(leader)
                if target is not None:
                    return leader, target
            if time.monotonic() > deadline:
                raise NoQuorum(f"none of {nodes} knows a leader; check the seed nodes")
            await asyncio.sleep(0.05)

    async def _wait_caught_up(self, leader: str, handle: Any, deadline: float) -> None:
        while time.monotonic() < deadline:
            status = await bounded(handle.status.remote())
            progress = (status.get("progress") or {}).get(self.node_id)
            if progress and progress["match"] >= status["commit"]:
                return
            await asyncio.sleep(0.05)
        raise CoordinationTimeout(f"{self.node_id} did not catch up with {leader} in time")
