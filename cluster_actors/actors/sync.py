"""The sync component: a thin Ray shell around one replica's CRDT store
(:class:`~cluster_actors.core.store.ReplicaStore`) and a sync strategy
(:mod:`strategies.sync`), with the seed's Data Sync API.

What it carries out, the strategies decide:

* every ``sync_interval`` ms it calls ``start_round`` with the peers it can
  reach and sends the opening messages, one Ray call per destination;
* :meth:`SyncActor.receive` takes a peer's batch, drops and counts anything
  malformed (not a :class:`~strategies.sync_base.SyncMessage`, a forged
  sender, another addressee, a payload the strategy rejects) without changing
  the store, hands the rest to the strategy and sends the replies batched;
* local writes (:meth:`SyncActor.data_update`) go to the store, then to
  ``on_local_update``, whose messages are sent at once.

Durability. The store's entries are saved to the node's replica database
(:mod:`cluster_actors.runtime.replica_storage`): a local write is saved before
it is acknowledged or shipped, entries merged from peers at the next periodic
round. A restarted sync actor (or node) reloads them, so an acknowledged write
survives its node's processes dying before a sync round spread it (not an OS
crash: the database is not fsynced per write, see that module). The replica id is
``<node>@<incarnation>`` with a fresh incarnation per actor start: the
restarted actor continues from the saved state under a new identity, and
never reuses the CRDT dots of its previous life. Messages on the wire carry
plain node ids.

Switching strategies. :meth:`SyncActor.set_strategy` switches this node at
once. For a cluster-wide switch, change ``sync_strategy`` in the replicated
configuration: the actor long-polls its node's consensus events and switches
when that node *applies* the ``config_changed`` entry, so every node switches
at the same log index (each at its own moment). Once the configuration has
ever set ``sync_strategy`` it governs, also after a restart; until then the
``sync_strategy`` option does. Nodes running different strategies meanwhile
still converge: a message of a protocol the current strategy does not speak
is answered by an instance of the strategy that does (the previous strategy's
instance keeps its state for this), so no exchange in flight is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import ray

import strategies
from strategies.sync_base import SyncMessage, SyncStats, SyncStrategy

from ..core.crdt import RESOLUTIONS
from ..core.data_ops import DATA_OPS as DATA_OPS  # re-exported: its public home
from ..core.data_ops import apply_data_op, check_data_op
from ..core.merkle import (
    DEFAULT_DEPTH,
    MAX_DEPTH,
    MAX_REMOTE_DEPTH,
    MerkleProof,
    create_merkle_tree,
    depth_for_keys,
    verify_merkle_proof,
)
from ..core.peer_checks import message_src, sync_envelope_problem, sync_sender_allowed
from ..core.store import ReplicaStore
from ..core.vclock import VectorClock, merge_vector_clocks
from ..errors import NoQuorum, NotFound, SyncFailed, ValidationFailed
from ..runtime.events import EventCursor
from ..runtime.replica_storage import ReplicaStorage, replica_database_path
from ..telemetry.tracing import configure_tracing_from_options, sync_span
from .base import ComponentActor

logger = logging.getLogger(__name__)

#: The CRDT store's modes, set from the partition strategy's decisions.
DATA_MODES = ("serve", "read_only", "down")

SYNC_TYPES = ("full_sync", "incremental")
"""``trigger_sync`` types: a full anti-entropy exchange with every reachable
peer, or one round of the configured strategy."""



#: A peer's LWW timestamp more than this many seconds ahead of our clock is
#: refused (its entry is dropped and counted): a runaway clock would make its
#: writes win every later one.
MAX_CLOCK_DRIFT_S = 300.0
ROUND_HISTORY = 50
FULL_SYNC_TIMEOUT = 5.0  # s, at least; a full sync waits for every contacted peer's answer
CONFIG_POLL_SECONDS = 10.0


class KeyNotFound(NotFound):
    """No such key in this replica's store (the seed's ``{error, not_found}``)."""


def _validate_message(message: Any, me: str) -> str | None:
    """None if ``message`` may be handed to a strategy, else why not (its
    sender is checked against the batch's by the transport)."""
    if not isinstance(message, SyncMessage):
        return f"not a SyncMessage but a {type(message).__name__}"
    return sync_envelope_problem(message.dst, message.kind, me)


def _key(key: Any) -> str:
    """``key`` if it is a string, else ValidationFailed (keys of the store are)."""
    if not isinstance(key, str):
        raise ValidationFailed([("key", f"a key is a string, got {type(key).__name__}")])
    return key


def _unknown_kind(error: ValidationFailed) -> bool:
    """Whether a strategy rejected a message only because it does not speak its kind."""
    return bool(error.errors) and error.errors[0][0] == "kind"


@dataclasses.dataclass
class SyncRound:
    """One explicitly requested sync (``sync_all``, ``sync_node``, ``trigger_sync``).

    ``outcome``: ``in_progress`` then ``completed`` (every contacted peer
    answered) or ``timed_out`` for a full sync; ``sent`` for an incremental
    round (its exchange goes on asynchronously), ``idle`` when the strategy
    had nothing to send, ``nothing_to_do`` without peers.
    """

    id: str
    type: str
    strategy: str
    peers: list[str]
    started_at: float
    messages: int = 0
    bytes: int = 0
    outcome: str = "sent"
    awaiting: set[str] = dataclasses.field(default_factory=set)
    finished_at: float | None = None
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event, repr=False)

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.finished_at = time.time()
        self.done.set()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "strategy": self.strategy,
                "peers": list(self.peers), "started_at": self.started_at,
                "finished_at": self.finished_at, "messages": self.messages,
                "bytes": self.bytes, "outcome": self.outcome,
                "awaiting": sorted(self.awaiting)}


@ray.remote(num_cpus=0, max_restarts=0)
class SyncActor(ComponentActor):
    """One node's eventually consistent CRDT store and its synchronisation (see the
    module doc).

    The seed's Data Sync API: :meth:`sync_all`, :meth:`sync_node`,
    :meth:`trigger_sync`, :meth:`get_sync_status`, :meth:`resolve_conflict`,
    :meth:`get_vector_clock`, :meth:`merge_vector_clocks`,
    :meth:`create_merkle_tree`, :meth:`verify_merkle_proof`, ``subscribe`` /
    ``unsubscribe``. The data API behind ``cluster.data(node)``:
    :meth:`data_update`, :meth:`data_get`, :meth:`data_items`,
    :meth:`data_entry`, :meth:`conflicts`, :meth:`state_hash`.
    """

    component = "sync"

    # ------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        configure_tracing_from_options(self.options)
        self.mode, self.mode_reason = "serve", ""  # see set_mode
        self.incarnation = uuid.uuid4().hex[:12]
        depth = self.options.metadata.get("sync_merkle_depth", DEFAULT_DEPTH)
        self.storage = ReplicaStorage(
            replica_database_path(self.options.data_root(), self.cluster, self.node_id))
        saved = self.storage.load()
        self.store = ReplicaStore.restore(f"{self.node_id}@{self.incarnation}", saved,
                                          merkle_depth=depth, incarnation=self.incarnation,
                                          max_drift=MAX_CLOCK_DRIFT_S)
        self.recovered_keys = len(saved)
        self._saved_seq = self.store.change_seq
        self.rng = random.Random(f"{self.node_id}/{self.incarnation}")
        self._instances: dict[str, SyncStrategy] = {}
        self.strategy_name = ""
        self.strategy_source = "options"
        self.config_version: int | None = None
        self._install(strategies.load("sync", self.options.sync_strategy))
        self.stats: dict[str, SyncStats] = {}
        self.received: dict[str, int] = {}
        self.rejected = 0
        self.periodic_rounds = 0
        self.round_errors = 0
        self._round_ids = itertools.count(1)
        self.rounds: deque[SyncRound] = deque(maxlen=ROUND_HISTORY)
        self._pending: dict[str, SyncRound] = {}
        self._kind_owner: dict[str, str] = {}
        self._conflicts: list[str] = []
        self.every(self.options.sync_interval / 1000, self._periodic_round)
        self._timers.append(self.run_forever(self._watch_consensus(), "the consensus watch"))

    async def on_stop(self) -> None:
        await super().on_stop()
        storage = getattr(self, "storage", None)  # None when on_start failed before it
        if storage is not None:
            with contextlib.suppress(Exception):  # merges since the last round, if it can
                self._save()
            storage.close()

    def _save(self) -> None:
        """Save every entry changed since the last save (one transaction)."""
        store = self.store
        if store.change_seq != self._saved_seq:
            self.storage.save(store.entries(store.changes_since(self._saved_seq)))
            self._saved_seq = store.change_seq

    def _install(self, strategy: SyncStrategy) -> str:
        """Make ``strategy`` current; the previous one stays to answer its protocol."""
        old = self.strategy_name
        self._instances[strategy.name] = strategy
        self.strategy_name = strategy.name
        return old

    @property
    def strategy(self) -> SyncStrategy:
        return self._instances[self.strategy_name]

    def _require_store(self) -> ReplicaStore:
        self.require_started()
        return self.store

    # ------------------------------------------------------------ sending
    def _reachable(self) -> list[str]:
        """Peers that are not blocked and whose actor is resolved."""
        transport = self.transport
        return sorted(p for p in transport.peers
                      if p not in transport.faults.blocked and p in transport.handles)

    def _stats(self, name: str) -> SyncStats:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = SyncStats()
        return stats

    def _prepare(self, name: str, messages: Sequence[SyncMessage]) -> list[SyncMessage]:
        """Readdress ``messages`` from the replica id to this node and count them."""
        stats, out = self._stats(name), []
        for message in messages:
            if message.src != self.node_id:
                message = dataclasses.replace(message, src=self.node_id)
            stats.count(message)
            out.append(message)
        return out

    def _send(self, messages: list[SyncMessage]) -> None:
        if messages:
            self.transport.send(messages, dst_of=lambda m: m.dst)

    def _open(self, strategy: SyncStrategy, peers: list[str],
              trigger: str = "periodic") -> list[SyncMessage]:
        """Open a round of ``strategy`` with ``peers``: its messages. Traced as one
        span (``strategy``, ``trigger``, ``bytes``, ``messages`` and the peers
        it contacts: ``peer`` when one, ``peers`` always)."""
        with sync_span(self.node_id, strategy.name, trigger=trigger) as span:
            self._stats(strategy.name).rounds += 1
            messages = self._prepare(strategy.name,
                                     strategy.start_round(self.store, peers, self.rng))
            if span.is_recording():
                contacted = sorted({m.dst for m in messages})
                span.set_attributes({"bytes": sum(m.size_bytes for m in messages),
                                     "messages": len(messages), "peers": contacted})
                if len(contacted) == 1:
                    span.set_attribute("peer", contacted[0])
        return messages

    async def _periodic_round(self) -> None:
        self.periodic_rounds += 1
        self._expire_rounds()
        try:
            self._save()  # what peers merged in since the last round
        except Exception:  # a full disk, say: keep synchronising, try again next round
            self.round_errors += 1
            logger.exception("saving the replica store of %s failed", self.node_id)
        peers = self._reachable()
        if not peers:
            return
        try:
            messages = self._open(self.strategy, peers)
        except Exception:
            self.round_errors += 1
            logger.exception("sync round of %s failed", self.node_id)
            return
        self._send(messages)

    def _local_update(self, key: str) -> None:
        """Save the write, then ship it as the strategy says."""
        self._save()
        strategy = self.strategy
        self._send(self._prepare(strategy.name,
                                 strategy.on_local_update(self.store, key, self.rng)))

    # ---------------------------------------------------------- receiving
    async def receive(self, cluster: Any, src: Any, messages: Any) -> None:
        """A batch of sync messages from peer ``src`` (one Ray call per peer per step).
        Dropped and counted in ``transport`` of :meth:`get_sync_status`: a batch
        from a node outside the Raft configuration (``dropped_non_member``), a
        message naming another sender (``dropped_spoofed``), one that is
        malformed, addressed elsewhere or refused by the strategy
        (``dropped_malformed``; the strategy's refusals also in ``rejected``)."""
        if not self.started:
            return  # still starting: the peer's next round repeats what matters
        accepted = self.transport.accept(
            cluster, src, messages, lambda m: _validate_message(m, self.node_id),
            src_of=message_src,
            is_member=lambda node: sync_sender_allowed(node, self.transport.peers))
        self.store.physical_time = time.time()  # for the max_drift check of merges
        replies: list[SyncMessage] = []
        for message in accepted:
            try:
                name, out = self._dispatch(message)
            except Exception as error:
                self.rejected += 1
                self.transport.stats["dropped_malformed"] += 1
                logger.debug("rejected a %s message from %s: %s", message.kind, src, error)
                continue
            self.received[message.kind] = self.received.get(message.kind, 0) + 1
            replies.extend(self._prepare(name, out))
            if message.kind == "ae_reply":
                self._answered(message.src)
        self._send(replies)
        self._note_conflicts()

    def _dispatch(self, message: SyncMessage) -> tuple[str, list[SyncMessage]]:
        """Hand ``message`` to the current strategy or, when it does not speak the
        message's kind, to the installed strategy that does; its replies."""
        tried: set[str] = set()
        for name in self._candidates(message.kind):
            if name in tried:
                continue
            tried.add(name)
            strategy = self._instance(name)
            if strategy is None:
                continue
            try:
                out = strategy.on_message(self.store, message, self.rng)
            except ValidationFailed as error:
                if _unknown_kind(error):
                    continue
                raise
            if name != self.strategy_name:
                self._kind_owner[message.kind] = name
            return name, out
        raise ValidationFailed([("kind", f"no installed sync strategy handles messages of kind "
                                 f"{message.kind!r}")])

    def _candidates(self, kind: str) -> Iterator[str]:
        yield self.strategy_name
        owner = self._kind_owner.get(kind)
        if owner:
            yield owner
        yield from self._instances
        yield from strategies.available("sync")

    def _instance(self, name: str) -> SyncStrategy | None:
        """The strategy instance of ``name`` (default options if it was never current)."""
        strategy = self._instances.get(name)
        if strategy is None:
            try:
                strategy = self._instances[name] = strategies.load("sync", name)
            except ValidationFailed:
                return None  # a broken plug-in answers nothing
        return strategy

    def _note_conflicts(self) -> None:
        conflicts = self.store.conflicts()
        if conflicts != self._conflicts:
            self._conflicts = conflicts
            self.events.publish("conflicts_changed", conflicts=conflicts[:100],
                                count=len(conflicts))

    # ------------------------------------------------------ explicit rounds
    def _new_round(self, sync_type: str, strategy: str, peers: list[str]) -> SyncRound:
        sync_round = SyncRound(f"sync-{self.node_id}-{self.incarnation[:6]}-"
                               f"{next(self._round_ids)}", sync_type, strategy, peers,
                               time.time())
        self.rounds.append(sync_round)
        return sync_round

    def _start(self, sync_type: str, targets: list[str]) -> str:
        """Run a ``sync_type`` round with ``targets``; its id. SyncFailed if none is reachable."""
        if sync_type not in SYNC_TYPES:
            raise ValidationFailed([("sync_type", f"unknown sync type {sync_type!r}; valid: "
                                     + ", ".join(SYNC_TYPES))])
        self._require_store()
        reachable = [p for p in self._reachable() if p in targets]
        name = "anti_entropy" if sync_type == "full_sync" else self.strategy_name
        sync_round = self._new_round(sync_type, name, reachable)
        if not targets:
            sync_round.finish("nothing_to_do")
            return sync_round.id
        if not reachable:
            sync_round.finish("failed")
            raise SyncFailed(f"sync {sync_round.id}: none of {', '.join(targets)} is reachable "
                             f"from {self.node_id} (blocked or not running); heal the "
                             "partition or retry later")
        if sync_type == "full_sync":
            pusher = strategies.load("sync", "anti_entropy", fanout=len(reachable))
            messages = self._open(pusher, reachable, sync_type)
            sync_round.outcome = "in_progress"
            sync_round.awaiting = set(reachable)
            self._pending[sync_round.id] = sync_round
        else:
            messages = self._open(self.strategy, reachable, sync_type)
            sync_round.finish("sent" if messages else "idle")
        sync_round.messages = len(messages)
        sync_round.bytes = sum(m.size_bytes for m in messages)
        self._send(messages)
        self.events.publish("sync_started", sync_id=sync_round.id, sync_type=sync_type,
                            peers=reachable)
        return sync_round.id

    def _answered(self, peer: str) -> None:
        """``peer`` answered an anti-entropy push: it may complete pending full syncs."""
        for sync_id, sync_round in list(self._pending.items()):
            sync_round.awaiting.discard(peer)
            if not sync_round.awaiting:
                del self._pending[sync_id]
                sync_round.finish("completed")
                self.events.publish("sync_completed", sync_id=sync_id)

    def _expire_rounds(self) -> None:
        limit = max(FULL_SYNC_TIMEOUT, 20 * self.options.sync_interval / 1000)
        now = time.time()
        for sync_id, sync_round in list(self._pending.items()):
            if now - sync_round.started_at > limit:
                del self._pending[sync_id]
                sync_round.finish("timed_out")
                self.events.publish("sync_failed", sync_id=sync_id,
                                    unanswered=sorted(sync_round.awaiting))

    # ------------------------------------------------ the seed's Data Sync API
    async def sync_all(self) -> str:
        """A full anti-entropy exchange with every peer now; its sync id."""
        return self._start("full_sync", sorted(self.transport.peers))

    async def sync_node(self, node: str, sync_type: str = "full_sync") -> str:
        """A ``sync_type`` round with peer ``node`` only; its sync id."""
        if not isinstance(node, str) or node not in self.transport.peers:
            raise NotFound(f"unknown peer {node!r}; peers of {self.node_id}: "
                           f"{', '.join(sorted(self.transport.peers))}")
        return self._start(sync_type, [node])

    async def trigger_sync(self, sync_type: str = "full_sync") -> str:
        """``full_sync`` (anti-entropy with all peers) or ``incremental`` (a round of
        the configured strategy); the sync id to find it in :meth:`get_sync_status`."""
        return self._start(sync_type, sorted(self.transport.peers))

    async def wait_sync(self, sync_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The record of sync ``sync_id`` once it is finished (or as it is after ``timeout``)."""
        for sync_round in self.rounds:
            if sync_round.id == sync_id:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(sync_round.done.wait(), timeout)
                return sync_round.to_dict()
        raise KeyNotFound(f"no sync {sync_id!r} among the last {ROUND_HISTORY} of "
                          f"{self.node_id}")

    async def get_sync_status(self) -> dict[str, Any]:
        """Strategy, cost per strategy, recent explicit syncs, conflicts, state hash."""
        store = self._require_store()
        return {
            "node": self.node_id, "replica_id": store.replica_id,
            "strategy": self.strategy.describe(), "strategy_status": self.strategy.status(),
            "strategy_source": self.strategy_source, "config_version": self.config_version,
            "interval_ms": self.options.sync_interval,
            "mode": self.mode, "mode_reason": self.mode_reason,
            "stats": {name: stats.to_dict() for name, stats in sorted(self.stats.items())},
            "sync_bytes_total": sum(stats.bytes_sent for stats in self.stats.values()),
            "sync_messages_total": sum(stats.messages for stats in self.stats.values()),
            "received": dict(sorted(self.received.items())), "rejected": self.rejected,
            "periodic_rounds": self.periodic_rounds, "round_errors": self.round_errors,
            "rounds": [r.to_dict() for r in self.rounds],
            "pending_conflicts": store.conflicts(), "state_hash": store.state_hash(),
            "store": store.sync_status(), "peers": sorted(self.transport.peers),
            "durable": {"path": str(self.storage.path), "recovered_keys": self.recovered_keys,
                        "saved_entries": self.storage.saved_entries},
            "reachable": self._reachable(), "transport": dict(self.transport.stats),
        }

    async def status(self) -> dict[str, Any]:
        return await self.get_sync_status()

    async def resolve_conflict(self, key: str, resolution: str, value: Any = None) -> bool:
        """Settle ``key``'s siblings: ``local_wins``, ``remote_wins``, ``merge`` or
        ``value`` (with ``value``). The resolution is a write whose version dominates
        every sibling, so it spreads to all nodes. True if the store changed."""
        store = self._require_store()
        if resolution not in RESOLUTIONS:
            raise ValidationFailed([("resolution", f"unknown resolution {resolution!r}; valid: "
                                     + ", ".join(RESOLUTIONS))])
        if not isinstance(key, str) or key not in store:
            raise KeyNotFound(f"no key {key!r} in the store of {self.node_id}")
        changed = store.resolve_conflict(key, resolution, value, now=time.time())
        if changed:
            self._local_update(key)
            self.events.publish("conflict_resolved", key=key, resolution=resolution)
        self._note_conflicts()
        return changed

    async def get_vector_clock(self, key: str | None = None) -> dict[str, int]:
        """This replica's version vector: writes seen per replica, summed over keys
        (equal on converged replicas, never decreasing); with ``key``, that key's vector."""
        store = self._require_store()
        if key is not None:
            if _key(key) not in store:
                raise KeyNotFound(f"no key {key!r} in the store of {self.node_id}")
            return store.version(key).to_dict()
        totals: dict[str, int] = {}
        keys = store.keys()  # sorted; deleted keys included
        for name in keys:
            for replica, count in store.version(name).items():
                totals[replica] = totals.get(replica, 0) + count
        return dict(sorted(totals.items()))

    async def merge_vector_clocks(self, vc1: Any, vc2: Any) -> dict[str, int]:
        """The pointwise maximum of two ``{replica: count}`` clocks."""
        return merge_vector_clocks(VectorClock.from_dict(vc1), VectorClock.from_dict(vc2)
                                   ).to_dict()

    async def create_merkle_tree(self, data: dict[str, Any], depth: int | None = None
                                 ) -> dict[str, Any]:
        """A Merkle tree of ``data``: ``{"root": hex, "depth", "keys", "leaves"}``
        (depth by default sized to about one key per bucket)."""
        tree = self._tree(data, depth)
        return {"root": tree.root.hex(), "depth": tree.depth, "keys": len(tree),
                "leaves": tree.leaf_count}

    async def merkle_proof(self, key: str, data: dict[str, Any] | None = None,
                           depth: int | None = None) -> dict[str, Any]:
        """A proof that ``key`` is in the tree of ``data`` (default: this replica's
        store, whose leaf values are the entries): ``{"root", "leaf", "proof"}``."""
        _key(key)
        if data is None:
            store = self._require_store()
            tree, value = store.tree, store.entry(key)
        else:
            tree, value = self._tree(data, depth), data.get(key)
        try:
            proof = tree.proof(key)
        except KeyError:
            raise KeyNotFound(f"no key {key!r} in the tree") from None
        return {"root": tree.root.hex(), "leaf": (key, value), "proof": proof.to_data()}

    async def verify_merkle_proof(self, leaf: Any, root: Any, proof: Any) -> bool:
        """Whether ``leaf = (key, value)`` with ``proof`` hashes up to ``root`` (hex or
        bytes); malformed input gives False."""
        if not isinstance(root, (str, bytes, bytearray)):
            return False  # bytes(an int) would allocate that many bytes
        try:
            root_bytes = bytes.fromhex(root) if isinstance(root, str) else bytes(root)
            if not isinstance(proof, MerkleProof):
                proof = MerkleProof.from_data(proof)
        except (TypeError, ValueError, KeyError, AttributeError):
            return False
        return verify_merkle_proof(tuple(leaf) if isinstance(leaf, (list, tuple)) else leaf,
                                   root_bytes, proof)

    @staticmethod
    def _tree(data: Any, depth: int | None) -> Any:
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise ValidationFailed([("data", "expected a dict with str keys")])
        depth = min(depth_for_keys(len(data)), MAX_REMOTE_DEPTH) if depth is None else depth
        if isinstance(depth, bool) or not isinstance(depth, int) or \
                not 0 <= depth <= MAX_REMOTE_DEPTH:
            raise ValidationFailed([("depth", (
                f"must be an integer in 0..{MAX_REMOTE_DEPTH} for a tree built on request "
                f"(2**depth leaves; depth {MAX_DEPTH} would take about 0.7 GB), got "
                f"{depth!r:.40}"))])
        try:
            return create_merkle_tree(data, depth)
        except (TypeError, ValueError) as error:  # not JSON, or NaN and infinities
            raise ValidationFailed([("data", f"values must be JSON-able: {error}")]) from error

    # ----------------------------------------------------------- strategies
    async def set_strategy(self, name: str, **options: Any) -> dict[str, Any]:
        """Switch this node's strategy now (UnknownStrategy or ValidationFailed: no
        change). For every node at the same log index, change ``sync_strategy`` in
        the cluster configuration instead."""
        self._require_store()
        strategy = strategies.load("sync", name, **options)
        self._switch(strategy, "set_strategy")
        return strategy.describe()

    async def get_strategy(self) -> dict[str, Any]:
        return self.strategy.describe()

    async def available_strategies(self) -> list[str]:
        return strategies.available("sync")

    def _switch(self, strategy: SyncStrategy, source: str, version: int | None = None) -> None:
        old = self._install(strategy)
        self.strategy_source = source
        if version is not None:
            self.config_version = version
        self.events.publish("strategy_changed", old=old, new=strategy.name, source=source,
                            config_version=version)

    async def _watch_consensus(self) -> None:
        """Follow the node's consensus events: config changes of ``sync_strategy``
        switch the strategy, membership changes update the peers."""
        handle, cursor, backoff = None, EventCursor(), 0.05
        while True:
            try:
                current = self.sibling("consensus")
                if current is not handle:  # first contact, after an error, or a restart
                    await self._adopt_config(current, require_change=True)
                    await self._adopt_members(current)
                    handle = current
                    cursor.follow(current)  # a restarted consensus numbers from 1 again
                events = await current.wait_events.remote(cursor.since, CONFIG_POLL_SECONDS)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.debug("sync of %s: consensus not available (%s)", self.node_id, error)
                self.forget_sibling("consensus")
                handle = None
                await asyncio.sleep(backoff)
                backoff = min(1.0, backoff * 2)
                continue
            for event in events:
                cursor.advance((event,))
                if (event["type"] == "config_changed"
                        and "sync_strategy" in event.get("changed_keys", ())):
                    await self._adopt_config(current, require_change=False)
                elif event["type"] == "membership_changed":
                    self.transport.set_peers(set(event["voters"]) | set(event["learners"]))

    async def _adopt_members(self, consensus: Any) -> None:
        """Take the peers (who may sync with this node) from the Raft
        configuration as it is now: its change events may predate this actor."""
        status = await consensus.status.remote()
        members = set(status.get("voters", ())) | set(status.get("learners", ()))
        if members:
            self.transport.set_peers(members)

    async def _adopt_config(self, consensus: Any, require_change: bool) -> None:
        """Take ``sync_strategy`` from the applied configuration; with
        ``require_change`` only if some applied version ever set it."""
        ever_set, config = await consensus.query_config.remote(lambda store: (
            any("sync_strategy" in record.changed_keys for record in store.history()),
            store.config))
        if require_change and not ever_set:
            return
        name = config.sync_strategy
        if name == self.strategy_name:
            self.strategy_source, self.config_version = "config", config.version
            return
        try:
            strategy = strategies.load("sync", name)
        except ValidationFailed as error:
            logger.warning("sync of %s keeps %s: %s", self.node_id, self.strategy_name, error)
            self.events.publish("strategy_change_failed", requested=name,
                                config_version=config.version, error=str(error))
            return
        self._switch(strategy, "config", config.version)

    # ------------------------------------------------------------- data API
    async def set_mode(self, mode: str, reason: str = "") -> str:
        """Serve (``serve``), refuse writes (``read_only``) or refuse reads and
        writes (``down``): the partition strategy's decision for this node's
        side, set by the coordinator."""
        if mode not in DATA_MODES:
            raise ValidationFailed([("mode", f"must be one of {', '.join(DATA_MODES)}, "
                                             f"got {mode!r}")])
        if mode != getattr(self, "mode", "serve"):
            self.events.publish("data_mode", mode=mode, reason=reason)
        self.mode, self.mode_reason = mode, reason
        return mode

    def _require_mode(self, write: bool) -> None:
        mode = getattr(self, "mode", "serve")
        if mode == "down" or (write and mode == "read_only"):
            what = "writes" if mode == "read_only" else "reads and writes"
            raise NoQuorum(f"node {self.node_id} is on a side of a network partition that its "
                           f"partition strategy set to {mode} ({self.mode_reason}); its CRDT "
                           f"store refuses {what} until the partition heals: use a node on "
                           "the serving side")

    async def data_update(self, op: Any) -> Any:
        """Apply one local write (see :data:`~cluster_actors.core.data_ops.DATA_OPS`); the key's value after it.
        Raises :class:`NoQuorum` while the partition strategy keeps this side
        read-only or down."""
        self._require_mode(write=True)
        store = self._require_store()
        op = check_data_op(op)
        before, entry_before = store.change_seq, store.entry(op[1])
        apply_data_op(store, op, time.time())
        if store.change_seq != before:
            try:
                self._save()
            except Exception as error:  # nothing unsaved stays visible or is shipped
                store.revert(op[1], entry_before)
                raise SyncFailed(f"{op[0]} of {op[1]!r} was not saved on {self.node_id} "
                                 f"({type(error).__name__}: {error}); nothing changed: retry, "
                                 "or check the node's disk") from error
            self._local_update(op[1])
            self._note_conflicts()
        return store.value(op[1])

    async def data_get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` (a counter's int, a set's frozenset, a register's value,
        an MV register's tuple, a map's dict), ``default`` if absent or deleted."""
        self._require_mode(write=False)
        value = self._require_store().value(_key(key))
        return default if value is None else value

    async def data_items(self) -> dict[str, Any]:
        """Every ``key: value`` (deleted registers left out)."""
        self._require_mode(write=False)
        store = self._require_store()
        keys = store.keys()
        values = {key: store.value(key) for key in keys}
        return {key: value for key, value in values.items() if value is not None}

    async def data_entry(self, key: str) -> dict[str, Any]:
        """``key``'s CRDT state with its versions (several when siblings are pending)."""
        store = self._require_store()
        crdt = store.get(_key(key))
        if crdt is None:
            raise KeyNotFound(f"no key {key!r} in the store of {self.node_id}")
        versions = store.siblings(key)
        return {"key": key, "type": crdt.type_name, "value": crdt.value(),
                "version": store.version(key).to_dict(), "conflict": key in store.conflicts(),
                "versions": [{"vector": vector.to_dict(), "data": value.to_data()}
                             for vector, value in versions]}

    async def conflicts(self) -> list[str]:
        """Keys holding concurrent siblings, pending ``resolve_conflict``."""
        return self._require_store().conflicts()

    async def state_hash(self) -> str:
        """The store's Merkle root: equal on replicas with equal content."""
        return self._require_store().state_hash()
