"""The consensus component: a thin Ray shell around the pure Raft core.

It owns one :class:`~cluster_actors.core.raft.RaftNode`, drives ``tick()``
from a timer, feeds it the message batches peers send, and carries out each
``Ready`` in the contract's order: persist to SQLite, then send (one Ray call
per peer), then apply to the replicated state machine and answer clients.

Client commands arrive in batches (:meth:`ConsensusActor.submit`); commands
and messages that arrive in the same event-loop turn are handled by one
``Ready``, so a burst of proposals becomes one append per follower. When the
transport sees the leader's actor die, the follower forgets the leader's
lease and campaigns after a short randomized delay: failover takes
milliseconds plus one pre-vote and one vote round trip, not an election
timeout.

Writes on a follower raise :class:`~cluster_actors.errors.NotLeader` naming
the leader; the client library redirects (it does not forward).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import ray

import strategies

from ..core.cluster_state import ClusterStateMachine
from ..core.kv import Command
from ..core.raft import ProposalDropped, RaftNode
from ..core.raft_types import (
    ConfChange,
    ConfChangeType,
    EntryKind,
    Ready,
    Role,
    validate_message,
)
from ..errors import ClusterError, CoordinationTimeout, NotLeader, ValidationFailed
from ..options import ClusterOptions
from ..runtime.events import EventStream
from ..runtime.hosting import find_component
from ..runtime.leases import LeaseManager
from ..runtime.storage import RaftStorage, node_database_path
from ..runtime.supervisor import SupervisedActor
from ..runtime.transport import FaultFilter, Transport
from ..telemetry import SPAN_ELECTION, configure_tracing_from_options, start_span
from .monitor import task_cause

logger = logging.getLogger(__name__)


class ConsensusCore:
    """Everything of the consensus component except the Ray actor wrapper,
    so the ``per_node`` placement can host it inside another actor."""

    def __init__(self, cluster: str, node_id: str, voters: list[str],
                 options: dict[str, Any], initial_config: dict[str, Any] | None = None,
                 join: bool = False) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.initial_voters = list(voters)
        self.options = ClusterOptions.parse(options)
        self.initial_config = initial_config
        self.join = join
        self.events = EventStream(f"{node_id}:consensus")
        self.stats: Counter[str] = Counter()
        self.timings: Counter[str] = Counter()  # seconds spent per phase of the Ready loop
        self._waiters: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._reads: dict[int, tuple[asyncio.Future[int], float]] = {}
        self._read_ids = itertools.count(1)
        self.propose_seq = itertools.count(1)
        self._process_scheduled = False
        self._tick_task: asyncio.Task[None] | None = None
        self._commit_latencies: list[float] = []
        self._propose_times: dict[tuple[str, int], float] = {}
        self.leader_changes = 0
        self._campaign_started_ns: int | None = None  # this node campaigns since then
        self.started_at = time.time()
        self.raft: RaftNode | None = None  # type: ignore[assignment]
        self.leases = LeaseManager(self)  # leases: the leader's expiry clock, keepalives
        self._faults_at_start = FaultFilter()

    @property
    def started(self) -> bool:
        return self.raft is not None

    def require_started(self) -> None:
        if self.raft is None:
            raise NotLeader(self.node_id, None, f"node {self.node_id!r} is still starting; "
                            "retry in a moment")

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        configure_tracing_from_options(self.options)
        self.storage = RaftStorage(
            node_database_path(self.options.data_root(), self.cluster, self.node_id),
            synchronous="FULL" if self.options.fsync else "NORMAL",
            cluster_id=self.cluster, node_id=self.node_id)
        rng = random.Random(hash((self.node_id, time.time_ns())))
        raft_options = self.options.raft_options()
        # installed plug-ins count as known strategy names (the same on every node)
        self.sm = ClusterStateMachine(
            self.initial_config, known_strategies=strategies.known_strategies(),
            min_election_timeout=3 * self.options.raft_heartbeat_ms)
        if self.storage.is_empty():
            voters = [] if self.join else self.initial_voters
            self.raft = RaftNode.bootstrap(self.node_id, voters, options=raft_options, rng=rng)
            recovered = False
        else:
            state = self.storage.load()
            self.raft = RaftNode(self.node_id, hard_state=state.hard_state,
                                 snapshot=state.snapshot, entries=state.entries,
                                 options=raft_options, rng=rng)
            self.sm.restore(state.snapshot.data)
            recovered = True
        self._adopt_election_timeout()
        self.transport = Transport(self.cluster, self.node_id, "consensus",
                                   self._peers(), on_peer_death=self._peer_died,
                                   data_plane=self.options.data_plane, receiver=self.receive,
                                   policy="drop")
        self.transport.faults = self._faults_at_start
        self._process()
        self.events.publish("started", recovered=recovered, term=self.raft.term,
                            commit=self.raft.commit, last_index=self.raft.log.last_index)
        self._tick_task = asyncio.get_running_loop().create_task(self._tick_loop())

    def _adopt_election_timeout(self) -> None:
        """Raft's election timeout follows the replicated config (a hot reload: the
        next timer reset uses it). Raft's safety does not depend on timeouts, so
        nodes adopting it at different moments is harmless."""
        ms = self.sm.config.get("election_timeout")
        options = self.raft.options
        ticks = max(options.heartbeat_tick + 1, round(ms / self.options.tick_ms))
        if ticks != options.election_tick:
            self.raft.options = dataclasses.replace(options, election_tick=ticks)
            self.events.publish("election_timeout_changed", election_timeout_ms=ms,
                                election_tick=ticks)

    async def stop(self) -> None:
        if self.raft is None:
            return
        if self._tick_task:
            self._tick_task.cancel()
        self.transport.close()
        self._fail_waiters(NotLeader(self.node_id, None, "the node is stopping; retry on "
                                     "another node"))
        self.storage.close()

    def _peers(self) -> set[str]:
        return set(self.raft.conf.members) | set(self.initial_voters)

    async def _tick_loop(self) -> None:
        interval = self.options.tick_ms / 1000
        next_tick = time.monotonic()
        while True:
            next_tick += interval
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            if time.monotonic() - next_tick > 10 * interval:
                next_tick = time.monotonic()  # we were paused: do not catch up in a burst
            self.raft.tick()
            self._expire_reads()
            self.leases.tick(time.monotonic())
            self._process()

    # ------------------------------------------------------------- messages
    def receive(self, cluster: Any, src: Any, messages: Any) -> None:
        if self.raft is None:
            return  # still starting: peers retransmit
        started = time.perf_counter()
        for message in self.transport.accept(cluster, src, messages, self._validate):
            self.raft.step(message)
        self.timings["step_s"] += time.perf_counter() - started
        self.timings["batches_in"] += 1
        self._schedule_process()

    def _validate(self, message: Any) -> str | None:
        reason = validate_message(message)
        if reason is None and message.dst != self.node_id:
            reason = f"addressed to {message.dst!r}"
        return reason

    def _peer_died(self, peer: str) -> None:
        self.events.publish("peer_died", peer=peer, leader=self.raft.lead)
        if peer == self.raft.lead and self.raft.role is not Role.LEADER:
            self.raft.report_leader_lost()
            self._schedule_process()

    # --------------------------------------------------------------- clients
    async def submit_config(self, prepare: Callable[[Any], Any], client_id: str, seq: int,
                            timeout: float = 5.0) -> tuple[int, Any]:
        """Leader only: ``prepare(config_store)`` here (a ValidationFailed leaves
        nothing proposed), then commit the record as the session command
        ``(client_id, seq)``: ``(the record's version, the apply result)``. One
        call instead of a prepare and a submit; a retry with the same ``seq`` is
        applied at most once, whatever it prepares."""
        self.require_started()
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, self.raft.lead)
        record = prepare(self.sm.config)
        command = Command(client_id, seq, ("config", record.model_dump(mode="json")), seq)
        [result] = await self.submit([command], timeout)
        return record.version, result

    async def submit(self, commands: list[Command], timeout: float = 5.0) -> list[Any]:
        """Propose a batch of commands; results in the same order once applied."""
        self.require_started()
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, self.raft.lead)
        loop = asyncio.get_running_loop()
        futures = []
        now = time.perf_counter()
        for command in commands:
            key = (command.client_id, command.seq)
            future = self._waiters.get(key)
            if future is None or future.done():
                future = self._waiters[key] = loop.create_future()
            futures.append(future)
            self._propose_times.setdefault(key, now)
        try:
            self.raft.propose_batch(commands)
        except ProposalDropped:
            for command in commands:
                self._waiters.pop((command.client_id, command.seq), None)
            raise
        self.stats["proposed"] += len(commands)
        self._schedule_process()
        try:
            return await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except asyncio.TimeoutError:
            raise CoordinationTimeout(
                f"{len(commands)} command(s) not applied within {timeout} s on leader "
                f"{self.node_id}: the outcome is unknown; retry with the same sequence "
                f"numbers (they are applied at most once)") from None
        finally:
            for command in commands:
                key = (command.client_id, command.seq)
                if self._waiters.get(key) is not None and self._waiters[key].done():
                    del self._waiters[key]

    async def read(self, keys: list[str], timeout: float = 5.0) -> list[Any]:
        """Linearizable reads (ReadIndex): the values of ``keys`` as KeyValue or None."""
        await self._confirm_read(timeout)
        return [self.sm.get(key) for key in keys]

    async def read_prefix(self, prefix: str, timeout: float = 5.0) -> list[Any]:
        """A linearizable read (ReadIndex) of every record whose key starts with
        ``prefix``, in key order, answered by this leader once confirmed."""
        if not isinstance(prefix, str):
            raise ValidationFailed([("prefix", f"must be a string, got {type(prefix).__name__}")])
        await self._confirm_read(timeout)
        return self.sm.range(prefix)

    async def _confirm_read(self, timeout: float) -> None:
        """Return once a quorum confirmed this node still leads and it applied
        everything committed when the read arrived (Raft's ReadIndex); raises
        NotLeader on a follower and CoordinationTimeout when not confirmed in time."""
        self.require_started()
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, self.raft.lead)
        context = next(self._read_ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[context] = (future, time.monotonic() + timeout)
        self.raft.read_index(context)
        self._schedule_process()
        try:
            await future
        finally:
            self._reads.pop(context, None)

    def _expire_reads(self) -> None:
        now = time.monotonic()
        for context, (future, deadline) in list(self._reads.items()):
            if now > deadline and not future.done():
                future.set_exception(CoordinationTimeout(
                    f"read not confirmed by a quorum within its timeout on {self.node_id}"))
                del self._reads[context]

    # ---------------------------------------------------------- the Ready loop
    def _schedule_process(self) -> None:
        if not self._process_scheduled:
            self._process_scheduled = True
            asyncio.get_running_loop().call_soon(self._process)

    def _process(self) -> None:
        self._process_scheduled = False
        ready = self.raft.ready()
        if ready.is_empty():
            return
        timings = self.timings
        t0 = time.perf_counter()
        early, late = ready.split_messages()
        if early:
            self.transport.send(early)  # followers write their disks while we write ours
        t1 = time.perf_counter()
        if ready.must_persist():
            self.storage.persist(ready)
        t2 = time.perf_counter()
        if late:
            self.transport.send(late)
        t3 = time.perf_counter()
        self._apply(ready)
        self.leases.after_apply()
        t4 = time.perf_counter()
        timings["send_s"] += (t1 - t0) + (t3 - t2)
        timings["persist_s"] += t2 - t1
        timings["apply_s"] += t4 - t3
        timings["readies"] += 1
        if (self.raft.applied - self.raft.log.snapshot.index >= self.options.snapshot_every
                and self.sm.applied_index == self.raft.applied):
            self.raft.compact(self.sm.snapshot())
            self._schedule_process()

    def _apply(self, ready: Ready) -> None:
        if ready.snapshot is not None and ready.restore_snapshot:
            self.sm.restore(ready.snapshot.data)  # a config it brings is a config change
            self.events.publish("snapshot_installed", index=ready.snapshot.index)
        now = time.perf_counter()
        conf_changed = False
        for entry in ready.committed_entries:
            if entry.index <= self.sm.applied_index:
                continue
            result, _duplicate = self.sm.apply(entry)
            if entry.kind is EntryKind.CONFIG:
                conf_changed = True
            elif isinstance(entry.data, Command):
                key = (entry.data.client_id, entry.data.seq)
                started = self._propose_times.pop(key, None)
                if started is not None:
                    self._commit_latencies.append(now - started)
                    if len(self._commit_latencies) > 10_000:
                        del self._commit_latencies[:5_000]
                future = self._waiters.get(key)
                if future is not None and not future.done():
                    future.set_result(result)
        self.stats["applied"] += len(ready.committed_entries)
        for change in self.sm.take_config_changes():
            if "election_timeout" in change.changed_keys:
                self._adopt_election_timeout()
            self.events.publish("config_changed", version=change.version,
                                kind=change.kind.value, changed_keys=list(change.changed_keys))
        if conf_changed:
            self.transport.set_peers(self._peers())
            self.events.publish("membership_changed", voters=sorted(self.raft.conf.voters),
                                learners=sorted(self.raft.conf.learners))
        for read_state in ready.read_states:
            pending = self._reads.get(read_state.context)
            if pending is not None and not pending[0].done():
                pending[0].set_result(read_state.index)
        if ready.soft_state is not None:
            self._on_soft_state(ready)

    def _on_soft_state(self, ready: Ready) -> None:
        soft = ready.soft_state
        assert soft is not None
        self.leader_changes += 1
        self.events.publish("leader_changed", leader=soft.leader, role=soft.role.value,
                            term=self.raft.term)
        self._trace_campaign(soft.role, soft.leader)
        if soft.role is not Role.LEADER:
            self._fail_waiters(NotLeader(self.node_id, soft.leader))

    def _trace_campaign(self, role: Role, leader: str | None) -> None:
        """One election span per campaign of this node: from the first (pre-)vote
        request to winning (``outcome="won"``) or following another leader
        (``"lost"``); a leadership taken without a campaign seen here (a single
        voter, a transfer) is a span of its own moment."""
        now = time.time_ns()
        if role in (Role.PRE_CANDIDATE, Role.CANDIDATE):
            if self._campaign_started_ns is None:
                self._campaign_started_ns = now
            return
        started, self._campaign_started_ns = self._campaign_started_ns, None
        if role is Role.LEADER or started is not None:
            start_span(SPAN_ELECTION, started or now, node=self.node_id, term=self.raft.term,
                       outcome="won" if role is Role.LEADER else "lost",
                       leader=leader).end(now)

    def _fail_waiters(self, error: Exception) -> None:
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(error)
        self._waiters.clear()
        self._propose_times.clear()
        for future, _deadline in self._reads.values():
            if not future.done():
                future.set_exception(error)
        self._reads.clear()

    # ---------------------------------------------------------- admin calls
    def status(self) -> dict[str, Any]:
        if self.raft is None:
            return {"id": self.node_id, "role": "starting", "term": 0, "leader": None,
                    "commit": 0, "applied": 0, "last_index": 0, "voters": [],
                    "learners": [], "state_hash": None}
        status = self.raft.status()
        latencies = sorted(self._commit_latencies[-2000:])
        status.update({
            "cluster": self.cluster, "revision": self.sm.revision,
            "state_hash": self.sm.state_hash(), "config_version": self.sm.config.version,
            "transport": dict(self.transport.stats), "faults": self.transport.faults.describe(),
            "peers_down": sorted(self.transport.peers - set(self.transport.handles)),
            "stats": dict(self.stats), "leader_changes": self.leader_changes,
            "timings": dict(self.timings),
            "election_timeout_ms": self.raft.options.election_tick * self.options.tick_ms,
            "commit_latency_p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else None,
            "commit_latency_p99_ms": (latencies[int(len(latencies) * 0.99)] * 1000
                                      if latencies else None),
            "pid": os.getpid(), "ray_node_id": ray.get_runtime_context().get_node_id(),
        })
        return status

    def force_election(self) -> None:
        self.require_started()
        self.raft.force_election()
        self._schedule_process()

    def step_down(self, successor: str | None = None) -> str | None:
        self.require_started()
        target = self.raft.step_down(successor)
        self._schedule_process()
        return target

    def transfer_leadership(self, target: str) -> None:
        self.require_started()
        self.raft.transfer_leadership(target)
        self._schedule_process()

    async def change_membership(self, changes: list[tuple[str, str]],
                                timeout: float = 10.0) -> dict[str, Any]:
        """Apply membership changes (``("add_voter"|"add_learner"|"remove", node)``)
        through joint consensus; returns the new configuration once applied."""
        change = ConfChange(tuple((ConfChangeType(kind), node) for kind, node in changes))
        self.require_started()
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, self.raft.lead)
        index = self.raft.propose_conf_change(change)
        self._schedule_process()
        deadline = time.monotonic() + timeout
        while self.raft.applied < index or self.raft.conf.joint:
            if time.monotonic() > deadline:
                raise CoordinationTimeout(f"membership change {changes} not applied within "
                                          f"{timeout} s")
            await asyncio.sleep(self.options.tick_ms / 1000)
        return {"voters": sorted(self.raft.conf.voters),
                "learners": sorted(self.raft.conf.learners)}

    def set_faults(self, blocked: list[str] | None = None, drop_rate: float = 0.0,
                   delay_ms: float = 0.0) -> dict[str, Any]:
        """Chaos filter for this node's Raft messages; a node still starting
        (restarted inside a partition) applies it as soon as it starts."""
        faults = FaultFilter(set(blocked or ()), drop_rate, delay_ms)
        if self.raft is None:
            self._faults_at_start = faults
        else:
            self.transport.faults = faults
        return faults.describe()

    def snapshot_now(self) -> int:
        """Compact the log at the applied index now (the seed's snapshotting)."""
        self.require_started()
        if self.sm.applied_index == self.raft.applied:
            self.raft.compact(self.sm.snapshot())
            self._schedule_process()
        return self.raft.log.snapshot.index

    def kv_items(self, prefix: str = "") -> list[Any]:
        self.require_started()
        return self.sm.range(prefix)

    def config_store(self) -> Any:
        self.require_started()
        return self.sm.config

    def query_config(self, query: Callable[[Any], Any]) -> Any:
        """``query(store)`` on this node's replicated config store: the store,
        which keeps up to ``max_history`` versions, stays here and only the
        answer travels. Errors of ``query`` (e.g. ValidationFailed) propagate."""
        self.require_started()
        return query(self.sm.config)

    def log_entries(self, start: int = 0) -> dict[str, Any]:
        """This node's log (for offline invariant checks in chaos runs)."""
        self.require_started()
        log = self.raft.log
        first = max(start, log.first_index)
        entries = log.entries_from(first) if first <= log.last_index else []
        return {"snapshot_index": log.snapshot.index, "snapshot_term": log.snapshot.term,
                "commit": self.raft.commit, "term": self.raft.term,
                "entries": [(e.index, e.term, e.kind.value, e.data) for e in entries]}


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

    async def read(self, keys: list[str], timeout: float = 5.0) -> list[Any]:
        return await self.core.read(keys, timeout)

    async def read_prefix(self, prefix: str, timeout: float = 5.0) -> list[Any]:
        return await self.core.read_prefix(prefix, timeout)

    async def status(self) -> dict[str, Any]:
        return self.core.status()

    async def leadership(self) -> dict[str, Any]:
        """``role``, ``term`` and ``leader`` only: a cheap call to poll."""
        raft = self.core.raft
        if raft is None:
            return {"role": "starting", "term": 0, "leader": None}
        return {"role": raft.role.value, "term": raft.term, "leader": raft.lead}

    async def events(self, since: int = 0) -> list[dict[str, Any]]:
        return self.core.events.since(since)

    async def wait_events(self, since: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        return await self.core.events.wait(since, timeout)

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
            command = Command(f"propose-{self.core.node_id}-{os.getpid()}",
                              next(self.core.propose_seq), tuple(command))
        [result] = await self.core.submit([command], timeout)
        return {"ref": (command.client_id, command.seq), "result": result}

    async def vote(self, proposal_id: int, vote: bool, voter: str | None = None
                   ) -> int | None:
        """The seed's vote on a proposal. Raft decides log entries by replication;
        the proposals that wait for a vote are config changes made with
        ``require_approval``, which wait on this node's coordinator: the vote is
        its ``approve_config(proposal_id, vote)`` (the committed version, or None
        when rejected). ``voter`` is recorded in the decision event."""
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
