"""The CRDT side of the trust boundary: bounded counts and vectors, a clock
drift limit for merged timestamps, a type clash kept as a visible conflict,
Merkle proofs that refuse nonsense, and a write that can be put back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cluster_actors.actors.sync import SyncActor
from cluster_actors.core.crdt import (
    GCounter,
    LWWElementSet,
    LWWRegister,
    ORMap,
    PNCounter,
    crdt_from_data,
)
from cluster_actors.core.merkle import (
    HASH_SIZE,
    MAX_DEPTH,
    MAX_REMOTE_DEPTH,
    MerkleProof,
    create_merkle_tree,
    verify_merkle_proof,
)
from cluster_actors.core.store import ReplicaStore
from cluster_actors.core.vclock import (
    MAX_COUNT,
    MAX_VECTOR_SIZE,
    HLCTimestamp,
    VectorClock,
)
from cluster_actors.errors import ClusterError, ValidationFailed


def _entry(*versions: tuple[dict[str, int], dict[str, Any]]) -> bytes:
    return json.dumps([[vector, data] for vector, data in versions], sort_keys=True,
                      separators=(",", ":")).encode()


# ================================================================== counts
def test_a_merge_bringing_a_count_of_10_to_the_30_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValidationFailed, match="2\\*\\*63-1"):
        crdt_from_data({"type": "gcounter", "counts": {"n1": 10**30}})
    local = ReplicaStore("a")
    local.update("hits", GCounter({"a": 1}))
    before = local.snapshot()
    forged = _entry(({"b": 1}, {"type": "pncounter", "p": {"b": 10**30}, "n": {}}))
    with pytest.raises(ValidationFailed, match="2\\*\\*63-1"):
        local.merge_entries({"hits": forged, "other": forged})
    assert local.snapshot() == before


def test_a_counter_cannot_be_incremented_past_the_bound() -> None:
    counter = GCounter({"a": MAX_COUNT})
    with pytest.raises(ValidationFailed, match="exceed"):
        counter.increment("a")
    with pytest.raises(ValueError):  # ValidationFailed is a ValueError for old callers
        PNCounter().increment("a", MAX_COUNT).increment("a", 1)


def test_a_vector_naming_more_replicas_than_allowed_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="replicas"):
        VectorClock({f"n{i}": 1 for i in range(MAX_VECTOR_SIZE + 1)})
    assert len(VectorClock({f"n{i}": 1 for i in range(100)})) == 100


def test_a_timestamp_with_a_huge_logical_counter_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="logical"):
        HLCTimestamp.from_data([1.0, 10**30, "n1"])


# ============================================================ clock drift
def _register_entry(wall: float, node: str = "b") -> bytes:
    return _entry(({node: 1}, {"type": "lwwregister", "value": "x",
                               "timestamp": [wall, 0, node]}))


def test_a_remote_timestamp_too_far_in_the_future_is_refused_and_changes_nothing() -> None:
    local = ReplicaStore("a", max_drift=60.0)
    local.physical_time = 1000.0
    local.put_register("k", "mine", 1000.0)
    before, clock = local.snapshot(), local.clock
    with pytest.raises(ValidationFailed, match="max_drift"):
        local.merge_entries({"k": _register_entry(1000.0 + 3600)})
    assert local.snapshot() == before and local.clock == clock
    assert local.merge_entry("k", _register_entry(1000.0 + 30))  # within the drift: merged


def test_far_future_timestamps_inside_sets_and_maps_are_refused_too() -> None:
    local = ReplicaStore("a", max_drift=60.0)
    local.physical_time = 0.0
    element_set = LWWElementSet({"x": (10**9, "b")})
    mapping = ORMap().put("b", "f", LWWRegister(1, (10**9, "b")))
    for value in (element_set, mapping):
        with pytest.raises(ValidationFailed, match="max_drift"):
            local.merge_entry("k", _entry(({"b": 1}, value.to_data())))
    assert len(local) == 0


def test_without_a_physical_time_the_drift_check_stays_off() -> None:
    local = ReplicaStore("a", max_drift=60.0)
    assert local.merge_entry("k", _register_entry(10**9))


# ============================================================ type clashes
def test_a_type_clash_in_a_merge_is_kept_as_a_visible_conflict() -> None:
    a, b = ReplicaStore("a"), ReplicaStore("b")
    a.update("k", GCounter({"a": 3}))
    b.put_register("k", "text", 1.0)
    a.merge_entry("k", b.entry("k"))
    b.merge_entry("k", a.entry("k"))
    for store in (a, b):
        assert store.conflicts() == ["k"]
        kinds = sorted(value.type_name for _, value in store.siblings("k"))
        assert kinds == ["gcounter", "lwwregister"]  # neither side dropped
    assert a.entry("k") == b.entry("k")  # and both replicas agree on it


def test_a_type_clash_is_resolved_by_a_value_and_the_resolution_spreads() -> None:
    a, b = ReplicaStore("a"), ReplicaStore("b")
    a.update("k", GCounter({"a": 3}))
    b.put_register("k", "text", 1.0)
    a.merge_entry("k", b.entry("k"))
    b.merge_entry("k", a.entry("k"))
    assert a.resolve_conflict("k", "value", 5)
    b.merge_entry("k", a.entry("k"))
    assert a.conflicts() == b.conflicts() == []
    assert a.value("k") == b.value("k") == 5


# ================================================================= revert
def test_revert_puts_a_key_back_or_removes_a_key_that_was_new() -> None:
    store = ReplicaStore("a")
    store.update("old", GCounter({"a": 1}))
    before_hash, old_entry = store.state_hash(), store.entry("old")
    store.update("old", lambda c: c.increment("a"))
    store.update("new", GCounter({"a": 1}))
    store.revert("old", old_entry)
    store.revert("new", None)
    assert store.state_hash() == before_hash and store.keys() == ["old"]
    assert store.value("old") == 1


# ================================================================= merkle
def _proof() -> tuple[bytes, MerkleProof]:
    tree = create_merkle_tree({"k": "v", "other": 1}, depth=4)
    return tree.root, tree.proof("k")


@pytest.mark.parametrize("leaf", ["kv", b"kv", None, 7, ("k",), ("k", "v", "w"),
                                  {"k": "v"}])
def test_verify_merkle_proof_is_false_for_a_leaf_that_is_not_a_key_value_pair(
        leaf: Any) -> None:
    root, proof = _proof()
    assert verify_merkle_proof(("k", "v"), root, proof)  # the honest pair passes
    assert verify_merkle_proof(leaf, root, proof) is False


@pytest.mark.parametrize("root", [0, 16, "00" * HASH_SIZE, b"short", None, [1] * HASH_SIZE])
def test_verify_merkle_proof_is_false_for_a_root_that_is_not_a_hash(root: Any) -> None:
    _, proof = _proof()
    assert verify_merkle_proof(("k", "v"), root, proof) is False


@pytest.mark.parametrize("proof", [None, {"depth": 4}, "proof", 3])
def test_verify_merkle_proof_is_false_for_a_proof_that_is_not_one(proof: Any) -> None:
    root, _ = _proof()
    assert verify_merkle_proof(("k", "v"), root, proof) is False


def test_a_remote_caller_cannot_have_a_tree_deeper_than_the_cap_built() -> None:
    sync_actor = SyncActor.__ray_actor_class__
    with pytest.raises(ValidationFailed, match=f"0..{MAX_REMOTE_DEPTH}") as raised:
        sync_actor._tree({"k": 1}, 24)
    assert isinstance(raised.value, ClusterError) and MAX_REMOTE_DEPTH < MAX_DEPTH
    assert sync_actor._tree({"k": 1}, MAX_REMOTE_DEPTH).depth == MAX_REMOTE_DEPTH
    # the default depth for a huge data set is capped too (not 2**24 leaves)
    assert sync_actor._tree({f"k{i}": i for i in range(100_000)}, None).depth \
        <= MAX_REMOTE_DEPTH
