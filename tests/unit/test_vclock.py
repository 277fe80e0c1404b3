"""Vector clocks against brute-force causal histories; hybrid logical clocks."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.vclock import (
    HLCTimestamp,
    HybridLogicalClock,
    Ordering,
    VectorClock,
    merge_vector_clocks,
)
from cluster_actors.errors import ValidationFailed

NODES = ("a", "b", "c", "d")

# an event: (kind, node, message pick); kind 0 local, 1 send, 2 receive
EVENTS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 50)),
                  max_size=25)


def run_processes(events) -> list[tuple[VectorClock, frozenset]]:
    """Run the events; return (clock, causal history as a set of event ids) per event."""
    clocks = {n: VectorClock() for n in NODES}
    history: dict[str, frozenset] = {n: frozenset() for n in NODES}
    seq = Counter()
    messages: list[tuple[VectorClock, frozenset]] = []
    snapshots = [(VectorClock(), frozenset())]
    for kind, index, pick in events:
        node = NODES[index]
        if kind == 2 and messages:
            clock, seen = messages[pick % len(messages)]   # any order, possibly twice
            clocks[node] = clocks[node].merge(clock)
            history[node] |= seen
        seq[node] += 1
        clocks[node] = clocks[node].increment(node)
        history[node] |= {(node, seq[node])}
        if kind == 1:
            messages.append((clocks[node], history[node]))
        snapshots.append((clocks[node], history[node]))
    return snapshots


def counts_of(history: frozenset) -> dict[str, int]:
    return dict(Counter(node for node, _ in history))


@settings(max_examples=1000)
@given(events=EVENTS, picks=st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99)),
                                     min_size=1, max_size=8))
def test_compare_matches_set_inclusion_of_causal_histories(events, picks) -> None:
    snapshots = run_processes(events)
    for i, j in picks:
        (ca, ha), (cb, hb) = snapshots[i % len(snapshots)], snapshots[j % len(snapshots)]
        expected = (Ordering.EQUAL if ha == hb else Ordering.BEFORE if ha < hb
                    else Ordering.AFTER if ha > hb else Ordering.CONCURRENT)
        assert ca.compare(cb) is expected
        assert ca.descends(cb) == (ha >= hb)
        assert ca.dominates(cb) == (ha > hb)
        assert (ca <= cb) == (ha <= hb) and (ca < cb) == (ha < hb)
        assert (ca >= cb) == (ha >= hb) and (ca > cb) == (ha > hb)
        assert (ca == cb) == (ha == hb)
        assert ca.concurrent_with(cb) == (expected is Ordering.CONCURRENT)
        # the merge is the clock of the union of both histories
        assert ca.merge(cb).to_dict() == dict(sorted(counts_of(ha | hb).items()))
        assert ca.to_dict() == dict(sorted(counts_of(ha).items()))


CLOCKS = st.dictionaries(st.sampled_from(NODES), st.integers(0, 4), max_size=4).map(VectorClock)


@settings(max_examples=1000)
@given(a=CLOCKS, b=CLOCKS, c=CLOCKS)
def test_merge_is_a_join_and_compare_is_antisymmetric(a, b, c) -> None:
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    assert a.merge(b).descends(a) and a.merge(b).descends(b)
    mirror = {Ordering.BEFORE: Ordering.AFTER, Ordering.AFTER: Ordering.BEFORE,
              Ordering.EQUAL: Ordering.EQUAL, Ordering.CONCURRENT: Ordering.CONCURRENT}
    assert b.compare(a) is mirror[a.compare(b)]
    assert (a.compare(b) is Ordering.EQUAL) == (a == b) == (hash(a) == hash(b) and a == b)
    assert VectorClock.from_dict(a.to_dict()) == a


def test_clocks_are_immutable_and_drop_zero_counts() -> None:
    clock = VectorClock({"a": 1})
    later = clock.increment("a").increment("b", 3)
    assert clock.to_dict() == {"a": 1}
    assert later.to_dict() == {"a": 2, "b": 3} and later["b"] == 3 and later["zz"] == 0
    assert VectorClock({"a": 1, "b": 0}) == VectorClock({"a": 1})
    assert hash(VectorClock({"a": 1, "b": 0})) == hash(VectorClock({"a": 1}))
    assert len(later) == 2 and list(later) == ["a", "b"] and later.total() == 5
    assert later.nodes() == {"a", "b"}
    with pytest.raises(ValueError):
        clock.increment("a", 0)


def test_merge_vector_clocks_accepts_plain_mappings() -> None:
    merged = merge_vector_clocks({"a": 3, "b": 1}, VectorClock({"b": 2, "c": 1}))
    assert merged == VectorClock({"a": 3, "b": 2, "c": 1})
    with pytest.raises(TypeError):
        merge_vector_clocks([("a", 1)], {})  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, [1], {"a": -1}, {"a": 1.5}, {"a": True}, {3: 1}])
def test_from_dict_rejects_malformed_data(bad) -> None:
    with pytest.raises(ValidationFailed):
        VectorClock.from_dict(bad)


# ---------------------------------------------------------------------------
# Hybrid logical clock
# ---------------------------------------------------------------------------

@settings(max_examples=1000)
@given(times=st.lists(st.integers(0, 20), min_size=1, max_size=30))
def test_hlc_now_strictly_increases_even_when_physical_time_goes_back(times) -> None:
    clock = HybridLogicalClock("a")
    stamps = [clock.now(t) for t in times]
    assert all(x < y for x, y in pairwise(stamps))
    for stamp, t in zip(stamps, times, strict=True):
        assert stamp.wall >= t                      # never behind physical time
        assert stamp.wall <= max(times)             # and never ahead of any reading
    assert clock.last == stamps[-1]


# (kind, node, message pick, physical time advance); kind 0 local, 1 send, 2 receive
HLC_EVENTS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 50),
                                st.integers(-2, 3)), max_size=30)


@settings(max_examples=1000)
@given(events=HLC_EVENTS, skew=st.tuples(st.integers(0, 5), st.integers(0, 5),
                                         st.integers(0, 5)))
def test_hlc_respects_happened_before_and_orders_all_events_totally(events, skew) -> None:
    nodes = ("a", "b", "c")
    clocks = {n: HybridLogicalClock(n) for n in nodes}
    physical = dict(zip(nodes, skew, strict=True))     # skewed, may even run backwards
    history: dict[str, frozenset] = {n: frozenset() for n in nodes}
    messages: list[tuple[HLCTimestamp, frozenset]] = []
    stamped: list[tuple[HLCTimestamp, tuple[str, int], frozenset]] = []
    for step, (kind, index, pick, advance) in enumerate(events):
        node = nodes[index]
        physical[node] = max(0, physical[node] + advance)
        if kind == 2 and messages:
            remote, seen = messages[pick % len(messages)]
            stamp = clocks[node].update(remote, physical[node])
            assert stamp > remote
            history[node] |= seen
        else:
            stamp = clocks[node].now(physical[node])
        event = (node, step)
        history[node] |= {event}
        stamped.append((stamp, event, history[node]))
        if kind == 1:
            messages.append((stamp, history[node]))
    stamps = [s for s, _, _ in stamped]
    assert len(set(stamps)) == len(stamps)            # a total order: no two equal
    for stamp_e, event_e, _ in stamped:
        for stamp_f, event_f, history_f in stamped:
            if event_e in history_f and event_e != event_f:   # e happened before f
                assert stamp_e < stamp_f


def test_hlc_update_follows_the_paper_cases() -> None:
    clock = HybridLogicalClock("b")
    assert clock.now(10) == HLCTimestamp(10, 0, "b")
    assert clock.update(HLCTimestamp(10, 4, "a"), 9) == HLCTimestamp(10, 5, "b")  # equal walls
    assert clock.update(HLCTimestamp(12, 7, "a"), 11) == HLCTimestamp(12, 8, "b")  # remote ahead
    assert clock.update(HLCTimestamp(3, 9, "a"), 5) == HLCTimestamp(12, 9, "b")    # local ahead
    assert clock.update([1, 0, "a"], 20) == HLCTimestamp(20, 0, "b")              # physical ahead
    assert HLCTimestamp(5, 0, "a") < HLCTimestamp(5, 0, "b") < HLCTimestamp(5, 1, "a")


def test_hlc_rejects_a_remote_clock_beyond_max_drift_and_stays_unchanged() -> None:
    clock = HybridLogicalClock("b", max_drift=100)
    clock.now(1_000)
    before = clock.last
    with pytest.raises(ValueError, match="max_drift"):
        clock.update(HLCTimestamp(1_500, 0, "a"), 1_001)
    with pytest.raises(ValidationFailed):
        clock.update(HLCTimestamp(1_500, 0, "a"), 1_001)
    assert clock.last == before
    assert clock.update(HLCTimestamp(1_100, 0, "a"), 1_001) == HLCTimestamp(1_100, 1, "b")


def test_hlc_accepts_float_seconds_and_rejects_non_times() -> None:
    clock = HybridLogicalClock("a", last=HLCTimestamp(1.5, 2, "a"))
    assert clock.now(1.25) == HLCTimestamp(1.5, 3, "a")
    assert clock.now(2.0) == HLCTimestamp(2.0, 0, "a")
    for bad in (float("nan"), True, "1", None):
        with pytest.raises(ValidationFailed):
            clock.now(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        HybridLogicalClock("")
    assert HLCTimestamp.from_data(HLCTimestamp(1, 2, "x").to_data()) == HLCTimestamp(1, 2, "x")
    for bad in ([1, 2], [1, -1, "x"], [1, 0, 3], "x"):
        with pytest.raises(ValidationFailed):
            HLCTimestamp.from_data(bad)
