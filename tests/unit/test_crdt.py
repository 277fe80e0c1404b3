"""CRDT laws, convergence under a faulty network, reference models, conflict resolution."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.crdt import (
    CRDT,
    CRDT_TYPES,
    GCounter,
    GSet,
    LWWElementSet,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
    crdt_from_data,
    resolve_conflict,
)
from cluster_actors.core.vclock import HLCTimestamp, VectorClock
from cluster_actors.errors import ValidationFailed

ELEMENTS = ("x", "y", "z")
VALUES = ("red", "green", ["blue", 1])


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------------
# Each kind: an empty state, an operation on it, and an independent reference
# model. A model replica is the set of operation records it has seen; merge is
# set union; the model's value is computed from the records alone.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    empty: Callable[[], CRDT]
    apply: Callable[[CRDT, str, int, int, frozenset], tuple[CRDT, Any]]
    model_value: Callable[[frozenset], Any] | None


def stamp(wall: int, replica: str, code: int) -> Any:
    # both accepted timestamp spellings; small walls force ties
    return HLCTimestamp(wall, 0, replica) if code % 2 else (wall, replica)


def _gcounter(s, r, code, arg, seen):
    return s.increment(r, arg), ("inc", arg)


def _pncounter(s, r, code, arg, seen):
    amount = arg if code % 2 else -arg
    return s.increment(r, amount), ("inc", amount)


def _gset(s, r, code, arg, seen):
    element = ELEMENTS[(code + arg) % 3]
    return s.add(element), ("add", element)


def _live_adds(records: frozenset) -> dict[Any, Any]:
    killed = set().union(*(rec[1][2] for rec in records)) if records else set()
    return {uid: rec[1][1] for rec in records for uid in [rec[0]]
            if rec[1][0] in ("add", "put") and uid not in killed}


def _orset(s, r, code, arg, seen):
    element = ELEMENTS[arg % 3]
    killed = frozenset(uid for uid, x in _live_adds(seen).items() if x == element)
    if code % 2:
        return s.add(r, element), ("add", element, killed)
    return s.remove(element), ("rem", element, killed)


def _orset_value(records):
    return frozenset(_live_adds(records).values())


def _lwwregister(s, r, code, arg, seen):
    value = VALUES[code % 3]
    ts = stamp(arg, r, code)
    as_hlc = HLCTimestamp(*ts) if len(ts) == 3 else HLCTimestamp(ts[0], 0, ts[1])
    return s.assign(value, ts), ("w", as_hlc, canonical(value))


def _lwwregister_value(records):
    writes = [rec[1] for rec in records]
    if not writes:
        return None
    return json.loads(max(writes, key=lambda w: (w[1], w[2]))[2])


def _lwwset(s, r, code, arg, seen):
    element = ELEMENTS[code % 3]
    ts = HLCTimestamp(arg, 0, r)
    if code < 2:
        return s.add(element, ts), ("add", element, ts)
    return s.remove(element, ts), ("rem", element, ts)


def _lwwset_value(records):
    result = set()
    for element in ELEMENTS:
        adds = [rec[1][2] for rec in records if rec[1][:2] == ("add", element)]
        removes = [rec[1][2] for rec in records if rec[1][:2] == ("rem", element)]
        if adds and (not removes or max(adds) >= max(removes)):
            result.add(element)
    return frozenset(result)


def _mvregister(s, r, code, arg, seen):
    value = VALUES[(code + arg) % 3]
    return s.assign(r, value), ("w", canonical(value), frozenset(rec[0] for rec in seen))


def _mvregister_value(records):
    superseded = set().union(*(rec[1][2] for rec in records)) if records else set()
    live = [rec[1][1] for rec in records if rec[0] not in superseded]
    return tuple(json.loads(text) for text in sorted(live))


def _ormap(s, r, code, arg, seen):
    if code == 0:
        return s.update(r, "c", lambda c: c.increment(r, arg), PNCounter()), None
    if code == 1:
        return s.update(r, "s", lambda o: o.add(r, ELEMENTS[arg % 3]), ORSet()), None
    if code == 2:
        return s.update(r, "s", lambda o: o.remove(ELEMENTS[arg % 3]), ORSet()), None
    return s.remove("cs"[arg % 2]), None


KINDS: dict[str, Kind] = {
    "gcounter": Kind(GCounter, _gcounter, lambda rs: sum(rec[1][1] for rec in rs)),
    "pncounter": Kind(PNCounter, _pncounter, lambda rs: sum(rec[1][1] for rec in rs)),
    "gset": Kind(GSet, _gset, lambda rs: frozenset(rec[1][1] for rec in rs)),
    "orset": Kind(ORSet, _orset, _orset_value),
    "lwwregister": Kind(LWWRegister, _lwwregister, _lwwregister_value),
    "mvregister": Kind(MVRegister, _mvregister, _mvregister_value),
    "lwwelementset": Kind(LWWElementSet, _lwwset, _lwwset_value),
    "ormap": Kind(ORMap, _ormap, None),
}


class Replica:
    """One replica: the CRDT state plus the reference model's records."""

    def __init__(self, name: str, kind: Kind) -> None:
        self.name, self.kind = name, kind
        self.state = kind.empty()
        self.records: frozenset = frozenset()
        self.seq = 0

    def op(self, code: int, arg: int) -> None:
        before = self.state
        self.state, record = self.kind.apply(before, self.name, code, arg, self.records)
        assert before.le(self.state), "an update must only grow the state"
        if record is not None:
            self.seq += 1
            self.records = self.records | {((self.name, self.seq), record)}

    def receive(self, state: CRDT, records: frozenset) -> None:
        before = self.state
        self.state = before.merge(state)
        assert before.le(self.state) and state.le(self.state)
        self.records = self.records | records

    def check_model(self) -> None:
        if self.kind.model_value is not None:
            assert self.state.value() == self.kind.model_value(self.records)


# a program step: (replica, action, code, arg); action 3 = merge from a neighbour
STEP = st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))
PROGRAM = st.lists(STEP, max_size=12)
PICKS = st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99))


def reachable_states(kind_name: str, program: list[tuple[int, int, int, int]]) -> list[CRDT]:
    """Every state three replicas pass through while running ``program``."""
    kind = KINDS[kind_name]
    replicas = [Replica(f"r{i}", kind) for i in range(3)]
    states = [replicas[0].state]
    for index, action, code, arg in program:
        replica = replicas[index]
        if action == 3:
            source = replicas[(index + 1 + code % 2) % 3]
            replica.receive(source.state, source.records)
        else:
            replica.op(code, arg)
        replica.check_model()
        states.append(replica.state)
    return states


def three(kind_name: str, program, picks) -> tuple[CRDT, CRDT, CRDT]:
    states = reachable_states(kind_name, program)
    a, b, c = (states[p % len(states)] for p in picks)
    return a, b, c


ALL_KINDS = sorted(KINDS)


# ---------------------------------------------------------------------------
# Merge laws
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=1000)
@given(program=PROGRAM, picks=PICKS)
def test_merge_is_commutative_associative_idempotent_and_inflationary(
        kind: str, program, picks) -> None:
    # one drawn triple of reachable states checks all four laws (1000 examples each)
    a, b, c = three(kind, program, picks)
    merged = a.merge(b)
    assert merged == b.merge(a), "commutative"
    assert merged.value() == b.merge(a).value(), "commutative (value)"
    assert merged.merge(c) == a.merge(b.merge(c)), "associative"
    assert a.merge(a) == a and merged.merge(b) == merged, "idempotent"
    assert a.le(merged) and b.le(merged), "inflationary"
    assert a <= merged and b <= merged, "inflationary (operator)"
    # the comparator is the semilattice order: a <= b exactly when a merge b == b
    assert a.le(b) == (merged == b), "le agrees with merge"
    assert b.le(a) == (merged == a), "le agrees with merge"


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=200)
@given(program=PROGRAM, picks=PICKS)
def test_to_data_round_trips_through_json(kind: str, program, picks) -> None:
    a, _, _ = three(kind, program, picks)
    wire = json.loads(json.dumps(a.to_data()))
    assert wire["type"] == kind
    restored = crdt_from_data(wire)
    assert type(restored) is type(a)
    assert restored == a
    assert restored.value() == a.value()
    assert type(a).from_data(wire) == a


# ---------------------------------------------------------------------------
# Convergence: 5 replicas, ops, gossip with drop / duplication / reordering
# ---------------------------------------------------------------------------

EVENT = st.tuples(st.integers(0, 5), st.integers(0, 4), st.integers(0, 4),
                  st.integers(0, 3), st.integers(0, 3))


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=1000)
@given(events=st.lists(EVENT, max_size=30))
def test_five_replicas_converge_under_drop_duplication_and_reordering(kind: str, events) -> None:
    replicas = [Replica(f"n{i}", KINDS[kind]) for i in range(5)]
    network: list[tuple[int, CRDT, frozenset]] = []      # (destination, state, records)
    for event, i, j, code, arg in events:
        if event <= 1:                                   # an update
            replicas[i].op(code, arg)
            replicas[i].check_model()
        elif event == 2:                                 # gossip i -> j (a snapshot)
            network.append((j, replicas[i].state, replicas[i].records))
        elif network:
            position = (j * 7 + code) % len(network)     # any message: reordering
            destination, state, records = network[position]
            if event != 4:                               # 4 duplicates: deliver, keep queued
                network.pop(position)
            if event != 5:                               # 5 drops it
                replicas[destination].receive(state, records)
                replicas[destination].check_model()
    expected = replicas[0].state
    for replica in replicas[1:]:
        expected = expected.merge(replica.state)
    snapshots = [(r.state, r.records) for r in replicas]  # final full exchange
    for index, replica in enumerate(replicas):
        for other, (state, records) in enumerate(snapshots):
            if other != index:
                replica.receive(state, records)
    for replica in replicas:
        assert replica.state == expected
        assert replica.state.value() == expected.value()
        replica.check_model()


# ---------------------------------------------------------------------------
# Type-specific behaviour
# ---------------------------------------------------------------------------

def test_orset_add_wins_over_concurrent_remove_and_remove_needs_no_tombstone() -> None:
    base = ORSet().add("a", "x")
    removed = base.remove("x")
    readded = base.add("b", "x")
    assert "x" not in removed
    assert removed.merge(readded).value() == {"x"}
    assert readded.merge(removed).value() == {"x"}
    gone = base.merge(removed)
    assert gone.value() == frozenset()
    assert gone.to_data()["entries"] == []           # the remove left no tombstone
    assert gone.merge(base).value() == frozenset()   # and an old copy cannot resurrect it


def test_ormap_remove_resets_the_key_but_a_concurrent_update_survives() -> None:
    base = ORMap().update("a", "k", lambda c: c.increment("a", 5), GCounter())
    removed = base.remove("k")
    bumped = base.update("b", "k", lambda c: c.increment("b"))
    assert removed.merge(bumped).value() == {"k": 6}
    fresh = base.merge(removed).put("a", "k", GCounter().increment("a", 1))
    assert fresh.value() == {"k": 1}
    assert fresh.merge(base).value() == {"k": 1}


def test_ormap_concurrent_updates_to_one_key_merge_with_the_embedded_crdt() -> None:
    base = ORMap().put("a", "k", PNCounter())
    left = base.update("a", "k", lambda c: c.increment("a", 2))
    right = base.update("b", "k", lambda c: c.decrement("b", 5))
    assert left.merge(right).value() == {"k": -3}
    assert left.merge(right).get("k") == PNCounter({"a": 2}, {"b": 5})


def test_lww_register_ties_are_broken_by_node_id_then_value() -> None:
    first = LWWRegister("one", HLCTimestamp(10, 0, "a"))
    second = LWWRegister("two", HLCTimestamp(10, 0, "b"))
    assert first.merge(second).value() == "two"
    assert second.merge(first).value() == "two"
    assert first.assign("old", (9, "z")).value() == "one"   # an older write loses
    same_stamp = LWWRegister("zzz", HLCTimestamp(10, 0, "a"))
    assert first.merge(same_stamp) == same_stamp.merge(first)


def test_mv_register_keeps_concurrent_writes_and_a_later_write_supersedes_them() -> None:
    base = MVRegister().assign("a", 1)
    left, right = base.assign("a", 2), base.assign("b", 3)
    both = left.merge(right)
    assert both.value() == (2, 3)
    assert both.clock == VectorClock({"a": 2, "b": 1})
    assert both.assign("c", 4).value() == (4,)
    assert both.assign("c", 4).merge(left).merge(right).value() == (4,)


def test_lww_element_set_add_wins_a_tie_and_newest_stamp_decides() -> None:
    s = LWWElementSet().add("x", (5, "a")).remove("x", (5, "a"))
    assert s.value() == {"x"}
    s = s.remove("x", (6, "a"))
    assert s.value() == frozenset()
    assert s.add("x", (4, "z")).value() == frozenset()


def test_counters() -> None:
    g = GCounter().increment("a", 3).increment("b")
    assert g.value() == 4 and g.counts == {"a": 3, "b": 1}
    with pytest.raises(ValueError):
        g.increment("a", -1)
    p = PNCounter().increment("a", 5).decrement("b", 7)
    assert p.value() == -2
    assert GSet(["x"]).add(("t", 1)).value() == {"x", ("t", 1)}


def test_registry_covers_every_type_and_rejects_bad_data() -> None:
    assert set(CRDT_TYPES) == set(KINDS)
    for name, cls in CRDT_TYPES.items():
        assert cls.type_name == name and crdt_from_data(cls().to_data()) == cls()
    bad = [None, [], {"type": "nope"}, {"type": "gcounter"},
           {"type": "gcounter", "counts": {"a": -1}},
           {"type": "orset", "entries": [["x", [["a", 3]]]], "context": {"a": 1}},
           {"type": "orset", "entries": [[{"d": 1}, [["a", 1]]]], "context": {"a": 1}},
           {"type": "lwwregister", "value": 1, "timestamp": "soon"},
           {"type": "ormap", "entries": [["k", [[["a", 1], {"type": "nope"}]]]],
            "context": {"a": 1}}]
    for data in bad:
        with pytest.raises(ValidationFailed):
            crdt_from_data(data)
    with pytest.raises(ValidationFailed):
        GCounter.from_data(GSet().to_data())


def test_merging_different_types_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        GCounter().merge(PNCounter())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        resolve_conflict(GSet(), ORSet(), "merge")  # type: ignore[type-var]


def test_elements_and_values_must_be_json() -> None:
    with pytest.raises(TypeError):
        GSet().add({"a": 1})
    with pytest.raises(TypeError):
        LWWRegister(object(), (1, "a"))
    with pytest.raises(ValueError):
        LWWRegister(float("nan"), (1, "a"))


# ---------------------------------------------------------------------------
# Conflict resolution
# ---------------------------------------------------------------------------

TARGETS: dict[str, st.SearchStrategy[Any]] = {
    "gcounter": st.integers(0, 12),
    "pncounter": st.integers(-5, 12),
    "gset": st.frozensets(st.sampled_from(ELEMENTS)),
    "orset": st.frozensets(st.sampled_from(ELEMENTS)),
    "lwwelementset": st.frozensets(st.sampled_from(ELEMENTS)),
    "lwwregister": st.sampled_from(VALUES),
    "mvregister": st.sampled_from(VALUES),
    "ormap": st.sampled_from([{}, {"c": 3}, {"s": frozenset({"x"})},
                              {"c": -1, "s": frozenset()}]),
}


def unreachable(kind: str, resolution: str, local: CRDT, remote: CRDT, target: Any) -> bool:
    """Documented cases where resolve_conflict must raise ValueError."""
    if resolution == "merge":
        return False
    merged = local.merge(remote)
    side = {"local_wins": local, "remote_wins": remote}.get(resolution)
    if side is not None:
        target = side.value()
        if kind == "mvregister":
            return len(side.value()) != 1
    if kind == "gcounter":
        return target < merged.value()
    if kind == "gset":
        return not merged.value() <= frozenset(target)
    if kind == "ormap" and side is None:
        return bool(set(target) - merged.keys())
    return False


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=150)
@given(program=PROGRAM, picks=PICKS, data=st.data())
def test_resolve_conflict_dominates_both_sides_and_yields_the_chosen_value(
        kind: str, program, picks, data) -> None:
    local, remote, _ = three(kind, program, picks)
    resolution = data.draw(st.sampled_from(["local_wins", "remote_wins", "merge", "value"]))
    target = data.draw(TARGETS[kind]) if resolution == "value" else None
    if unreachable(kind, resolution, local, remote, target):
        with pytest.raises(ValueError):
            resolve_conflict(local, remote, resolution, target, replica="resolver")
        return
    result = resolve_conflict(local, remote, resolution, target, replica="resolver")
    assert local.le(result) and remote.le(result)
    expected = {"local_wins": local.value(), "remote_wins": remote.value(),
                "merge": local.merge(remote).value()}.get(resolution, target)
    if kind == "mvregister" and resolution == "value":
        expected = (json.loads(canonical(target)),)
    if kind == "lwwregister" and resolution == "value":
        expected = json.loads(canonical(target))
    assert result.value() == expected
    # the decision survives gossip: merging either side back changes nothing
    assert result.merge(local) == result and result.merge(remote) == result


def test_resolve_conflict_collapses_mv_register_siblings() -> None:
    base = MVRegister().assign("a", "v0")
    local, remote = base.assign("a", "mine"), base.assign("b", "theirs")
    assert local.merge(remote).value() == ("mine", "theirs")
    resolved = resolve_conflict(local, remote, "local_wins", replica="a")
    assert resolved.value() == ("mine",)
    (_, clock), = resolved.siblings
    assert clock.dominates(local.clock) and clock.dominates(remote.clock)
    with pytest.raises(ValueError, match="resolution='value'"):
        resolve_conflict(local.merge(remote), remote, "local_wins", replica="a")
    chosen = resolve_conflict(local.merge(remote), remote, "value", "both", replica="a")
    assert chosen.value() == ("both",)


def test_resolve_conflict_lww_uses_a_given_timestamp_or_bumps_the_newest() -> None:
    local = LWWRegister("mine", HLCTimestamp(5, 0, "a"))
    remote = LWWRegister("theirs", HLCTimestamp(7, 2, "b"))
    bumped = resolve_conflict(local, remote, "local_wins", replica="a")
    assert bumped.value() == "mine" and bumped.timestamp == HLCTimestamp(7, 3, "a")
    given_ts = resolve_conflict(local, remote, "local_wins", timestamp=HLCTimestamp(9, 0, "a"))
    assert given_ts.timestamp == HLCTimestamp(9, 0, "a")
    with pytest.raises(ValueError, match="not newer"):
        resolve_conflict(local, remote, "local_wins", timestamp=(6, "a"))
    with pytest.raises(ValueError, match="replica"):
        resolve_conflict(local, remote, "local_wins")
    assert resolve_conflict(local, remote, "remote_wins") == remote   # already winning


def test_resolve_conflict_rejects_unknown_resolutions_with_the_options() -> None:
    with pytest.raises(ValidationFailed, match="local_wins"):
        resolve_conflict(GCounter(), GCounter(), "coin_flip")


def test_resolve_conflict_with_a_crdt_value_merges_it_in() -> None:
    local, remote = ORSet().add("a", "x"), ORSet().add("b", "y")
    proposal = ORSet().add("c", "z")
    result = resolve_conflict(local, remote, "value", proposal, replica="a")
    assert result.value() == {"z"}
    assert proposal.le(result) and local.le(result) and remote.le(result)


def test_a_long_orset_run_keeps_one_dot_per_live_element() -> None:
    # removes and re-adds leave nothing behind: no tombstones, no dot build-up
    rng = random.Random(7)
    state = ORSet()
    for step in range(2000):
        element = rng.choice(ELEMENTS)
        state = state.add(f"r{step % 5}", element) if rng.random() < 0.5 else \
            state.remove(element)
    assert len(state.to_data()["entries"]) <= len(ELEMENTS)
    assert sum(len(dots) for _, dots in state.to_data()["entries"]) <= len(ELEMENTS)
