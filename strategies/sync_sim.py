"""A pure, seeded simulator that runs a sync strategy over N replica stores in one process.

:class:`SyncSimulation` gives every replica its own strategy instance
(:meth:`SyncStrategy.fresh`), and runs rounds: every replica calls
``start_round`` with the peers it can reach, then messages are delivered
(and their replies, and theirs) until none is left. Partitions drop messages
between groups; optional faults delay messages to a later round, reorder,
duplicate or drop them. Every message put on the wire is counted in
:attr:`SyncSimulation.stats` (bytes, messages, entries shipped), dropped or
not, so strategies are compared on what they spend. The simulation is
deterministic for a given seed.
"""

from __future__ import annotations

import dataclasses
import pickle
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import strategies
from cluster_actors.core.crdt import CRDT
from cluster_actors.core.store import ReplicaStore
from cluster_actors.errors import SyncFailed, ValidationFailed
from strategies.sync_base import SyncMessage, SyncStats, SyncStrategy

__all__ = ["ExperimentResult", "SyncSimulation", "build_experiment_base", "partition_experiment"]


class SyncSimulation:
    """N replicas converging with one strategy; see the module docstring.

    ``strategy`` is an instance (its options are copied to every replica) or
    a name for ``strategies.load("sync", name)``.

    ``on_deliver(message, simulation)``, if given, runs after each message is
    handled (to check invariants between deliveries). ``copy_payloads``
    pickles every payload on delivery, as a real transport does, so no
    replica can share mutable data with another.
    """

    def __init__(self, stores: Iterable[ReplicaStore], strategy: SyncStrategy | str, *,
                 seed: int = 0, reorder: bool = False, delay_rate: float = 0.0,
                 duplicate_rate: float = 0.0, drop_rate: float = 0.0,
                 copy_payloads: bool = False, max_deliveries_per_round: int = 1_000_000,
                 on_deliver: Callable[[SyncMessage, SyncSimulation], None] | None = None
                 ) -> None:
        template = strategies.load("sync", strategy) if isinstance(strategy, str) else strategy
        self.stores: dict[str, ReplicaStore] = {}
        for store in stores:
            if store.replica_id in self.stores:
                raise ValidationFailed([("stores", f"duplicate replica id {store.replica_id!r}")])
            self.stores[store.replica_id] = store
        self.strategies: dict[str, SyncStrategy] = {rid: template.fresh() for rid in self.stores}
        self.rng = random.Random(seed)
        self.reorder, self.copy_payloads = reorder, copy_payloads
        self.delay_rate, self.duplicate_rate, self.drop_rate = delay_rate, duplicate_rate, drop_rate
        self.max_deliveries_per_round = max_deliveries_per_round
        self.on_deliver = on_deliver
        self.stats = SyncStats()
        self.round = 0
        self.now = 0.0
        self.dropped = 0
        self.rejected = 0
        self._groups: list[frozenset[str]] | None = None
        self._queue: deque[SyncMessage] = deque()
        self._delayed: list[SyncMessage] = []

    # -- topology -------------------------------------------------------------------
    def partition(self, groups: Sequence[Iterable[str]]) -> None:
        """Cut the replicas into ``groups``; messages between groups are dropped."""
        self._groups = [frozenset(group) for group in groups]

    def heal(self) -> None:
        self._groups = None

    def reachable(self, a: str, b: str) -> bool:
        if self._groups is None:
            return True
        return any(a in group and b in group for group in self._groups)

    def peers_of(self, replica_id: str) -> list[str]:
        return [rid for rid in sorted(self.stores)
                if rid != replica_id and self.reachable(replica_id, rid)]

    # -- local writes (store first, then the strategy's hook) -------------------------
    def update(self, replica_id: str, key: str, change: Any) -> CRDT:
        """``stores[replica_id].update(key, change)``, reported to the strategy."""
        result = self.stores[replica_id].update(key, change)
        self._written(replica_id, key)
        return result

    def put_register(self, replica_id: str, key: str, value: Any) -> CRDT:
        """An LWW register write at the simulation's current time."""
        result = self.stores[replica_id].put_register(key, value, self.now)
        self._written(replica_id, key)
        return result

    def resolve_conflict(self, replica_id: str, key: str, resolution: str,
                         value: Any = None) -> bool:
        changed = self.stores[replica_id].resolve_conflict(key, resolution, value, now=self.now)
        if changed:
            self._written(replica_id, key)
        return changed

    def _written(self, replica_id: str, key: str) -> None:
        strategy = self.strategies[replica_id]
        self.send(strategy.on_local_update(self.stores[replica_id], key, self.rng))

    # -- running ----------------------------------------------------------------------
    def send(self, messages: Iterable[SyncMessage]) -> None:
        """Count messages and queue them for delivery."""
        for message in messages:
            self.stats.count(message)
            self._queue.append(message)

    def run_round(self) -> None:
        """One round: every replica opens, then deliver until no message is left."""
        self.round += 1
        self.stats.rounds += 1
        self.now += 1.0
        self._queue.extend(self._delayed)
        self._delayed = []
        for rid in sorted(self.stores):
            strategy = self.strategies[rid]
            self.send(strategy.start_round(self.stores[rid], self.peers_of(rid), self.rng))
        self.deliver()

    def deliver(self) -> None:
        """Deliver queued messages (and their replies) until none is left this round."""
        deliveries = 0
        while self._queue:
            if self.reorder and len(self._queue) > 1:
                self._queue.rotate(-self.rng.randrange(len(self._queue)))
            message = self._queue.popleft()
            if (not self.reachable(message.src, message.dst)
                    or (self.drop_rate and self.rng.random() < self.drop_rate)):
                self.dropped += 1
                continue
            if self.delay_rate and self.rng.random() < self.delay_rate:
                self._delayed.append(message)
                continue
            copies = 2 if self.duplicate_rate and self.rng.random() < self.duplicate_rate else 1
            for _ in range(copies):
                deliveries += 1
                if deliveries > self.max_deliveries_per_round:
                    raise SyncFailed(f"more than {self.max_deliveries_per_round} deliveries in "
                                     f"round {self.round}: the strategy does not quiesce")
                self._deliver_one(message)

    def _deliver_one(self, message: SyncMessage) -> None:
        if self.copy_payloads:
            message = dataclasses.replace(message, payload=pickle.loads(pickle.dumps(
                message.payload, protocol=pickle.HIGHEST_PROTOCOL)))
        strategy, store = self.strategies[message.dst], self.stores[message.dst]
        try:
            replies = strategy.on_message(store, message, self.rng)
        except ValidationFailed:
            self.rejected += 1
            return
        self.send(replies)
        if self.on_deliver is not None:
            self.on_deliver(message, self)

    def converged(self) -> bool:
        """Whether every store has the same state hash."""
        return len({store.state_hash() for store in self.stores.values()}) == 1

    def run_until_converged(self, max_rounds: int = 100) -> int:
        """Run rounds until :meth:`converged`; the rounds run (SyncFailed after ``max_rounds``)."""
        for rounds in range(max_rounds + 1):
            if self.converged() and not self._delayed:
                return rounds
            if rounds < max_rounds:
                self.run_round()
        raise SyncFailed(f"replicas did not converge within {max_rounds} rounds")

    def reset_stats(self) -> None:
        self.stats = SyncStats()


# ---------------------------------------------------------------------------
# The partition experiment: what each strategy spends to repair a divergence
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ExperimentResult:
    """One strategy's run of :func:`partition_experiment`."""

    strategy: str
    bytes_sent: int
    messages: int
    keys_transferred: int
    rounds_after_heal: int
    total_rounds: int
    state_hash: str
    resolved_hash: str
    conflicts: int
    stores: dict[str, ReplicaStore] = dataclasses.field(repr=False, compare=False)
    writes: dict[str, list[tuple[str, Any]]] = dataclasses.field(repr=False, compare=False)


def build_experiment_base(keys: int, *, merkle_depth: int | None = None) -> ReplicaStore:
    """A store of ``keys`` keys, mixed CRDT types (7 in 10 LWW registers, then a
    PN-counter, an OR-set and an MV-register), every replica's common ancestor."""
    from cluster_actors.core.crdt import LWWRegister, MVRegister, ORSet, PNCounter
    from cluster_actors.core.merkle import depth_for_keys
    from cluster_actors.core.vclock import HLCTimestamp

    stamp = HLCTimestamp(0, 0, "seed")
    values: dict[str, CRDT] = {}
    for i in range(keys):
        kind = i % 10
        if kind == 7:
            value: CRDT = PNCounter().increment("seed", 1 + i % 5)
        elif kind == 8:
            value = ORSet().add("seed", f"e{i}")
        elif kind == 9:
            value = MVRegister().assign("seed", f"v{i}")
        else:
            value = LWWRegister(f"v{i}", stamp)
        values[f"key:{i:06d}"] = value
    depth = merkle_depth if merkle_depth is not None else depth_for_keys(keys)
    return ReplicaStore.from_values("seed", values, merkle_depth=depth)


def _write(sim: SyncSimulation, replica: str, key: str, label: str) -> Any:
    """A type-appropriate local write of ``label`` to ``key`` at ``replica``; its effect."""
    from cluster_actors.core.crdt import LWWRegister, MVRegister, ORSet, PNCounter

    current = sim.stores[replica].get(key)
    if isinstance(current, LWWRegister):
        return sim.put_register(replica, key, label).timestamp
    if isinstance(current, PNCounter):
        sim.update(replica, key, lambda c: c.increment(replica, 1))
        return 1
    if isinstance(current, ORSet):
        sim.update(replica, key, lambda s: s.add(replica, label))
        return label
    if isinstance(current, MVRegister):
        sim.update(replica, key, lambda r: r.assign(replica, label))
        return label
    raise TypeError(f"no write defined for {type(current).__name__}")


def partition_experiment(strategy: SyncStrategy | str, base: ReplicaStore, *,
                         replicas: int = 5, divergence: float = 0.001, conflicting: float = 0.1,
                         partition_rounds: int = 2, seed: int = 7, max_rounds: int = 60
                         ) -> ExperimentResult:
    """Partition ``replicas`` copies of ``base``, diverge, heal, and converge.

    The replicas split into a minority and a majority side; ``divergence``
    of the keys are then written (a share ``conflicting`` of them on both
    sides, the rest on one side, each at a random replica of its side);
    ``partition_rounds`` rounds run inside the sides, the partition heals and
    rounds run until every store's state hash is equal. Every message from
    the first write on is counted. SyncFailed if it does not converge.
    """
    names = [f"r{i}" for i in range(1, replicas + 1)]
    sim = SyncSimulation([base.copy(name) for name in names], strategy, seed=seed)
    rng = random.Random(seed)
    minority, majority = names[:replicas // 2], names[replicas // 2:]
    sim.partition([minority, majority])
    changed = rng.sample(base.keys(), max(1, round(len(base) * divergence)))
    both = round(len(changed) * conflicting)
    writes: dict[str, list[tuple[str, Any]]] = {}
    for n, key in enumerate(changed):
        sides = [minority, majority] if n < both else [(minority, majority)[n % 2]]
        for side in sides:
            replica = rng.choice(side)
            writes.setdefault(key, []).append((replica, _write(sim, replica, key, f"{replica}-{n}")))
    for _ in range(partition_rounds):
        sim.run_round()
    sim.heal()
    rounds = sim.run_until_converged(max_rounds)
    first = sim.stores[names[0]]
    return ExperimentResult(
        strategy=sim.strategies[names[0]].name, bytes_sent=sim.stats.bytes_sent,
        messages=sim.stats.messages, keys_transferred=sim.stats.keys_transferred,
        rounds_after_heal=rounds, total_rounds=sim.round, state_hash=first.state_hash(),
        resolved_hash=first.resolved_hash(), conflicts=len(first.conflicts()),
        stores=sim.stores, writes=writes)
