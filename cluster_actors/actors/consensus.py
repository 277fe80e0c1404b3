"""The consensus component as a supervised Ray actor: a thin shell that hands
every call to its :class:`~.consensus_core.ConsensusCore` (the Ready loop,
peer messages, fail-stop; client commands in :mod:`.consensus_commands`) and
offers the seed's Consensus Module API. A ``per_node`` host runs the same
core inside its one actor.

Writes on a follower raise :class:`~cluster_actors.errors.NotLeader` naming
the leader; the client library redirects (it does not forward).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import ray

from ..core.kv import Command, InvalidCommand, shown
from ..core.limits import check_seq, check_timeout
from ..errors import ClusterError, ValidationFailed
from ..runtime.calls import task_cause
from ..runtime.hosting import find_component
from ..runtime.supervisor import SupervisedActor
from .consensus_core import ConsensusCore


@ray.remote(num_cpus=0, max_restarts=0)
class ConsensusActor(SupervisedActor):
    """The consensus component of one node, as a supervised async Ray actor.

    Besides the protocol calls it offers the seed's Consensus Module API:
    ``propose``, ``vote``, ``get_leader``, ``get_status``, ``force_election``,
    ``step_down``, ``get_current_term``, ``subscribe``, ``unsubscribe``.
    """

    def __init__(self, cluster: str, node_id: str, voters: list[str],
                 options: dict[str, Any], initial_config: dict[str, Any] | None = None,
                 join: bool = False) -> None:
        self.core = ConsensusCore(cluster, node_id, voters, options, initial_config, join)
        self.core.on_fatal = self.crash

    def on_crash(self) -> None:
        self.core.halt("the actor crashed")

    async def on_activate(self) -> None:
        await self.core.start()

    async def on_stop(self) -> None:
        await self.core.stop()

    # protocol ------------------------------------------------------------
    async def receive(self, cluster: Any, src: Any, messages: Any) -> None:
        self.core.receive(cluster, src, messages)

    async def submit(self, commands: list[Command], timeout: float = 5.0) -> list[Any]:
        return await self.core.submit(commands, timeout)

    async def submit_config(self, prepare: Callable[[Any], Any], client_id: str, seq: int,
                            timeout: float = 5.0) -> tuple[int, Any]:
        return await self.core.submit_config(prepare, client_id, seq, timeout)

    async def submit_internal(self, prepare: Callable[[Any], Any], client_id: str, seq: int,
                              timeout: float = 5.0) -> Any:
        return await self.core.submit_internal(prepare, client_id, seq, timeout)

    async def query_state(self, query: Callable[[Any], Any]) -> Any:
        return self.core.query_state(query)

    async def read_state(self, query: Callable[[Any], Any], timeout: float = 5.0) -> Any:
        return await self.core.read_state(query, timeout)

    async def read(self, keys: list[str], timeout: float = 5.0) -> list[Any]:
        return await self.core.read(keys, timeout)

    async def read_prefix(self, prefix: str, timeout: float = 5.0) -> list[Any]:
        return await self.core.read_prefix(prefix, timeout)

    async def read_range(self, start: str, end: str | None = None, limit: int | None = None,
                         revision: int | None = None, timeout: float = 5.0) -> Any:
        return await self.core.read_range(start, end, limit, revision, timeout)

    async def watch_events(self, start: str, end: str | None, after_revision: int | None,
                           timeout: float = 5.0, limit: int | None = None) -> dict[str, Any]:
        return await self.core.watch_events(start, end, after_revision, timeout, limit)

    async def status(self) -> dict[str, Any]:
        return self.core.status()

    async def identity(self) -> dict[str, Any] | None:
        """What this node's storage holds (``state``, ``cluster_id``), for a
        peer deciding how to start; None while it is not open yet."""
        return self.core.identity()

    async def leadership(self) -> dict[str, Any]:
        """``role``, ``term`` and ``leader``, a cheap call to poll, and
        ``latest_event_seq`` as that method answers it: follow ``wait_events``
        from there to miss no change after this answer."""
        raft = self.core.raft
        seq = self.core.events.seq
        if raft is None:
            return {"role": "starting", "term": 0, "leader": None,
                    "latest_event_seq": seq}
        return {"role": raft.role.value, "term": raft.term, "leader": raft.lead,
                "latest_event_seq": seq}

    async def events_since(self, since: int = 0) -> list[dict[str, Any]]:
        return self.core.events.since(check_seq(since))

    async def wait_events(self, since: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        return await self.core.events.wait(check_seq(since), check_timeout(timeout))

    async def set_faults(self, blocked: list[str] | None = None, drop_rate: float = 0.0,
                         delay_ms: float = 0.0) -> dict[str, Any]:
        return self.core.set_faults(blocked, drop_rate, delay_ms)

    async def transfer_leadership(self, target: str) -> None:
        self.core.transfer_leadership(target)

    async def set_election_bias(self, factor: float) -> float:
        """Scale this node's randomized election timeout by ``factor`` in (0, 1]
        (the failover strategy's bias: a preferred node campaigns sooner)."""
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or \
                not 0.0 < factor <= 1.0:
            raise ValidationFailed([("factor", f"must be in (0, 1], got {factor!r}")])
        self.core.require_started()
        self.core.raft.timeout_scale = float(factor)
        return float(factor)

    async def change_membership(self, changes: list[tuple[str, str]],
                                timeout: float = 10.0) -> dict[str, Any]:
        return await self.core.change_membership(changes, timeout)

    async def snapshot_now(self) -> int:
        return self.core.snapshot_now()

    async def kv_items(self, prefix: str = "") -> list[Any]:
        return self.core.kv_items(prefix)

    async def config_store(self) -> Any:
        return self.core.config_store()

    async def query_config(self, query: Callable[[Any], Any]) -> Any:
        return self.core.query_config(query)

    async def log_entries(self, start: int = 0) -> dict[str, Any]:
        return self.core.log_entries(start)

    # the seed's Consensus Module API --------------------------------------
    async def propose(self, command: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Propose one kv operation tuple (or a Command); returns its result."""
        if not isinstance(command, Command):
            if not isinstance(command, (tuple, list)):
                raise InvalidCommand(f"propose takes an operation tuple or a Command, got "
                                     f"{type(command).__name__} {shown(command)}")
            command = Command(f"propose-{self.core.node_id}-{os.getpid()}",
                              next(self.core.propose_seq), tuple(command))
        self.core.require_started()
        self.core.check_command(command)  # refused here rather than as a result
        [result] = await self.core.submit([command], timeout)
        return {"ref": (command.client_id, command.seq), "result": result}

    async def vote(self, proposal_id: int, vote: bool, voter: str | None = None
                   ) -> int | None:
        """The seed's vote on a proposal. Raft decides log entries by replication;
        the proposals that wait for a vote are the replicated config changes made
        with ``require_approval``: the vote is this node's coordinator's
        ``approve_config(proposal_id, vote)`` (the committed version when it
        completed the quorum, else None). ``voter``, if given, must be this node."""
        try:
            coordinator = find_component(self.core.cluster, self.core.node_id, "coordinator")
        except ValueError:
            raise ClusterError(f"the coordinator of {self.core.node_id} is not running; "
                               "retry in a moment") from None
        try:
            return await coordinator.approve_config.remote(proposal_id, bool(vote), voter=voter)
        except ray.exceptions.RayTaskError as error:
            raise task_cause(error) from None

    async def get_leader(self) -> str | None:
        return self.core.raft.lead if self.core.started else None

    async def get_status(self) -> dict[str, Any]:
        return self.core.status()

    async def force_election(self) -> None:
        self.core.force_election()

    async def step_down(self, successor: str | None = None) -> str | None:
        return self.core.step_down(successor)

    async def get_current_term(self) -> int:
        self.core.require_started()
        return self.core.raft.term

    async def latest_event_seq(self) -> int:
        return self.core.events.seq

    async def subscribe(self, subscriber: Any, types: list[str] | None = None) -> None:
        """Push events (of ``types``, default all) to ``subscriber.on_event(event)``
        (a Ray actor handle; anything else raises ValidationFailed)."""
        self.core.events.subscribe(subscriber, types=types)

    async def unsubscribe(self, subscriber: Any) -> bool:
        return self.core.events.unsubscribe(subscriber)

    # leases (etcd's model; see runtime/leases.py) ---------------------------
    async def lease_grant(self, ttl_ms: int, lease_id: int | None = None) -> Any:
        """Grant a lease; a LeaseResult with its id. Leader only."""
        return await self.core.leases.grant(ttl_ms, lease_id)

    async def lease_keepalive(self, lease_ids: list[int]) -> list[int | None]:
        """Extend leases (no log entry); per lease its TTL in ms, None if gone."""
        return await self.core.leases.keepalive(lease_ids)

    async def lease_revoke(self, lease_id: int) -> Any:
        """Revoke a lease and delete its keys; a LeaseResult. Leader only."""
        return await self.core.leases.revoke(lease_id)

    async def lease_time_to_live(self, lease_id: int) -> dict[str, Any] | None:
        return await self.core.leases.time_to_live(lease_id)

    async def lease_watch(self, prefix: str, known: list[tuple[str, int]] | None = None,
                          timeout: float = 5.0) -> list[Any]:
        """Long poll on the leased keys under ``prefix`` (see LeaseManager.watch)."""
        return await self.core.leases.watch(prefix, known, timeout)
