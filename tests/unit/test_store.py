"""ReplicaStore: local writes, CRDT merges, siblings and their resolution, the Merkle
tree kept in step, the change feed, and rejection of malformed remote data."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.crdt import (
    GCounter,
    LWWRegister,
    MVRegister,
    ORMap,
    ORSet,
    PNCounter,
)
from cluster_actors.core.merkle import MerkleTree, value_digest
from cluster_actors.core.store import ReplicaStore
from cluster_actors.core.vclock import HLCTimestamp, VectorClock
from cluster_actors.errors import ValidationFailed


def store(rid: str, depth: int = 4) -> ReplicaStore:
    return ReplicaStore(rid, merkle_depth=depth)


def exchange(a: ReplicaStore, b: ReplicaStore, *, keep_siblings: bool = False) -> None:
    """Both ways, full state."""
    b.merge_entries(a.snapshot(), keep_siblings=keep_siblings)
    a.merge_entries(b.snapshot(), keep_siblings=keep_siblings)


def inc(rid: str, amount: int = 1):
    return lambda c: (c or PNCounter()).increment(rid, amount)


# -- local writes ----------------------------------------------------------------------

def test_local_updates_count_in_the_version_vector_and_join_with_the_current_value() -> None:
    s = store("a")
    s.update("c", inc("a", 2))
    s.update("c", inc("a", 3))
    assert s.value("c") == 5
    assert s.version("c") == VectorClock({"a": 2})
    assert s.keys() == ["c"] and "c" in s and len(s) == 1
    assert s.get("missing") is None and s.value("missing", 7) == 7
    # a write that does not change the CRDT is not a new version
    s.update("c", lambda c: c)
    assert s.version("c") == VectorClock({"a": 2}) and s.change_seq == 2
    # the stored value is the join: an "older" state cannot roll the key back
    s.update("c", PNCounter().increment("a", 1))
    assert s.value("c") == 5


def test_writes_of_another_type_or_non_crdts_are_rejected_and_change_nothing() -> None:
    s = store("a")
    s.put_register("r", "x", now=1)
    before = s.state_hash()
    with pytest.raises(ValidationFailed, match="LWWRegister"):
        s.update("r", PNCounter())
    with pytest.raises(ValidationFailed, match="expected a CRDT"):
        s.update("r", lambda _: "plain")
    s.update("c", GCounter())
    with pytest.raises(ValidationFailed, match="not an LWW register"):
        s.put_register("c", 1, now=2)
    with pytest.raises(ValidationFailed, match="keys must be str"):
        s.update(3, GCounter())  # type: ignore[arg-type]
    assert s.value("r") == "x"
    assert s.state_hash() != before  # only the valid "c" write changed it
    assert s.keys() == ["c", "r"]


def test_put_register_timestamps_strictly_increase_even_if_physical_time_goes_back() -> None:
    s = store("a")
    first = s.put_register("r", "first", now=100)
    second = s.put_register("r", "second", now=50)  # the wall clock stepped back
    assert second.timestamp > first.timestamp
    assert s.value("r") == "second"


def test_a_write_made_after_seeing_another_wins_whatever_the_wall_clocks_say() -> None:
    a, b = store("a"), store("b")
    a.put_register("r", "from a", now=1000)
    b.merge_entries(a.snapshot())
    b.put_register("r", "from b, later", now=10)  # b's clock is far behind
    a.merge_entries(b.snapshot())
    assert a.value("r") == b.value("r") == "from b, later"
    assert b.clock > HLCTimestamp(1000, 0, "a")


def test_delete_writes_the_types_empty_state_and_counters_refuse() -> None:
    s = store("a")
    s.put_register("r", "x", now=1)
    s.update("set", lambda _: ORSet().add("a", 1).add("a", 2))
    s.update("map", lambda _: ORMap().put("a", "k", GCounter().increment("a")))
    s.update("mv", lambda _: MVRegister().assign("a", "v"))
    s.update("n", inc("a"))
    assert s.delete("r", now=2).value() is None
    assert s.delete("set", now=2).value() == frozenset()
    assert s.delete("map", now=2).value() == {}
    assert s.delete("mv", now=2).value() == (None,)
    assert s.delete("absent", now=2) is None
    with pytest.raises(ValidationFailed, match="cannot be deleted"):
        s.delete("n", now=2)
    # deletion is state: it wins a merge against the older write
    other = store("b")
    other.merge_entry("r", s.entry("r"))
    assert other.value("r") is None and "r" in other and other.keys() == ["r"]


# -- merges -------------------------------------------------------------------------------

def test_concurrent_writes_join_into_one_version_without_siblings() -> None:
    a, b = store("a"), store("b")
    a.update("c", inc("a", 2))
    b.update("c", inc("b", 5))
    a.put_register("r", "a", now=5)
    b.put_register("r", "b", now=9)
    exchange(a, b)
    assert a.state_hash() == b.state_hash()
    assert a.value("c") == 7 and a.value("r") == "b"
    assert a.version("c") == VectorClock({"a": 1, "b": 1})
    # b met two concurrent versions; a then received their join, which dominates
    assert a.conflicts() == [] and b.concurrent_merges == 2 and a.concurrent_merges == 0


def test_merging_is_idempotent_and_equal_entries_are_no_ops() -> None:
    a, b = store("a"), store("b")
    a.update("c", inc("a"))
    assert b.merge_entries(a.snapshot()) == ["c"]
    seq = b.change_seq
    assert b.merge_entries(a.snapshot()) == []
    assert b.merge_entry("c", a.entry("c")) is False
    assert b.change_seq == seq and b.merges == 1


def test_siblings_are_kept_until_resolved_and_reads_see_their_join() -> None:
    a, b = store("a"), store("b")
    a.put_register("r", "a", now=1)
    b.put_register("r", "b", now=2)
    exchange(a, b, keep_siblings=True)
    assert a.state_hash() == b.state_hash()
    assert a.conflicts() == b.conflicts() == ["r"]
    assert [v.value() for _, v in a.siblings("r")] == ["a", "b"]
    assert a.value("r") == "b"  # the join of LWW registers: the newest stamp
    # a sibling dominated by a later version is dropped on merge
    a.resolve_conflict("r", "local_wins")
    assert a.value("r") == "a" and a.conflicts() == []
    b.merge_entry("r", a.entry("r"), keep_siblings=True)
    assert b.conflicts() == [] and b.value("r") == "a"
    assert a.state_hash() == b.state_hash()


@pytest.mark.parametrize(("resolution", "value", "expected"), [
    ("local_wins", None, "a"), ("remote_wins", None, "b"), ("merge", None, "b"),
    ("value", "chosen", "chosen")])
def test_resolutions_pick_the_promised_value(resolution, value, expected) -> None:
    a, b = store("a"), store("b")
    a.put_register("r", "a", now=1)
    b.put_register("r", "b", now=2)
    exchange(a, b, keep_siblings=True)
    assert a.resolve_conflict("r", resolution, value, now=3) is True
    assert a.value("r") == expected and a.conflicts() == []
    assert a.version("r").dominates(VectorClock({"a": 1, "b": 1}))


def test_resolution_errors_are_clear_and_change_nothing() -> None:
    a, b, c = store("a"), store("b"), store("c")
    a.put_register("r", "a", now=1)
    b.put_register("r", "b", now=2)
    exchange(a, b, keep_siblings=True)
    c.merge_entries(a.snapshot(), keep_siblings=True)
    before = c.state_hash()
    with pytest.raises(ValidationFailed, match="cannot tell its own sibling"):
        c.resolve_conflict("r", "local_wins")
    with pytest.raises(ValidationFailed, match="unknown resolution"):
        c.resolve_conflict("r", "coin_flip")
    with pytest.raises(ValidationFailed, match="no such key"):
        c.resolve_conflict("nope", "merge")
    assert c.state_hash() == before and c.conflicts() == ["r"]
    # a key without siblings: only "value" writes
    c.update("n", lambda _: GCounter().increment("c", 2))
    assert c.resolve_conflict("n", "merge") is False
    with pytest.raises(ValidationFailed, match="unknown resolution"):
        c.resolve_conflict("n", "coin_flip")
    with pytest.raises(ValidationFailed):
        c.resolve_conflict("n", "value", 0)  # a grow-only counter cannot shrink
    assert c.value("n") == 2
    assert c.resolve_conflict("n", "value", 5) is True and c.value("n") == 5


def test_a_local_write_collapses_siblings() -> None:
    a, b = store("a"), store("b")
    a.update("s", lambda _: ORSet().add("a", "x"))
    b.update("s", lambda _: ORSet().add("b", "y"))
    exchange(a, b, keep_siblings=True)
    assert a.conflicts() == ["s"] and a.value("s") == frozenset({"x", "y"})
    a.update("s", lambda s: s.add("a", "z"))
    assert a.conflicts() == [] and a.value("s") == frozenset({"x", "y", "z"})
    b.merge_entry("s", a.entry("s"), keep_siblings=True)
    assert b.conflicts() == [] and b.state_hash() == a.state_hash()


def test_resolved_hash_agrees_whether_or_not_siblings_were_kept() -> None:
    pairs = {}
    for keep in (False, True):
        a, b = store("a"), store("b")
        a.put_register("r", "a", now=1)
        b.put_register("r", "b", now=2)
        exchange(a, b, keep_siblings=keep)
        pairs[keep] = a
    assert pairs[False].state_hash() != pairs[True].state_hash()
    assert pairs[False].resolved_hash() == pairs[True].resolved_hash()


# the merge laws, over small random histories on three replicas ----------------------

OPS = st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["k1", "k2", "k3"]),
                         st.sampled_from(["inc", "put"]), st.integers(0, 3)), max_size=12)


def run_ops(ops) -> dict[str, ReplicaStore]:
    stores = {rid: store(rid, depth=2) for rid in "abc"}
    for rid, key, op, n in ops:
        s = stores[rid]
        kind = "n" if op == "inc" else "r"
        if op == "inc":
            s.update(f"{kind}{key}", inc(rid, n + 1))
        else:
            s.put_register(f"{kind}{key}", n, now=n)
    return stores


@settings(max_examples=150)
@given(ops=OPS, keep=st.booleans(), order=st.permutations("abc"))
def test_merge_order_does_not_matter(ops, keep, order) -> None:
    stores = run_ops(ops)
    left, right = store("x", depth=2), store("y", depth=2)
    for rid in "abc":
        left.merge_entries(stores[rid].snapshot(), keep_siblings=keep)
    for rid in order:  # another order, twice (idempotence)
        right.merge_entries(stores[rid].snapshot(), keep_siblings=keep)
        right.merge_entries(stores[rid].snapshot(), keep_siblings=keep)
    assert left.state_hash() == right.state_hash()
    assert left.conflicts() == right.conflicts()
    # the tree kept up to date incrementally equals one built from scratch
    rebuilt = MerkleTree.build_from_digests(
        {key: value_digest(entry) for key, entry in right.snapshot().items()}, 2)
    assert right.tree == rebuilt


# -- construction, copies, the change feed -----------------------------------------------

def test_from_values_restore_and_copy_agree_with_incremental_building() -> None:
    values = {f"k{i}": PNCounter().increment("seed", i + 1) for i in range(50)}
    bulk = ReplicaStore.from_values("s", values, merkle_depth=5)
    incremental = store("t", depth=5)
    for key in values:
        incremental.merge_entry(key, bulk.entry(key))
    assert bulk.state_hash() == incremental.state_hash()
    assert bulk.tree == incremental.tree
    restored = ReplicaStore.restore("u", bulk.snapshot(), merkle_depth=5)
    assert restored.state_hash() == bulk.state_hash()
    clone = bulk.copy("v")
    clone.update("k1", inc("v"))
    assert clone.value("k1") == 3 and bulk.value("k1") == 2
    assert clone.state_hash() != bulk.state_hash()


def test_restore_keeps_siblings_and_rejects_garbage() -> None:
    a, b = store("a"), store("b")
    a.put_register("r", "a", now=1)
    b.put_register("r", "b", now=2)
    exchange(a, b, keep_siblings=True)
    restored = ReplicaStore.restore("c", a.snapshot(), merkle_depth=4)
    assert restored.conflicts() == ["r"] and restored.state_hash() == a.state_hash()
    with pytest.raises(ValidationFailed):
        ReplicaStore.restore("c", {"r": b"[]"})


def test_from_values_observes_register_stamps_so_later_writes_win() -> None:
    base = ReplicaStore.from_values("s", {"r": LWWRegister("old", HLCTimestamp(500, 3, "z"))})
    copy = base.copy("a")
    copy.put_register("r", "new", now=1)
    assert copy.value("r") == "new"


def test_change_feed_lineage_and_epoch() -> None:
    base = ReplicaStore.from_values("s", {"k": GCounter()}, merkle_depth=3)
    a, b = base.copy("a"), base.copy("b", incarnation="2")
    assert a.lineage == b.lineage == base.lineage and a.change_seq == 0
    assert a.epoch != b.epoch and b.epoch.endswith("/2")
    a.update("x", inc("a"))
    a.update("y", inc("a"))
    a.update("x", inc("a"))
    assert a.change_seq == 3
    assert a.changes_since(0) == ["y", "x"]
    assert a.changes_since(2) == ["x"] and a.changes_since(3) == []
    b.merge_entries(a.snapshot())
    assert b.changes_since(0) == ["x", "y"]  # merges are changes too
    other = ReplicaStore.from_values("s", {"k": GCounter().increment("s")}, merkle_depth=3)
    assert other.lineage != base.lineage


# -- malformed remote data ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    ["not", "bytes"], b"not json", b"{}", b"[]", b"[[1, 2, 3]]", b'[[{"a": -1}, {}]]',
    b'[[{}, {"type": "no_such_crdt"}]]', b'[[{}, {"type": "gcounter", "counts": "x"}]]',
])
def test_malformed_entries_are_rejected_and_nothing_changes(bad) -> None:
    s = store("a")
    s.update("c", inc("a"))
    good = store("b")
    good.update("d", inc("b"))
    before, seq = s.state_hash(), s.change_seq
    with pytest.raises(ValidationFailed):
        s.merge_entries({"d": good.entry("d"), "e": bad})
    with pytest.raises(ValidationFailed):
        s.merge_entries({5: good.entry("d")})  # type: ignore[dict-item]
    with pytest.raises(ValidationFailed):
        s.merge_entries([("d", good.entry("d"))])  # type: ignore[arg-type]
    assert s.state_hash() == before and s.change_seq == seq and "d" not in s


def test_entries_are_canonical_json_bytes() -> None:
    s = store("a")
    s.update("c", inc("a", 4))
    entry = s.entry("c")
    assert isinstance(entry, bytes)
    [[vector, data]] = json.loads(entry)
    assert vector == {"a": 1} and data["type"] == "pncounter"
    # an equivalent but non-canonical encoding merges to the same canonical bytes
    other = store("b")
    other.merge_entry("c", json.dumps(json.loads(entry), indent=2).encode())
    assert other.entry("c") == entry


def test_sync_status_reports_size_hashes_conflicts_and_clock() -> None:
    a, b = store("a"), store("b")
    a.put_register("r", 1, now=3)
    b.put_register("r", 2, now=4)
    exchange(a, b, keep_siblings=True)
    status = a.sync_status()
    assert status["replica_id"] == "a" and status["keys"] == 1
    assert status["state_hash"] == a.state_hash() == b.sync_status()["state_hash"]
    assert status["conflicts"] == 1 and status["conflict_keys"] == ["r"]
    assert status["clock"][0] == 4 and status["merkle_depth"] == 4
    assert status["local_updates"] == 1 and b.sync_status()["concurrent_merges"] == 1
