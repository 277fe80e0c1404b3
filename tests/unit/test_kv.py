"""The replicated key-value state machine: op semantics, revisions (fencing
tokens), client sessions, invalid input, snapshots and replica determinism."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.kv import (
    Command,
    InvalidCommand,
    KeyValue,
    KVResult,
    KVStateMachine,
    validate_op,
)
from cluster_actors.core.raft_types import ConfChange, Entry, EntryKind
from tests.conftest import PROJECT_ROOT


class Replica:
    """A state machine fed one command per log index."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        self.sm = KVStateMachine(max_sessions=max_sessions)
        self.index = 0

    def run(self, op: tuple[Any, ...], client: str = "c1", seq: int | None = None,
            ack_below: int = 0) -> tuple[Any, bool]:
        self.index += 1
        if seq is None:
            seq = self.index
        entry = Entry(self.index, 1, EntryKind.NORMAL, Command(client, seq, op, ack_below))
        return self.sm.apply(entry)

    def do(self, *op: Any, client: str = "c1", seq: int | None = None,
           ack_below: int = 0) -> KVResult:
        result, duplicate = self.run(tuple(op), client, seq, ack_below)
        assert not duplicate
        assert isinstance(result, KVResult), result
        return result


def snapshot_of(sm: KVStateMachine) -> tuple[Any, ...]:
    """Everything observable, sessions included."""
    sessions = {c: (s.floor, dict(s.results), s.last_index) for c, s in sm.sessions.items()}
    return dict(sm.data), sm.revision, sm.applied_index, repr(sessions)


# ---------------------------------------------------------------- put / get / delete
def test_put_creates_then_updates_with_revisions_and_versions() -> None:
    r = Replica()
    first = r.do("put", "k", "a")
    assert first.ok and first.revision == 1 and first.prev is None
    assert first.kv == KeyValue("k", "a", create_revision=1, mod_revision=1, version=1)
    second = r.do("put", "k", "b")
    assert second.revision == 2
    assert second.prev == first.kv
    assert second.kv == KeyValue("k", "b", create_revision=1, mod_revision=2, version=2)
    r.do("put", "other", 1)
    third = r.do("put", "k", "c")
    assert third.kv is not None
    assert (third.kv.create_revision, third.kv.mod_revision, third.kv.version) == (1, 4, 3)
    assert r.sm.get("k") == third.kv
    assert r.sm.revision == 4


def test_get_through_the_log_reads_and_changes_nothing() -> None:
    r = Replica()
    missing = r.do("get", "k")
    assert not missing.ok and missing.kv is None and missing.value is None
    assert missing.revision == 0
    r.do("put", "k", 7)
    before = r.sm.state_hash()
    hit = r.do("get", "k")
    assert hit.ok and hit.value == 7 and hit.revision == 1
    assert r.sm.revision == 1 and r.sm.state_hash() == before


def test_delete_existing_and_missing_key() -> None:
    r = Replica()
    created = r.do("put", "k", 1).kv
    gone = r.do("delete", "k")
    assert gone.ok and gone.kv is None and gone.prev == created and gone.revision == 2
    assert r.sm.get("k") is None and r.sm.range() == []
    again = r.do("delete", "k")
    assert not again.ok and again.revision == 2 and r.sm.revision == 2


def test_create_revision_is_a_strictly_increasing_fencing_token() -> None:
    r = Replica()
    tokens = []
    for value in range(4):
        created = r.do("put", "lock", value).kv
        assert created is not None and created.version == 1
        tokens.append(created.create_revision)
        # updates never change the token
        updated = r.do("put", "lock", value + 100).kv
        assert updated is not None and updated.create_revision == created.create_revision
        assert updated.mod_revision > created.mod_revision
        r.do("put", "noise", value)
        r.do("delete", "lock")
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_range_is_sorted_and_filtered_by_prefix() -> None:
    r = Replica()
    for key in ("b/2", "a/1", "b/1", "c"):
        r.do("put", key, key)
    assert [kv.key for kv in r.sm.range("b/")] == ["b/1", "b/2"]
    assert [kv.key for kv in r.sm.range()] == ["a/1", "b/1", "b/2", "c"]


# --------------------------------------------------------------------------- cas
def test_cas_swaps_only_on_match_and_a_miss_changes_nothing() -> None:
    r = Replica()
    r.do("put", "k", 1)
    miss = r.do("cas", "k", 2, 3)
    assert not miss.ok and miss.value == 1 and miss.revision == 1
    assert r.sm.get("k").value == 1 and r.sm.revision == 1  # type: ignore[union-attr]
    hit = r.do("cas", "k", 1, 3)
    assert hit.ok and hit.value == 3 and hit.prev is not None and hit.prev.value == 1
    assert r.sm.revision == 2


def test_cas_with_none_expected_means_absent() -> None:
    r = Replica()
    assert r.do("cas", "k", None, "v").ok
    assert r.sm.get("k").value == "v"  # type: ignore[union-attr]
    refused = r.do("cas", "k", None, "w")
    assert not refused.ok and r.sm.get("k").value == "v"  # type: ignore[union-attr]


def test_cas_with_none_new_deletes() -> None:
    r = Replica()
    r.do("put", "k", 1)
    deleted = r.do("cas", "k", 1, None)
    assert deleted.ok and r.sm.get("k") is None and deleted.revision == 2


def test_cas_absent_to_absent_reports_success() -> None:
    r = Replica()
    assert r.do("cas", "k", None, None).ok


# --------------------------------------------------------------------------- txn
def test_txn_success_branch_applies_all_ops() -> None:
    r = Replica()
    lock = r.do("put", "lock", "me").kv
    assert lock is not None
    guard = (("lock", "create_revision", lock.create_revision),
             ("lock", "value", "me"), ("lock", "version", 1),
             ("lock", "mod_revision", lock.mod_revision))
    result = r.do("txn", guard, (("put", "a", 1), ("put", "b", 2), ("delete", "lock")),
                  (("put", "failed", True),))
    assert result.ok
    assert r.sm.get("a").value == 1 and r.sm.get("b").value == 2  # type: ignore[union-attr]
    assert r.sm.get("lock") is None and r.sm.get("failed") is None
    assert result.revision == r.sm.revision == 4


def test_txn_failure_branch_and_fencing_with_a_stale_token() -> None:
    r = Replica()
    old = r.do("put", "lock", "holder-1").kv
    r.do("delete", "lock")
    r.do("put", "lock", "holder-2")
    assert old is not None
    stale = r.do("txn", (("lock", "create_revision", old.create_revision),),
                 (("put", "data", "from holder-1"),), (("put", "rejected", 1),))
    assert not stale.ok
    assert r.sm.get("data") is None and r.sm.get("rejected").value == 1  # type: ignore[union-attr]


def test_txn_compare_on_absent_key() -> None:
    r = Replica()
    absent = (("k", "value", None), ("k", "version", 0), ("k", "create_revision", 0))
    assert r.do("txn", absent, (("put", "k", 1),), ()).ok
    # now present: the same guard fails, an empty failure branch changes nothing
    before = r.sm.state_hash()
    failed = r.do("txn", absent, (("put", "k", 2),), ())
    assert not failed.ok and r.sm.state_hash() == before
    assert r.sm.get("k").value == 1  # type: ignore[union-attr]


# ---------------------------------------------------------------------- sessions
def test_duplicate_command_returns_cached_result_and_changes_nothing() -> None:
    r = Replica()
    first, duplicate = r.run(("put", "k", 1), client="c", seq=1)
    assert not duplicate
    r.do("put", "k", 2, client="other")
    state = snapshot_of(r.sm)
    again, duplicate = r.run(("put", "k", 1), client="c", seq=1)
    assert duplicate and again == first
    assert r.sm.get("k").value == 2  # type: ignore[union-attr]
    data, revision, _applied, _sessions = snapshot_of(r.sm)
    assert (data, revision) == state[:2]
    # a retry carrying a different op is still the same command: nothing runs
    other, duplicate = r.run(("delete", "k"), client="c", seq=1)
    assert duplicate and other == first and r.sm.get("k") is not None


def test_sessions_are_per_client() -> None:
    r = Replica()
    r.run(("put", "k", 1), client="a", seq=1)
    result, duplicate = r.run(("put", "k", 2), client="b", seq=1)
    assert not duplicate and result.value == 2


def test_ack_below_forgets_results_and_refuses_old_sequence_numbers() -> None:
    r = Replica()
    for seq in (1, 2, 3):
        r.run(("put", "k", seq), client="c", seq=seq)
    assert set(r.sm.sessions["c"].results) == {1, 2, 3}
    r.run(("put", "k", 4), client="c", seq=4, ack_below=3)
    assert set(r.sm.sessions["c"].results) == {3, 4}
    before = snapshot_of(r.sm)[:2]
    forgotten, duplicate = r.run(("put", "k", 99), client="c", seq=1)
    assert duplicate and forgotten is None
    assert snapshot_of(r.sm)[:2] == before
    kept, duplicate = r.run(("put", "k", 99), client="c", seq=3)
    assert duplicate and kept.value == 3


def test_a_duplicate_does_not_move_the_ack_floor() -> None:
    r = Replica()
    r.run(("put", "k", 1), client="c", seq=5)
    r.run(("put", "k", 1), client="c", seq=5, ack_below=5)
    assert r.sm.sessions["c"].floor == 0 and 5 in r.sm.sessions["c"].results


def test_session_eviction_keeps_at_most_max_sessions() -> None:
    r = Replica(max_sessions=3)
    for i in range(10):
        r.run(("put", "k", i), client=f"c{i}", seq=1)
        assert len(r.sm.sessions) <= 3


def test_session_eviction_drops_the_least_recently_used_not_the_new_one() -> None:
    r = Replica(max_sessions=2)
    r.run(("put", "x", 1), client="a", seq=1)
    r.run(("put", "x", 2), client="b", seq=1)
    r.run(("put", "y", 1), client="c", seq=1)
    assert set(r.sm.sessions) == {"b", "c"}
    revision = r.sm.revision
    _result, duplicate = r.run(("put", "y", 1), client="c", seq=1)
    assert duplicate and r.sm.revision == revision


def test_non_command_entries_advance_applied_index_only() -> None:
    sm = KVStateMachine()
    assert sm.apply(Entry(1, 1, EntryKind.NOOP)) == (None, False)
    assert sm.apply(Entry(2, 1, EntryKind.CONFIG, ConfChange())) == (None, False)
    assert sm.apply(Entry(3, 1, EntryKind.NORMAL, "not a command")) == (None, False)
    assert sm.applied_index == 3 and sm.revision == 0 and not sm.sessions


def test_entries_must_be_applied_in_order() -> None:
    sm = KVStateMachine()
    sm.apply(Entry(1, 1, EntryKind.NOOP))
    sm.apply(Entry(2, 1, EntryKind.NOOP))
    for index in (1, 2):
        with pytest.raises(ValueError, match="out of order"):
            sm.apply(Entry(index, 1, EntryKind.NORMAL, Command("c", index, ("put", "k", 1))))
    assert sm.data == {}


def test_a_gap_in_the_applied_entries_is_refused_and_changes_nothing() -> None:
    sm = KVStateMachine()
    sm.apply(Entry(1, 1, EntryKind.NOOP))
    with pytest.raises(ValueError, match="applied through 1 and takes only entry 2"):
        sm.apply(Entry(3, 1, EntryKind.NORMAL, Command("c", 1, ("put", "k", 1))))
    assert sm.data == {} and sm.applied_index == 1


def test_after_a_snapshot_restore_the_next_entry_is_the_one_after_the_snapshot() -> None:
    source = KVStateMachine()
    for index in (1, 2):
        source.apply(Entry(index, 1, EntryKind.NORMAL, Command("c", index, ("put", "k", index))))
    sm = KVStateMachine()
    sm.restore(source.snapshot())
    with pytest.raises(ValueError, match="out of order"):
        sm.apply(Entry(4, 1, EntryKind.NOOP))
    sm.apply(Entry(3, 1, EntryKind.NOOP))
    assert sm.applied_index == 3 and sm.get("k").value == 2


# ----------------------------------------------------------------- invalid input
INVALID_OPS: list[Any] = [
    "put",
    (),
    ("nope", "k"),
    ("put", "k"),
    ("put", "k", 1, 2),
    ("get",),
    ("delete", "k", "extra"),
    ("cas", "k", 1),
    ("put", 1, "v"),
    ("get", None),
    ("txn", (), ()),
    ("txn", (("k", "colour", 1),), (), ()),
    ("txn", (("k", "value"),), (), ()),
    ("txn", (), (("get", "k"),), ()),
    ("txn", (), (("put", "k"),), ()),
    ("txn", (), (), (("cas", "k", 1, 2),)),
    ("txn", (), ("put",), ()),
    ("txn", (), (("put", 5, 1),), ()),
    ("put", None, 1),
    ("put", ["a"], 1),
    (["put"], "k", 1),                          # an unhashable op name
    ({}, "k"),
    ("put", "k" * 4097, 1),
    ("put", "é" * 2049, 1),                     # 4098 bytes of UTF-8
    ("put", "\ud800", 1),                       # not encodable as UTF-8
    ("txn", (("k" * 5000, "value", 1),), (), ()),
    ("txn", (), tuple(("put", f"k{i}", i) for i in range(129)), ()),
]


@pytest.mark.parametrize("op", INVALID_OPS, ids=repr)
def test_invalid_ops_are_rejected_identically_and_change_nothing(op: Any) -> None:
    replicas = [Replica(), Replica()]
    outcomes = []
    for r in replicas:
        r.do("put", "k", 1, client="setup")
        before = snapshot_of(r.sm)
        with pytest.raises(InvalidCommand):
            validate_op(op)
        result, duplicate = r.run(op, client="c", seq=1)
        assert not duplicate and isinstance(result, InvalidCommand)
        data, revision, applied, _sessions = snapshot_of(r.sm)
        assert (data, revision) == before[:2] and applied == before[2] + 1
        # the retry is answered from the session, with the same error
        again, duplicate = r.run(op, client="c", seq=1)
        assert duplicate and again is result
        outcomes.append((type(result), str(result), r.sm.state_hash()))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("op", [("txn", 5, (), ()), ("txn", None, (), ()),
                                ("txn", ((["k"], "value", None),), (), ()),
                                ("txn", (7,), (), ())], ids=repr)
def test_malformed_txn_compares_become_invalid_command_results(op: Any) -> None:
    r = Replica()
    result, _duplicate = r.run(op)
    assert isinstance(result, InvalidCommand)


# --------------------------------------------------------------------- snapshots
def populated() -> Replica:
    r = Replica()
    r.run(("put", "a", 1), client="c1", seq=1)
    r.run(("put", "b", [1, 2]), client="c1", seq=2)
    r.run(("delete", "a"), client="c2", seq=1)
    r.run(("cas", "b", [1, 2], {"x": 1}), client="c2", seq=2, ack_below=2)
    r.run(("put", "a", 3), client="c3", seq=7)
    return r


def test_snapshot_restore_round_trips_data_revision_and_sessions() -> None:
    source = populated()
    blob = source.sm.snapshot()
    assert isinstance(blob, bytes)
    target = KVStateMachine()
    target.apply(Entry(1, 1, EntryKind.NORMAL, Command("junk", 1, ("put", "junk", 1))))
    target.restore(blob)
    assert snapshot_of(target) == snapshot_of(source.sm)
    assert target.state_hash() == source.sm.state_hash()
    # deduplication survives the snapshot
    result, duplicate = target.apply(
        Entry(6, 1, EntryKind.NORMAL, Command("c1", 2, ("put", "b", "again"))))
    assert duplicate and result.value == [1, 2]
    assert target.get("b").value == {"x": 1}  # type: ignore[union-attr]
    forgotten, duplicate = target.apply(
        Entry(7, 1, EntryKind.NORMAL, Command("c2", 1, ("delete", "b"))))
    assert duplicate and forgotten is None and target.get("b") is not None


def test_restored_replica_continues_exactly_like_the_original() -> None:
    source = populated()
    twin = KVStateMachine()
    twin.restore(source.sm.snapshot())
    ops = [("put", "a", 4), ("cas", "a", 4, 5), ("txn", (("a", "version", 3),),
                                                 (("put", "z", 0),), ()), ("delete", "b")]
    for offset, op in enumerate(ops, start=1):
        entry = Entry(5 + offset, 1, EntryKind.NORMAL, Command("c9", offset, op))
        assert source.sm.apply(entry) == twin.apply(entry)
    assert snapshot_of(source.sm) == snapshot_of(twin)


def test_snapshot_is_independent_of_later_changes() -> None:
    r = populated()
    blob = r.sm.snapshot()
    expected = snapshot_of(r.sm)
    r.run(("put", "a", "later"), client="c1", seq=3)
    first, second = KVStateMachine(), KVStateMachine()
    first.restore(blob)
    second.restore(blob)
    assert snapshot_of(first) == expected
    first.apply(Entry(6, 1, EntryKind.NORMAL, Command("c1", 3, ("put", "a", "x"))))
    assert snapshot_of(second) == expected  # no state shared between restores


def test_restore_none_resets_to_empty() -> None:
    r = populated()
    r.sm.restore(None)
    assert r.sm.data == {} and r.sm.revision == 0 and r.sm.applied_index == 0
    assert r.sm.sessions == {} and r.sm.state_hash() == KVStateMachine().state_hash()


# -------------------------------------------------------------------- state_hash
def test_state_hash_equal_for_equal_states() -> None:
    assert populated().sm.state_hash() == populated().sm.state_hash()
    a, b = Replica(), Replica()
    a.do("put", "x", 1)
    a.do("put", "y", 2)
    b.do("put", "x", 1)
    b.do("put", "y", 2)
    b.do("get", "x")  # reads do not change the state
    assert a.sm.state_hash() == b.sm.state_hash()


def test_state_hash_differs_for_different_states() -> None:
    def build(*ops: tuple[Any, ...]) -> str:
        r = Replica()
        for op in ops:
            r.do(*op)
        return r.sm.state_hash()

    variants = {
        "empty": build(),
        "value": build(("put", "x", 1)),
        "other value": build(("put", "x", 2)),
        "string value": build(("put", "x", "1")),
        "other key": build(("put", "y", 1)),
        "version": build(("put", "x", 1), ("put", "x", 1)),
        "create revision": build(("put", "z", 0), ("delete", "z"), ("put", "x", 1)),
        "revision only": build(("put", "z", 0), ("delete", "z")),
        "two keys": build(("put", "x", 1), ("put", "y", 1)),
    }
    assert len(set(variants.values())) == len(variants), variants


def test_state_hash_is_stable_across_processes() -> None:
    script = textwrap.dedent("""
        from cluster_actors.core.kv import Command, KVStateMachine
        from cluster_actors.core.raft_types import Entry, EntryKind
        sm = KVStateMachine()
        value = frozenset({"alpha", "beta", "gamma", "delta", "epsilon"})
        sm.apply(Entry(1, 1, EntryKind.NORMAL, Command("c", 1, ("put", "k", value))))
        print(sm.state_hash())
    """)
    hashes = set()
    for seed in ("1", "2", "3"):
        out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                             text=True, cwd=PROJECT_ROOT, env={"PYTHONHASHSEED": seed},
                             timeout=60)
        hashes.add(out.stdout.strip())
    assert len(hashes) == 1


# ------------------------------------------------------------------- properties
KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.integers(0, 3) | st.none()
FIELDS = st.sampled_from(["value", "version", "create_revision", "mod_revision"])
WRITE = st.one_of(st.tuples(st.just("put"), KEYS, VALUES),
                  st.tuples(st.just("delete"), KEYS))
OPS = st.one_of(
    st.tuples(st.just("put"), KEYS, VALUES),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("cas"), KEYS, VALUES, VALUES),
    st.tuples(st.just("txn"),
              st.lists(st.tuples(KEYS, FIELDS, st.integers(0, 4) | st.none()),
                       max_size=2).map(tuple),
              st.lists(WRITE, max_size=2).map(tuple), st.lists(WRITE, max_size=2).map(tuple)),
    st.sampled_from(INVALID_OPS),
)
COMMANDS = st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3"]), st.integers(1, 6), OPS,
                              st.integers(0, 3)), max_size=40)


def _comparable(result: Any) -> Any:
    if isinstance(result, Exception):
        return (type(result), str(result))
    return result


class ReferenceKV:
    """An independent model of the documented semantics."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[Any, int, int, int]] = {}
        self.revision = 0

    def put(self, key: str, value: Any) -> None:
        self.revision += 1
        old = self.data.get(key)
        self.data[key] = (value, old[1] if old else self.revision, self.revision,
                          old[3] + 1 if old else 1)

    def delete(self, key: str) -> None:
        if self.data.pop(key, None) is not None:
            self.revision += 1

    def field(self, key: str, name: str) -> Any:
        record = self.data.get(key)
        if record is None:
            return None if name == "value" else 0
        return record[["value", "create_revision", "mod_revision", "version"].index(name)]

    def run(self, op: tuple[Any, ...]) -> bool | None:
        kind = op[0]
        if kind == "put":
            self.put(op[1], op[2])
        elif kind == "delete":
            existed = op[1] in self.data
            self.delete(op[1])
            return existed
        elif kind == "cas":
            current = self.data.get(op[1])
            if (current is None) if op[2] is None else (current is not None
                                                         and current[0] == op[2]):
                existed = current is not None
                if op[3] is None:
                    self.delete(op[1])
                    return existed
                self.put(op[1], op[3])
                return True
            return False
        elif kind == "txn":
            ok = all(self.field(k, f) == v or (v is None and k not in self.data)
                     for k, f, v in op[1])
            for sub in op[2] if ok else op[3]:
                self.put(sub[1], sub[2]) if sub[0] == "put" else self.delete(sub[1])
            return ok
        return None

    def view(self) -> dict[str, tuple[Any, int, int, int]]:
        return dict(self.data)


@settings(max_examples=300)
@given(COMMANDS)
def test_replicas_applying_the_same_commands_agree(commands: list[Any]) -> None:
    replicas = [KVStateMachine(max_sessions=2), KVStateMachine(max_sessions=2)]
    results: list[list[Any]] = [[], []]
    for index, (client, seq, op, ack_below) in enumerate(commands, start=1):
        entry = Entry(index, 1, EntryKind.NORMAL, Command(client, seq, op, ack_below))
        for sm, out in zip(replicas, results, strict=True):
            result, duplicate = sm.apply(entry)
            out.append((_comparable(result), duplicate))
        if index == len(commands) // 2:  # one replica goes through a snapshot midway
            restored = KVStateMachine(max_sessions=2)
            restored.restore(replicas[1].snapshot())
            replicas[1] = restored
    assert results[0] == results[1]
    assert replicas[0].state_hash() == replicas[1].state_hash()
    assert snapshot_of(replicas[0]) == snapshot_of(replicas[1])


@settings(max_examples=300)
@given(COMMANDS)
def test_state_machine_matches_a_reference_model(commands: list[Any]) -> None:
    sm = KVStateMachine()
    model = ReferenceKV()
    seen: set[tuple[str, int]] = set()
    floors: dict[str, int] = {}
    for index, (client, seq, op, ack_below) in enumerate(commands, start=1):
        result, duplicate = sm.apply(
            Entry(index, 1, EntryKind.NORMAL, Command(client, seq, op, ack_below)))
        expect_duplicate = (client, seq) in seen or seq < floors.get(client, 0)
        assert duplicate == expect_duplicate
        if duplicate:
            continue
        seen.add((client, seq))
        floors[client] = max(floors.get(client, 0), ack_below)
        if isinstance(result, InvalidCommand):
            with pytest.raises(InvalidCommand):
                validate_op(op)
            continue
        ok = model.run(op)
        assert isinstance(result, KVResult)
        assert result.revision == model.revision == sm.revision
        if ok is not None and not (op[0] == "cas" and op[2] is None and op[3] is None):
            assert result.ok == ok, (op, result)
        view = {k: (kv.value, kv.create_revision, kv.mod_revision, kv.version)
                for k, kv in sm.data.items()}
        assert view == model.view()


def test_invalid_command_is_a_validation_failed_cluster_error_with_a_code() -> None:
    from cluster_actors.errors import ClusterError, ValidationFailed

    with pytest.raises(InvalidCommand) as caught:
        validate_op(("put", None, 1))
    error = caught.value
    assert isinstance(error, ClusterError) and isinstance(error, ValidationFailed)
    assert isinstance(error, ValueError)  # as before
    assert error.code == "validation_failed" and "keys are strings" in error.message
    import pickle
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is InvalidCommand and again.message == error.message


def test_a_key_of_exactly_the_bound_is_accepted() -> None:
    from cluster_actors.core.kv import MAX_KEY_BYTES

    r = Replica()
    assert r.do("put", "k" * MAX_KEY_BYTES, 1).ok
    assert r.do("put", "é" * (MAX_KEY_BYTES // 2), 1).ok


def test_error_messages_stay_short_whatever_the_input() -> None:
    with pytest.raises(InvalidCommand) as caught:
        validate_op(("put", "k", b"x" * (8 << 20), "extra"))
    assert len(caught.value.message) < 400
    with pytest.raises(InvalidCommand) as caught:
        validate_op(("nope", 10**5000))            # repr would raise ValueError
    assert "bits" in caught.value.message
