"""The consensus component's core: everything of it except the Ray actor
wrapper (:mod:`.consensus`), so the ``per_node`` placement can host it inside
another actor; the client commands are in :mod:`.consensus_commands`.

It owns one :class:`~cluster_actors.core.raft.RaftNode`, drives ``tick()``
from a timer, feeds it the message batches peers send, and carries out each
``Ready`` in the contract's order (``Ready.carry_out``, the code the simulator
runs too): send what may leave early, persist to SQLite, send the rest (one
Ray call per peer), then apply to the replicated state machine and answer
clients.

**Fail-stop.** If a persist raises (a full disk, an I/O error, a value the
storage cannot encode), if the state machine refuses an entry (a gap), or if
the tick loop dies, the node stops at once: nothing of that Ready that was
not persisted is sent, applied or acknowledged, waiting clients get
:class:`~cluster_actors.errors.NotLeader`, and the actor crashes
(:meth:`SupervisedActor.crash`) so its supervisor restarts it from its disk,
as etcd panics on a WAL write error. The Raft core must never run on
believing something is durable that is not.

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
import contextlib
import dataclasses
import itertools
import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import ray

import strategies

from ..core.bootstrap import Action, Decision, PeerReport, decide
from ..core.cluster_state import ClusterStateMachine
from ..core.kv import Command, InvalidCommand, check_key
from ..core.limits import (
    check_callable,
    check_conf_changes,
    check_faults,
    check_node_id,
    check_seq,
    check_timeout,
)
from ..core.raft import RaftNode
from ..core.raft_types import (
    ConfChange,
    ConfChangeType,
    EntryKind,
    MessageType,
    Ready,
    Role,
    validate_message,
)
from ..errors import CoordinationTimeout, NotLeader
from ..options import ClusterOptions
from ..runtime.calls import task_cause
from ..runtime.events import EventStream
from ..runtime.failstop import CrashHandler, run_forever
from ..runtime.leases import LeaseManager
from ..runtime.storage import (
    RaftStorage,
    StorageCorrupted,
    StorageError,
    node_database_path,
    volatile_storage_warning,
)
from ..runtime.transport import FaultFilter, Transport
from ..telemetry.tracing import SPAN_ELECTION, configure_tracing_from_options, start_span
from .consensus_commands import ClientCommands
from .consensus_start import (
    FIRST_RETRY,
    LONGEST_RETRY,
    PROBE_BATCH,
    Rejoin,
    claim_founding,
    probe_peers,
    registered_nodes,
    start_info,
)

logger = logging.getLogger(__name__)

#: Storage meta key: "pending" while this node rejoins after losing its storage.
REJOIN_META = "rejoin"
#: Seconds between two registry lookups prompted by senders no configuration names.
REGISTRY_RECHECK_S = 1.0


def _message_src(message: Any) -> Any:
    return message.src


class ConsensusCore(ClientCommands):
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
        self.failed: str | None = None  # why the node stopped (fail-stop), or None
        #: called once on a fatal error (the actor's ``crash``); None: raise instead
        self.on_fatal: CrashHandler | None = None
        self.bootstrap_action: str | None = None  # how it started (core/bootstrap.py)
        self.storage_warning: str | None = None
        #: the nodes the cluster's registry lists, asked again (at most once per
        #: REGISTRY_RECHECK_S) when a node no configuration here names sends
        self.registered: frozenset[str] = frozenset()
        self._registry_asked_at = -math.inf
        self._registry_task: asyncio.Task[None] | None = None
        self.refused: str | None = None  # why it refuses to start, if it does
        self.rejoin: Rejoin | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._rejoin_task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self.raft is not None

    def require_started(self) -> None:
        if self.failed is not None:
            raise NotLeader(self.node_id, None, f"node {self.node_id!r} stopped on a fatal "
                            f"error and restarts from its disk; retry on another node")
        if self.refused is not None:
            raise StorageError(self.refused)
        if self.raft is None:
            raise NotLeader(self.node_id, None, f"node {self.node_id!r} is still starting; "
                            "retry in a moment")

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Open the storage and decide how to start (core/bootstrap.py): a node
        with state resumes at once; a node with empty storage decides in the
        background once its peers answered (they start one after another), so
        it may bootstrap a new cluster, or rejoin one that exists as a learner.
        Until then ``require_started`` answers "still starting"."""
        configure_tracing_from_options(self.options)
        path = node_database_path(self.options.data_root(), self.cluster, self.node_id)
        self.storage = RaftStorage(path, synchronous="FULL" if self.options.fsync else "NORMAL",
                                   node_id=self.node_id)
        self.storage_warning = volatile_storage_warning(path.parent, self.options.fsync)
        if self.storage_warning:
            logger.warning("consensus of %s: %s", self.node_id, self.storage_warning)
        self._state_on_disk = not self.storage.is_empty()
        # installed plug-ins count as known strategy names (the same on every node)
        self.sm = ClusterStateMachine(
            self.initial_config, known_strategies=strategies.known_strategies(),
            min_election_timeout=3 * self.options.raft_heartbeat_ms)
        self.sm.history.limit = self.options.mvcc_history
        if self.join and not self._state_on_disk:  # added at runtime: join_cluster admits it
            self.bootstrap_action = "join"
            self._begin(RaftNode.bootstrap(self.node_id, [], **self._raft_kwargs()), False)
            self._start_task = asyncio.get_running_loop().create_task(self._learn_cluster_id())
            return
        info = await start_info(self.cluster, self.node_id)
        stored = self.storage.get_meta("cluster_id")
        if self._state_on_disk and stored is not None and info["fresh"] and \
                info["cluster_id"] is not None and stored != info["cluster_id"]:
            self._wipe_for_fresh_start(path)  # the driver's wipe cannot reach other machines
        if self._state_on_disk:
            # no id recorded (a node added at runtime, older files): nothing to check
            decision = decide(stored, info["cluster_id"], {}, fresh=info["fresh"]) \
                if stored is not None else Decision(Action.RESUME, None, "own state on disk")
            if decision.action is Action.REFUSE:
                self.storage.close()
                raise StorageCorrupted(f"node {self.node_id} ({path}): {decision.reason}")
            self.bootstrap_action = decision.action.value
            state = self.storage.load()
            raft = RaftNode(self.node_id, hard_state=state.hard_state, snapshot=state.snapshot,
                            entries=state.entries, **self._raft_kwargs())
            self.sm.restore(state.snapshot.data)
            self._begin(raft, True)
            if self.storage.get_meta(REJOIN_META) == "pending":  # restarted mid-rejoin
                self._start_rejoin(begin=None)
            return
        self._start_task = asyncio.get_running_loop().create_task(self._start_empty_safely(info))

    async def _learn_cluster_id(self) -> None:
        """A node added at runtime records the cluster id its peers hold."""
        delay = FIRST_RETRY
        peers = [p for p in self.initial_voters if p != self.node_id]
        while True:
            ids = {r.cluster_id for r in (await probe_peers(self.cluster, peers)).values()
                   if r is not None and r.cluster_id is not None}
            if len(ids) == 1:
                self.storage.bind_cluster(ids.pop())
                return
            await asyncio.sleep(delay)
            delay = min(LONGEST_RETRY * 10, delay * 2)

    async def _start_empty_safely(self, info: dict[str, Any]) -> None:
        try:
            await self._start_empty(info)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # never a node silently stuck "starting"
            self.refused = f"node {self.node_id} failed to start: {error}"
            logger.exception("consensus of %s: start failed", self.node_id)
            self.events.publish("start_refused", reason=str(error))

    def _start_rejoin(self, begin: Callable[[], None] | None) -> None:
        """Run :class:`Rejoin` (``begin``: start the Raft core once removed; None
        when it runs already: a node restarted mid-rejoin, its removal done)."""
        self.storage.set_meta(REJOIN_META, "pending")
        peers = set(self.initial_voters) - {self.node_id}
        self.rejoin = Rejoin(self.cluster, self.node_id, peers, self.events,
                             begin or (lambda: None), on_done=self._rejoin_done)
        if begin is None:
            self.rejoin.state = "removed"
        self._rejoin_task = asyncio.get_running_loop().create_task(self.rejoin.run())

    def _rejoin_done(self) -> None:
        self.storage.set_meta(REJOIN_META, "done")

    def _wipe_for_fresh_start(self, path: Any) -> None:
        """``Cluster.start(fresh=True)``: this node's files belong to an older
        incarnation (on a machine the driver's wipe did not reach): delete them."""
        logger.warning("consensus of %s: fresh start: deleting %s (an older incarnation, "
                       "cluster id %s)", self.node_id, path, self.storage.get_meta("cluster_id"))
        self.storage.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")
        self.storage = RaftStorage(path, synchronous=self.storage.synchronous,
                                   node_id=self.node_id)
        self._state_on_disk = False

    def _raft_kwargs(self) -> dict[str, Any]:
        return {"options": self.options.raft_options(),
                "rng": random.Random(hash((self.node_id, time.time_ns())))}

    async def _start_empty(self, info: dict[str, Any]) -> None:
        """Probe the peers until :func:`decide` answers, then bootstrap or
        rejoin; a refusal leaves the node not started, the reason in status."""
        # peers in start order; an answer is kept (an empty peer can only go on to
        # found this start's cluster or rejoin one that another peer reports)
        peers = [p for p in dict.fromkeys(self.initial_voters) if p != self.node_id]
        reports: dict[str, PeerReport | None] = dict.fromkeys(peers)
        delay = FIRST_RETRY
        while True:
            # a few at a time: the peers of a large cluster that starts are not up yet
            pending = [p for p in peers if reports[p] is None][:PROBE_BATCH]
            answers = await probe_peers(self.cluster, pending)
            progress = any(answer is not None for answer in answers.values())
            reports.update(answers)
            decision = decide(None, info["cluster_id"], reports, fresh=info["fresh"],
                              founder=info["founder"])
            if decision.action is Action.BOOTSTRAP:
                try:
                    claimed = await claim_founding(self.cluster, self.node_id)
                except Exception as error:  # the registry did not answer: ask again
                    logger.warning("consensus of %s: founding not recorded: %s",
                                   self.node_id, task_cause(error))
                    await asyncio.sleep(LONGEST_RETRY)
                    continue
                if not claimed:
                    info = {**info, "founder": False}
                    continue
            if decision.action is not Action.WAIT:
                break
            delay = FIRST_RETRY if progress else min(LONGEST_RETRY, delay * 1.5)
            await asyncio.sleep(delay)
        self.bootstrap_action = decision.action.value
        if decision.action is Action.REFUSE:
            self.refused = f"node {self.node_id} refuses to start: {decision.reason}"
            logger.error("consensus of %s: %s", self.node_id, self.refused)
            self.events.publish("start_refused", reason=decision.reason)
            return
        assert decision.cluster_id is not None
        self.storage.bind_cluster(decision.cluster_id, replace=True)
        if decision.action is Action.BOOTSTRAP:
            self._begin(RaftNode.bootstrap(self.node_id, self.initial_voters,
                                           **self._raft_kwargs()), False)
            return
        # the Raft core runs once the leader removed this node (see Rejoin)
        self._start_rejoin(lambda: self._begin(
            RaftNode.bootstrap(self.node_id, [], **self._raft_kwargs()), False))

    def _begin(self, raft: RaftNode, recovered: bool) -> None:
        """Run ``raft``: transport, the first Ready, the tick loop."""
        self.raft = raft
        self._adopt_election_timeout()
        self.transport = Transport(self.cluster, self.node_id, "consensus",
                                   self._peers(), on_peer_death=self._peer_died,
                                   data_plane=self.options.data_plane, receiver=self.receive,
                                   policy="drop", dial_early=True)
        self.transport.faults = self._faults_at_start
        self._process()
        self.events.publish("started", recovered=recovered, term=self.raft.term,
                            commit=self.raft.commit, last_index=self.raft.log.last_index,
                            bootstrap=self.bootstrap_action, storage_warning=self.storage_warning)
        self._tick_task = run_forever(self._tick_loop(), self._fail_stop,
                                      f"the tick loop of consensus {self.node_id}")

    def identity(self) -> dict[str, Any] | None:
        """What this node's storage holds, for a peer deciding how to start:
        ``state`` (anything persisted) and the ``cluster_id`` bound to it; None
        while the storage is not open yet."""
        storage = getattr(self, "storage", None)
        if storage is None or storage.closed:
            return None
        return {"node_id": self.node_id, "state": not storage.is_empty(),
                "cluster_id": storage.get_meta("cluster_id")}

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
        for task in (self._start_task, self._rejoin_task):
            if task is not None:
                task.cancel()
        if self.raft is None:
            if getattr(self, "storage", None) is not None:
                self.storage.close()
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
        while self.failed is None:
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
        for message in self.transport.accept(cluster, src, messages, self._validate,
                                             src_of=_message_src, is_member=self._is_member):
            self.raft.step(message)
        self.timings["step_s"] += time.perf_counter() - started
        self.timings["batches_in"] += 1
        self._schedule_process()

    def _validate(self, message: Any) -> str | None:
        reason = validate_message(message)
        if reason is None and message.dst != self.node_id:
            reason = f"addressed to {message.dst!r}"
        if reason is None:
            reason = self._rejoin_refusal(message)
        if reason is None and message.type is MessageType.SNAPSHOT:
            reason = self.sm.snapshot_problem(message.snapshot.data)
        return reason

    def _rejoin_refusal(self, message: Any) -> str | None:
        """A node rejoining after losing its storage lost the votes it cast:
        until re-admitted and promoted it answers no vote request at all."""
        if self.rejoin is not None and not self.rejoin.voting and \
                message.type in (MessageType.VOTE, MessageType.PRE_VOTE):
            return "rejoining after its storage was lost: it does not vote until promoted"
        return None

    def _is_member(self, src: str) -> bool:
        """Whether ``src`` may send us Raft messages: a member of our configuration,
        a founding voter, or a node a configuration entry in our log names (one
        being added), or a node the cluster's registry lists (one added while
        this node was cut off). Anyone else (a removed node, a stray process) is
        dropped. A joining node that has not learned any configuration yet cannot tell,
        and listens to every node of its cluster (the leader adding it)."""
        raft = self.raft
        if src in raft.conf.members or src in self.initial_voters:
            return True
        if self.join and not raft.conf.members:
            return True
        log = raft.log
        first = max(raft.applied + 1, log.first_index)
        if first <= log.last_index and any(
                entry.kind is EntryKind.CONFIG and isinstance(entry.data, ConfChange)
                and any(node == src for _kind, node in entry.data.changes)
                for entry in log.entries_from(first)):
            return True
        # A node added (and maybe elected) while this one was cut off is named by
        # no configuration this node has: the registry still vouches for it, or
        # this node could never hear the leader that would tell it.
        if src in self.registered:
            return True
        self._ask_registry()
        return False

    def _ask_registry(self) -> None:
        """Refresh :attr:`registered` in the background, at most once per
        ``REGISTRY_RECHECK_S`` (a stranger's retries cost one registry call)."""
        now = time.monotonic()
        if now - self._registry_asked_at < REGISTRY_RECHECK_S:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on the actor's loop (a test driving the core directly)
        self._registry_asked_at = now

        async def refresh() -> None:
            nodes = await registered_nodes(self.cluster)
            if nodes is not None:
                self.registered = nodes

        self._registry_task = loop.create_task(refresh())

    def _peer_died(self, peer: str) -> None:
        self.events.publish("peer_died", peer=peer, leader=self.raft.lead)
        self.raft.report_peer_dead(peer)  # the core decides what the death means
        self._schedule_process()

    # ---------------------------------------------------------- the Ready loop
    def _schedule_process(self) -> None:
        if not self._process_scheduled:
            self._process_scheduled = True
            asyncio.get_running_loop().call_soon(self._process)

    def _process(self) -> None:
        self._process_scheduled = False
        if self.failed is not None:
            return  # stopped: nothing more is sent, written or applied
        try:
            ready = self.raft.ready()
            if ready.is_empty():
                return
            ready.carry_out(self._send, self._persist, self._apply)
            self.timings["readies"] += 1
            self.leases.after_apply()
            if (self.raft.applied - self.raft.log.snapshot.index >= self.options.snapshot_every
                    and self.sm.applied_index == self.raft.applied):
                self.raft.compact(self.sm.snapshot())
                self._schedule_process()
        except Exception as error:
            self._fail_stop(f"carrying out a Ready of consensus {self.node_id} failed "
                            f"(term {self.raft.term}, last index {self.raft.log.last_index})",
                            error)

    def _send(self, messages: list[Any]) -> None:
        started = time.perf_counter()
        self.transport.send(messages)
        self.timings["send_s"] += time.perf_counter() - started

    def _persist(self, ready: Ready) -> None:
        started = time.perf_counter()
        self.storage.persist(ready)
        self.timings["persist_s"] += time.perf_counter() - started

    def halt(self, reason: str) -> None:
        """Stop every activity of this node now (fail-stop; idempotent): no
        tick, no send, no apply; waiting clients and reads fail with NotLeader."""
        if self.failed is not None:
            return
        self.failed = reason
        self.stats["fail_stops"] += 1
        if self._tick_task is not None:
            self._tick_task.cancel()
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.close()
        self._fail_waiters(NotLeader(self.node_id, None, f"node {self.node_id} stopped on a "
                                     "fatal error; retry on another node"))
        storage = getattr(self, "storage", None)
        if storage is not None:
            try:  # let the restarted actor open the file at once
                storage.close()
            except Exception:
                logger.exception("closing the storage of %s after a fatal error failed",
                                 self.node_id)

    def _fail_stop(self, reason: str, error: BaseException) -> None:
        """A fatal error: halt, then crash the actor (its supervisor restarts it
        from disk). Without a crash handler (no actor around) raise."""
        if self.failed is not None:
            return
        logger.error("consensus %s stops (fail-stop): %s", self.node_id, reason, exc_info=error)
        self.halt(f"{reason}: {error!r}")
        if self.on_fatal is None:
            raise error
        self.on_fatal(f"{reason}: {error!r}", error)

    def _apply(self, ready: Ready) -> None:
        """Restore, apply the committed entries (the state machine refuses a
        gap: that raises, and the node fails-stop), answer clients and reads."""
        started = time.perf_counter()
        self._apply_ready(ready)
        self.timings["apply_s"] += time.perf_counter() - started

    def _apply_ready(self, ready: Ready) -> None:
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
        start = {"bootstrap": self.bootstrap_action, "storage_warning": self.storage_warning,
                 "refused": self.refused,
                 "rejoin": self.rejoin.describe() if self.rejoin is not None else None}
        if self.raft is None:
            return {"id": self.node_id, "role": "refused" if self.refused else "starting",
                    "term": 0, "leader": None, "commit": 0, "applied": 0, "last_index": 0,
                    "voters": [], "learners": [], "state_hash": None, **start}
        status = self.raft.status()
        status.update(start)
        latencies = sorted(self._commit_latencies[-2000:])
        status.update({
            "cluster": self.cluster, "revision": self.sm.revision,
            "state_hash": self.sm.state_hash(), "config_version": self.sm.config.version,
            "pending_proposals": self.sm.approvals.pending_ids(),
            "transport": dict(self.transport.stats), "faults": self.transport.faults.describe(),
            "peers_down": sorted(self.transport.peers - set(self.transport.handles)),
            "stats": dict(self.stats), "leader_changes": self.leader_changes,
            "dropped_messages": self.raft.dropped_messages,  # stale or impossible acks
            "timings": dict(self.timings),
            "election_timeout_ms": self.raft.options.election_tick * self.options.tick_ms,
            "commit_latency_p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else None,
            "commit_latency_p99_ms": (latencies[int(len(latencies) * 0.99)] * 1000
                                      if latencies else None),
            "pid": os.getpid(),
            # None for a core run outside Ray (an in-process test)
            "ray_node_id": (ray.get_runtime_context().get_node_id()
                            if ray.is_initialized() else None),
        })
        return status

    def force_election(self) -> None:
        self.require_started()
        self.raft.force_election()
        self._schedule_process()

    def step_down(self, successor: str | None = None) -> str | None:
        """Hand leadership to ``successor`` (a voter; None: the most caught-up
        one); the target. A successor that is no voter is refused
        (ValidationFailed) and changes nothing."""
        if successor is not None:
            check_node_id(successor, "successor")
        self.require_started()
        try:
            target = self.raft.step_down(successor)
        except ValueError as error:  # not a voter
            raise InvalidCommand(str(error)) from None
        self._schedule_process()
        return target

    def transfer_leadership(self, target: str) -> None:
        """Hand leadership to ``target`` (a voter; else ValidationFailed)."""
        check_node_id(target, "target")
        self.require_started()
        try:
            self.raft.transfer_leadership(target)
        except ValueError as error:  # not a voter
            raise InvalidCommand(str(error)) from None
        self._schedule_process()

    async def change_membership(self, changes: list[tuple[str, str]],
                                timeout: float = 10.0) -> dict[str, Any]:
        """Apply membership changes (``("add_voter"|"add_learner"|"remove", node)``)
        through joint consensus; returns the new configuration once applied.
        A change still in progress (or a new leader's log not yet applied) is
        waited for, up to ``timeout``, rather than refused."""
        change = ConfChange(tuple((ConfChangeType(kind), node)
                                  for kind, node in check_conf_changes(changes)))
        timeout = check_timeout(timeout)
        self.require_started()
        deadline = time.monotonic() + timeout
        while True:
            if self.raft.role is not Role.LEADER:
                raise NotLeader(self.node_id, self.raft.lead)
            if not self.raft.conf_change_in_progress:
                break
            if time.monotonic() > deadline:
                raise CoordinationTimeout(f"membership change {changes}: the previous change "
                                          f"was not applied within {timeout} s")
            await asyncio.sleep(self.options.tick_ms / 1000)
        try:
            index = self.raft.propose_conf_change(change)
        except ValueError as error:  # e.g. removing every voter
            raise InvalidCommand(str(error)) from None
        self._schedule_process()
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
        faults = FaultFilter(*check_faults(blocked, drop_rate, delay_ms))
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
        check_key(prefix, "prefix")
        return self.sm.range(prefix)

    def config_store(self) -> Any:
        self.require_started()
        return self.sm.config

    def query_config(self, query: Callable[[Any], Any]) -> Any:
        """``query(store)`` on this node's replicated config store: the store,
        which keeps up to ``max_history`` versions, stays here and only the
        answer travels. Errors of ``query`` (e.g. ValidationFailed) propagate."""
        check_callable(query, "query")
        self.require_started()
        return query(self.sm.config)

    def query_state(self, query: Callable[[Any], Any]) -> Any:
        """``query(state_machine)`` on this node's applied state (only the answer travels)."""
        check_callable(query, "query")
        self.require_started()
        return query(self.sm)

    def log_entries(self, start: int = 0) -> dict[str, Any]:
        """This node's log (for offline invariant checks in chaos runs)."""
        start = check_seq(start, "start")
        self.require_started()
        log = self.raft.log
        first = max(start, log.first_index)
        entries = log.entries_from(first) if first <= log.last_index else []
        return {"snapshot_index": log.snapshot.index, "snapshot_term": log.snapshot.term,
                "commit": self.raft.commit, "term": self.raft.term,
                "entries": [(e.index, e.term, e.kind.value, e.data) for e in entries]}

