"""The built-in sync strategies: six ways to make replica stores converge.

Each is a :class:`~strategies.sync_base.SyncStrategy` (see there for the
message protocol and how cost is measured) over
:class:`~cluster_actors.core.store.ReplicaStore`; they differ in what they
ship and when:

=================  ==========================================================
anti_entropy       push-pull of the full state with ``fanout`` random peers
merkle_tree        descend the Merkle trees a level at a time, exchanging only
                   the hashes of differing subtrees, then the differing buckets
vector_clock       pull the version vectors of keys changed since the last
                   pull, fetch only entries not dominated locally, keep
                   concurrent versions as siblings until resolved
gossip             rumour mongering: push recently changed entries to
                   ``fanout`` random peers for ``rounds_hot`` rounds; an idle
                   replica runs a Merkle repair every ``repair_every`` rounds
last_write_wins    pull entries changed since a watermark; registers carry
                   hybrid logical clock stamps and the newest stamp wins
causal             causal broadcast: updates carry their dependencies and wait
                   in a buffer until those are delivered; catch-up from logs
=================  ==========================================================

Every strategy except ``vector_clock`` joins concurrent versions on merge
(for registers: the newest HLC stamp wins), so all of them reach the same
joined content (:meth:`ReplicaStore.resolved_hash`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cluster_actors.core.merkle import HASH_SIZE
from cluster_actors.core.store import ReplicaStore
from cluster_actors.core.vclock import VectorClock
from cluster_actors.errors import ValidationFailed
from strategies.sync_base import SyncMessage, SyncStrategy

__all__ = [
    "SYNC_STRATEGIES",
    "AntiEntropySync",
    "CausalSync",
    "GossipSync",
    "LastWriteWinsSync",
    "MerkleTreeSync",
    "VectorClockSync",
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def _field(message: SyncMessage, name: str, types: type | tuple[type, ...]) -> Any:
    """``message.payload[name]`` checked against ``types``; ValidationFailed if not."""
    payload = message.payload
    if not isinstance(payload, Mapping) or name not in payload:
        raise ValidationFailed([(f"{message.kind}.{name}", "missing from the message")])
    value = payload[name]
    if not isinstance(value, types):
        raise ValidationFailed([(f"{message.kind}.{name}", f"unexpected {type(value).__name__}")])
    return value


def _positive_ints(options: Mapping[str, Any], *names: str, allow_zero: Sequence[str] = ()
                   ) -> list[tuple[str, str]]:
    errors = []
    for name in names:
        value = options[name]
        low = 0 if name in allow_zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            errors.append((name, f"must be an integer >= {low}, got {value!r}"))
    return errors


def _sample(peers: Sequence[str], k: int, rng: random.Random) -> list[str]:
    peers = sorted(peers)
    return rng.sample(peers, min(k, len(peers)))


def _unknown_kind(strategy: SyncStrategy, message: SyncMessage) -> ValidationFailed:
    return ValidationFailed([("kind", f"sync strategy {strategy.name!r} does not handle "
                              f"messages of kind {message.kind!r}")])


class _FanoutOption(SyncStrategy):
    option_defaults: ClassVar[Mapping[str, Any]] = {"fanout": 1}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _positive_ints(options, "fanout")


# ---------------------------------------------------------------------------
# anti_entropy
# ---------------------------------------------------------------------------

class AntiEntropySync(_FanoutOption):
    """Full state exchange: push the whole store to ``fanout`` random peers, get theirs back.

    Kinds: ``ae_push`` ``{"entries"}`` is answered by ``ae_reply`` ``{"entries"}``
    holding the receiver's whole store after the merge.
    """

    name = "anti_entropy"

    def start_round(self, local: ReplicaStore, peers: Sequence[str], rng: random.Random
                    ) -> list[SyncMessage]:
        return [SyncMessage.make(local.replica_id, peer, "ae_push",
                                 {"entries": local.snapshot()}, entries=len(local))
                for peer in _sample(peers, self.options["fanout"], rng)]

    def on_message(self, local: ReplicaStore, message: SyncMessage, rng: random.Random
                   ) -> list[SyncMessage]:
        if message.kind not in ("ae_push", "ae_reply"):
            raise _unknown_kind(self, message)
        local.merge_entries(_field(message, "entries", Mapping))
        if message.kind == "ae_reply":
            return []
        return [SyncMessage.make(local.replica_id, message.src, "ae_reply",
                                 {"entries": local.snapshot()}, entries=len(local))]


# ---------------------------------------------------------------------------
# merkle_tree (also the repair path of gossip)
# ---------------------------------------------------------------------------

def merkle_open(local: ReplicaStore, peer: str) -> SyncMessage:
    """The first message of a Merkle exchange: this replica's root hash."""
    return SyncMessage.make(local.replica_id, peer, "mt_level",
                            {"depth": local.merkle_depth, "level": 0, "parents": [],
                             "hashes": local.tree.root})


def merkle_step(local: ReplicaStore, message: SyncMessage, *, keep_siblings: bool = False
                ) -> list[SyncMessage]:
    """One step of the Merkle exchange (kinds ``mt_level``, ``mt_buckets``, ``mt_entries``).

    ``mt_level`` ``{"depth", "level", "parents", "hashes"}`` carries the
    sender's hashes of the children of ``parents`` (the root when level is 0);
    the receiver answers with its hashes one level down under the nodes that
    differ, so the two sides descend alternately and only into differing
    subtrees. The side that finds differing leaves sends those buckets'
    entries (``mt_buckets`` ``{"depth", "leaves", "entries"}``); the other
    merges them and sends back its entries that still differ (``mt_entries``).
    """
    tree, me, peer = local.tree, local.replica_id, message.src
    depth = _field(message, "depth", int)
    if depth != tree.depth:
        raise ValidationFailed([("mt.depth", f"peer uses merkle_depth {depth}, this replica "
                                 f"{tree.depth}; every replica must use the same depth")])
    if message.kind == "mt_level":
        level = _field(message, "level", int)
        parents = _field(message, "parents", list)
        hashes = _field(message, "hashes", bytes)
        if not 0 <= level <= depth:
            raise ValidationFailed([("mt_level.level", f"out of range: {level}")])
        if level == 0:
            indices = [0]
        else:
            if any(not isinstance(p, int) or not 0 <= p < (1 << (level - 1)) for p in parents):
                raise ValidationFailed([("mt_level.parents", "index out of range")])
            indices = tree.children(parents)
        if len(hashes) != HASH_SIZE * len(indices):
            raise ValidationFailed([("mt_level.hashes", "length does not match the nodes")])
        theirs = [hashes[i * HASH_SIZE:(i + 1) * HASH_SIZE] for i in range(len(indices))]
        differing = tree.differing_nodes(level, indices, theirs)
        if not differing:
            return []
        if level == depth:
            entries = {key: local.entry(key) for leaf in differing
                       for key in tree.bucket_entries(leaf)}
            return [SyncMessage.make(me, peer, "mt_buckets",
                                     {"depth": depth, "leaves": differing, "entries": entries},
                                     entries=len(entries))]
        mine = b"".join(tree.level_hashes(level + 1, tree.children(differing)))
        return [SyncMessage.make(me, peer, "mt_level", {"depth": depth, "level": level + 1,
                                                        "parents": differing, "hashes": mine})]
    if message.kind == "mt_buckets":
        leaves = _field(message, "leaves", list)
        entries = _field(message, "entries", Mapping)
        if any(not isinstance(leaf, int) or not 0 <= leaf < tree.leaf_count for leaf in leaves):
            raise ValidationFailed([("mt_buckets.leaves", "leaf index out of range")])
        wanted = set(leaves)
        if any(not isinstance(key, str) or tree.leaf_index(key) not in wanted for key in entries):
            raise ValidationFailed([("mt_buckets.entries", "a key outside the listed buckets")])
        local.merge_entries(entries, keep_siblings=keep_siblings)
        back = {key: local.entry(key) for leaf in leaves for key in tree.bucket_entries(leaf)}
        back = {key: entry for key, entry in back.items() if entries.get(key) != entry}
        if not back:
            return []
        return [SyncMessage.make(me, peer, "mt_entries", {"depth": depth, "entries": back},
                                 entries=len(back))]
    if message.kind == "mt_entries":
        local.merge_entries(_field(message, "entries", Mapping), keep_siblings=keep_siblings)
        return []
    raise ValidationFailed([("kind", f"not a Merkle exchange message: {message.kind!r}")])


MERKLE_KINDS = frozenset({"mt_level", "mt_buckets", "mt_entries"})


class MerkleTreeSync(_FanoutOption):
    """Merkle diff: exchange hashes of differing subtrees level by level, then only their keys.

    With ``fanout`` random peers per round; see :func:`merkle_step` for the kinds.
    Costs about ``2 * 16 bytes * differing nodes`` per level plus the
    differing buckets' entries; an identical peer costs one 16-byte root.
    """

    name = "merkle_tree"

    def start_round(self, local: ReplicaStore, peers: Sequence[str], rng: random.Random
                    ) -> list[SyncMessage]:
        return [merkle_open(local, peer) for peer in _sample(peers, self.options["fanout"], rng)]

    def on_message(self, local: ReplicaStore, message: SyncMessage, rng: random.Random
                   ) -> list[SyncMessage]:
        if message.kind not in MERKLE_KINDS:
            raise _unknown_kind(self, message)
        return merkle_step(local, message)


# ---------------------------------------------------------------------------
# pulls since a watermark: last_write_wins and vector_clock
# ---------------------------------------------------------------------------

class _WatermarkPull(_FanoutOption):
    """Pull from ``fanout`` peers what changed there since the last pull from them.

    A watermark is the peer's ``(epoch, change_seq)`` as of the last complete
    pull. Without one (or when the peer's epoch changed), a peer of the same
    lineage sends its changes since sequence 0 (both started from identical
    content), any other peer sends every key.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._watermarks: dict[str, tuple[str, int]] = {}

    def _pull(self, local: ReplicaStore, peer: str, kind: str) -> SyncMessage:
        epoch, since = self._watermarks.get(peer, ("", -1))
        return SyncMessage.make(local.replica_id, peer, kind, {
            "lineage": local.lineage, "known_epoch": epoch, "since": since})

    def start_round(self, local: ReplicaStore, peers: Sequence[str], rng: random.Random
                    ) -> list[SyncMessage]:
        return [self._pull(local, peer, self.pull_kind)
                for peer in _sample(peers, self.options["fanout"], rng)]

    pull_kind: ClassVar[str]

    @staticmethod
    def _changed(local: ReplicaStore, message: SyncMessage) -> list[str]:
        """Keys the requester may lack, per its watermark or a shared lineage."""
        if _field(message, "known_epoch", str) == local.epoch:
            return local.changes_since(_field(message, "since", int))
        if _field(message, "lineage", str) == local.lineage:
            return local.changes_since(0)
        return local.keys()

    def _advance(self, message: SyncMessage) -> None:
        epoch, seq = _field(message, "epoch", str), _field(message, "seq", int)
        known = self._watermarks.get(message.src)
        if known is None or known[0] != epoch or known[1] < seq:
            self._watermarks[message.src] = (epoch, seq)

    def status(self) -> dict[str, Any]:
        return {"watermarks": {peer: seq for peer, (_, seq) in sorted(self._watermarks.items())}}


class LastWriteWinsSync(_WatermarkPull):
    """Timestamp sync: pull entries changed since a watermark; the newest HLC stamp wins.

    Kinds: ``lww_pull`` ``{"lineage", "known_epoch", "since"}`` answered by
    ``lww_changes`` ``{"entries", "epoch", "seq"}``. Concurrent versions are
    joined at once (an LWW register keeps the write with the newest hybrid
    logical clock stamp; the store's HLC observes every stamp it merges, so a
    write made after seeing another always wins, whatever the wall clocks
    say); nothing is left pending.
    """

    name = "last_write_wins"
    pull_kind = "lww_pull"

    def on_message(self, local: ReplicaStore, message: SyncMessage, rng: random.Random
                   ) -> list[SyncMessage]:
        if message.kind == "lww_pull":
            entries = local.entries(self._changed(local, message))
            return [SyncMessage.make(local.replica_id, message.src, "lww_changes", {
                "entries": entries, "epoch": local.epoch, "seq": local.change_seq},
                entries=len(entries))]
        if message.kind == "lww_changes":
            local.merge_entries(_field(message, "entries", Mapping))
            self._advance(message)
            return []
        raise _unknown_kind(self, message)


class VectorClockSync(_WatermarkPull):
    """Version vectors: fetch only entries whose versions are not dominated here; keep siblings.

    Kinds: ``vc_pull`` (as ``lww_pull``) answered by ``vc_versions``
    ``{"versions": {key: [vector, ...]}, "epoch", "seq"}``; the puller asks
    with ``vc_want`` ``{"keys", "epoch", "seq"}`` for the keys where some
    remote version is not descended from a local one, answered by
    ``vc_entries``. Concurrent versions are kept side by side
    (:meth:`ReplicaStore.conflicts`) until ``resolve_conflict`` or a later
    write collapses them.
    """

    name = "vector_clock"
    pull_kind = "vc_pull"

    def on_message(self, local: ReplicaStore, message: SyncMessage, rng: random.Random
                   ) -> list[SyncMessage]:
        me, peer = local.replica_id, message.src
        if message.kind == "vc_pull":
            keys = self._changed(local, message)
            versions = {key: [vector.to_dict() for vector, _ in local.siblings(key)]
                        for key in keys}
            return [SyncMessage.make(me, peer, "vc_versions", {
                "versions": versions, "epoch": local.epoch, "seq": local.change_seq})]
        if message.kind == "vc_versions":
            versions = _field(message, "versions", Mapping)
            wanted = [key for key, vectors in versions.items()
                      if not self._known(local, key, vectors)]
            if not wanted:
                self._advance(message)
                return []
            return [SyncMessage.make(me, peer, "vc_want", {
                "keys": wanted, "epoch": _field(message, "epoch", str),
                "seq": _field(message, "seq", int)})]
        if message.kind == "vc_want":
            keys = _field(message, "keys", list)
            entries = local.entries(key for key in keys if isinstance(key, str))
            return [SyncMessage.make(me, peer, "vc_entries", {
                "entries": entries, "epoch": _field(message, "epoch", str),
                "seq": _field(message, "seq", int)}, entries=len(entries))]
        if message.kind == "vc_entries":
            local.merge_entries(_field(message, "entries", Mapping), keep_siblings=True)
            self._advance(message)
            return []
        raise _unknown_kind(self, message)

    @staticmethod
    def _known(local: ReplicaStore, key: Any, vectors: Any) -> bool:
        """Whether every remote version of ``key`` is descended from a local version."""
        if not isinstance(key, str) or not isinstance(vectors, list):
            raise ValidationFailed([("vc_versions.versions", f"malformed entry for {key!r}")])
        mine = [vector for vector, _ in local.siblings(key)]
        return all(any(vector.descends(VectorClock.from_dict(theirs)) for vector in mine)
                   for theirs in vectors)


# ---------------------------------------------------------------------------
# gossip
# ---------------------------------------------------------------------------

class GossipSync(SyncStrategy):
    """Rumour mongering: push recently changed entries to ``fanout`` random peers per round.

    A key becomes a hot rumour when it changes here (a local write, or a
    merge of news from a peer) and is pushed for ``rounds_hot`` rounds
    (0: ``ceil(log2(N)) + 2`` for N replicas). Each informed replica informs
    ``fanout`` more per round, so news reaches all N replicas in O(log N)
    rounds. Rumours that die before reaching everyone (e.g. behind a
    partition) are caught by a Merkle repair (:func:`merkle_step`) that an
    idle replica runs with one random peer every ``repair_every`` rounds
    (0 disables it). Kinds: ``gossip_push`` ``{"entries"}`` (no reply) and
    the Merkle kinds.
    """

    name = "gossip"
    option_defaults: ClassVar[Mapping[str, Any]] = {"fanout": 2, "rounds_hot": 0,
                                                    "repair_every": 4}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._cursor = 0
        self._hot: dict[str, int] = {}
        self._rounds = 0

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _positive_ints(options, "fanout", "rounds_hot", "repair_every",
                              allow_zero=("rounds_hot", "repair_every"))

    def rounds_hot(self, replicas: int) -> int:
        """Rounds a rumour stays hot in a cluster of ``replicas``."""
        configured = self.options["rounds_hot"]
        return configured or math.ceil(math.log2(max(2, replicas))) + 2

    def start_round(self, local: ReplicaStore, peers: Sequence[str], rng: random.Random
                    ) -> list[SyncMessage]:
        self._rounds += 1
        ttl = self.rounds_hot(len(peers) + 1)
        for key in local.changes_since(self._cursor):
            self._hot[key] = ttl
        self._cursor = local.change_seq
        if not peers:
            return []
        if self._hot:
            entries = local.entries(self._hot)
            self._hot = {key: left - 1 for key, left in self._hot.items() if left > 1}
            return [SyncMessage.make(local.replica_id, peer, "gossip_push",
                                     {"entries": entries}, entries=len(entries))
                    for peer in _sample(peers, self.options["fanout"], rng)]
        every = self.options["repair_every"]
        if every and self._rounds % every == 0:
            return [merkle_open(local, rng.choice(sorted(peers)))]
        return []

    def on_message(self, local: ReplicaStore, message: SyncMessage, rng: random.Random
                   ) -> list[SyncMessage]:
        if message.kind == "gossip_push":
            local.merge_entries(_field(message, "entries", Mapping))
            return []
        if message.kind in MERKLE_KINDS:
            return merkle_step(local, message)
        raise _unknown_kind(self, message)

    def status(self) -> dict[str, Any]:
        return {"hot_rumours": len(self._hot), "rounds": self._rounds}


# ---------------------------------------------------------------------------
# causal
# ---------------------------------------------------------------------------

class CausalSync(SyncStrategy):
    """Causal delivery: an update waits in a buffer until every update it depends on is here.

    Each local write (reported through :meth:`on_local_update`) becomes an
    update ``{"origin", "seq", "deps", "key", "entry"}``: ``seq`` numbers the
    origin's writes, ``deps`` is the vector of updates the origin had
    delivered, ``entry`` the key's state right after the write. New updates
    are broadcast to every reachable peer at the next round (``causal_updates``).
    A receiver delivers (merges) an update only when it has delivered the
    origin's ``seq - 1`` and everything in ``deps``; until then it is
    buffered, so a reader never sees an effect before its cause.

    Catch-up: each round one random peer gets ``causal_sync`` ``{"delivered",
    "bases", "reply"}``; it answers with the updates the sender lacks from its
    log (``causal_updates``), and, when it lacks some itself, with a
    ``causal_sync`` of its own (``reply`` true, which is never answered by
    another sync). When its log no longer holds what is needed (older than
    ``log_limit`` updates per origin, or received in a snapshot), or the
    requester started from other content (``bases``: store lineages merged),
    it sends ``causal_snapshot`` ``{"entries", "delivered", "bases"}``: its whole
    store, which is causally closed, so merging it is safe.
    """

    name = "causal"
    option_defaults: ClassVar[Mapping[str, Any]] = {"log_limit": 100_000}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._delivered: dict[str, int] = {}
        self._log: dict[str, dict[int, dict[str, Any]]] = {}
        self._buffer: dict[tuple[str, int], dict[str, Any]] = {}
        self._outbox: list[dict[str, Any]] = []
        self._bases: set[str] = set()

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        return _positive_ints(options, "log_limit")

    @property
    def delivered(self) -> VectorClock:
        """Updates delivered here, per origin."""
        return VectorClock(self._delivered)

    def _init(self, local: ReplicaStore) -> None:
        if not self._bases:
            self._bases.add(local.lineage)

    def _remember(self, update: dict[str, Any]) -> None:
        log = self._log.setdefault(update["origin"], {})
        log[update["seq"]] = update
        log.pop(update["seq"] - self.options["log_limit"], None)

    def on_local_update(self, local: ReplicaStore, key: str, rng: random.Random
                        ) -> list[SyncMessage]:
        self._init(local)
        me = local.replica_id
        seq = self._delivered.get(me, 0) + 1
        update = {"origin": me, "seq": seq, "key": key, "entry": local.entry(key),
                  "deps": {o: n for o, n in self._delivered.items() if o != me}}
        self._delivered[me] = seq
        self._remember(update)
        self._outbox.append(update)
        return []

    def start_round(self, local: ReplicaStore, peers: Sequence[str], rng: random.Random
                    ) -> list[SyncMessage]:
        self._init(local)
        me, messages = local.replica_id, []
        if self._outbox and peers:
            for peer in sorted(peers):
                messages.append(SyncMessage.make(me, peer, "causal_updates",
                                                 {"updates": list(self._outbox)},
                                                 entries=len(self._outbox)))
            self._outbox.clear()
        if peers:
            messages.append(self._sync(me, rng.choice(sorted(peers)), reply=False))
        return messages

    def _sync(self, me: str, peer: str, *, reply: bool) -> SyncMessage:
        return SyncMessage.make(me, peer, "causal_sync", {
            "delivered": dict(self._delivered), "bases": sorted(self._bases), "reply": reply})

    def on_message(self, local: ReplicaStore, message: SyncMessage, rng: random.Random
                   ) -> list[SyncMessage]:
        self._init(local)
        me, peer = local.replica_id, message.src
        if message.kind == "causal_updates":
            self._receive(local, _field(message, "updates", list))
            return []
        if message.kind == "causal_snapshot":
            self._merge_snapshot(local, message)
            return []
        if message.kind != "causal_sync":
            raise _unknown_kind(self, message)
        theirs = VectorClock.from_dict(_field(message, "delivered", Mapping))
        bases = set(_field(message, "bases", list))
        replies = self._answer(local, peer, theirs, bases)
        behind = not VectorClock(self._delivered).descends(theirs) or not bases <= self._bases
        if behind and not _field(message, "reply", bool):
            replies.append(self._sync(me, peer, reply=True))
        return replies

    def _answer(self, local: ReplicaStore, peer: str, theirs: VectorClock, bases: set[str]
                ) -> list[SyncMessage]:
        """What ``peer`` (which has delivered ``theirs``) lacks: updates, or a snapshot."""
        me = local.replica_id
        missing: list[dict[str, Any]] = []
        complete = self._bases <= bases
        for origin, count in sorted(self._delivered.items()):
            log = self._log.get(origin, {})
            for seq in range(theirs.get(origin) + 1, count + 1):
                update = log.get(seq)
                if update is None:
                    complete = False
                    break
                missing.append(update)
        if not complete:
            entries = local.snapshot()
            return [SyncMessage.make(me, peer, "causal_snapshot", {
                "entries": entries, "delivered": dict(self._delivered),
                "bases": sorted(self._bases)}, entries=len(entries))]
        if not missing:
            return []
        return [SyncMessage.make(me, peer, "causal_updates", {"updates": missing},
                                 entries=len(missing))]

    def _receive(self, local: ReplicaStore, updates: list[Any]) -> None:
        checked = [(self._check_update(update), update) for update in updates]
        for (origin, seq), update in checked:
            if seq > self._delivered.get(origin, 0):
                self._buffer[(origin, seq)] = update
        self._deliver_ready(local)

    @staticmethod
    def _check_update(update: Any) -> tuple[str, int]:
        if (not isinstance(update, Mapping) or not isinstance(update.get("origin"), str)
                or isinstance(update.get("seq"), bool) or not isinstance(update.get("seq"), int)
                or update["seq"] < 1 or not isinstance(update.get("key"), str)
                or not isinstance(update.get("deps"), Mapping) or "entry" not in update):
            raise ValidationFailed([("causal_updates.updates", f"malformed update {update!r}")])
        VectorClock.from_dict(update["deps"])
        return update["origin"], update["seq"]

    def _deliverable(self, update: Mapping[str, Any]) -> bool:
        origin, delivered = update["origin"], self._delivered
        return (delivered.get(origin, 0) == update["seq"] - 1
                and all(delivered.get(node, 0) >= count
                        for node, count in update["deps"].items() if node != origin))

    def _deliver_ready(self, local: ReplicaStore) -> None:
        progress = True
        while progress:
            progress = False
            for ident in sorted(self._buffer):
                update = self._buffer[ident]
                if update["seq"] <= self._delivered.get(update["origin"], 0):
                    del self._buffer[ident]        # covered by a snapshot meanwhile
                elif self._deliverable(update):
                    del self._buffer[ident]
                    local.merge_entry(update["key"], update["entry"])
                    self._delivered[update["origin"]] = update["seq"]
                    self._remember(update)
                    progress = True

    def _merge_snapshot(self, local: ReplicaStore, message: SyncMessage) -> None:
        entries = _field(message, "entries", Mapping)
        theirs = VectorClock.from_dict(_field(message, "delivered", Mapping))
        bases = _field(message, "bases", list)
        local.merge_entries(entries)
        for origin, count in theirs.items():
            if count > self._delivered.get(origin, 0):
                self._delivered[origin] = count
        self._bases.update(base for base in bases if isinstance(base, str))
        self._deliver_ready(local)

    def status(self) -> dict[str, Any]:
        return {"delivered": dict(sorted(self._delivered.items())),
                "buffered": len(self._buffer), "outbox": len(self._outbox),
                "logged": sum(len(log) for log in self._log.values())}


# ---------------------------------------------------------------------------

SYNC_STRATEGIES: dict[str, type[SyncStrategy]] = {
    cls.name: cls for cls in (AntiEntropySync, MerkleTreeSync, VectorClockSync, GossipSync,
                              LastWriteWinsSync, CausalSync)}
"""The built-in sync strategies by name (the entry points register the same classes;
load any installed one with ``strategies.load("sync", name, **options)``)."""
