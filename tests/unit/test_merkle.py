"""Merkle trees: diff against a naive diff, incremental == rebuild, proofs, wire descent."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.merkle import (
    DEFAULT_DEPTH,
    HASH_SIZE,
    MerkleProof,
    MerkleTree,
    create_merkle_tree,
    depth_for_keys,
    diff_entries,
    leaf_index_for,
    value_digest,
    verify_merkle_proof,
)

KEYS = st.sampled_from([f"k{i}" for i in range(40)])
VALUES = st.binary(max_size=3)
STORES = st.dictionaries(KEYS, VALUES, max_size=30)
DEPTHS = st.integers(0, 5)
# edits turning one store into another: (key, value or None for delete)
EDITS = st.lists(st.tuples(KEYS, st.none() | VALUES), max_size=15)


def apply_edits(store: dict[str, bytes], edits) -> dict[str, bytes]:
    result = dict(store)
    for key, value in edits:
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def naive_diff(mine: dict[str, bytes], theirs: dict[str, bytes]):
    return (mine.keys() - theirs.keys(), theirs.keys() - mine.keys(),
            {k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k]})


@settings(max_examples=1000)
@given(store=STORES, edits=EDITS, depth=DEPTHS)
def test_diff_equals_a_naive_diff(store, edits, depth) -> None:
    other = apply_edits(store, edits)
    mine, theirs = MerkleTree.build(store, depth), MerkleTree.build(other, depth)
    result = mine.diff(theirs)
    only_local, only_remote, changed = naive_diff(store, other)
    assert result.only_local == only_local
    assert result.only_remote == only_remote
    assert result.changed == changed
    assert result.keys == only_local | only_remote | changed
    assert bool(result) == bool(result.keys) == (mine.root != theirs.root)
    assert result.leaves_differing == len({leaf_index_for(k, depth) for k in result.keys})
    assert 1 <= result.hashes_compared <= mine.node_count
    mirrored = theirs.diff(mine)
    assert (mirrored.only_local, mirrored.only_remote) == (result.only_remote, result.only_local)


@settings(max_examples=1000)
@given(store=STORES, edits=EDITS, depth=DEPTHS)
def test_incremental_updates_equal_a_rebuild(store, edits, depth) -> None:
    tree = MerkleTree.build(store, depth)
    final = dict(store)
    for key, value in edits:
        if value is None:
            assert tree.remove(key) == (key in final)
            final.pop(key, None)
        else:
            tree.update(key, value)
            final[key] = value
    rebuilt = MerkleTree.build(final, depth)
    assert tree.root == rebuilt.root
    assert tree == rebuilt
    for level in range(depth + 1):
        assert tree.level_hashes(level) == rebuilt.level_hashes(level)
    assert len(tree) == len(final) and dict(tree.items()) == dict(rebuilt.items())


def flip(data: bytes, position: int = 0) -> bytes:
    position %= len(data)
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]


@settings(max_examples=1000)
@given(store=st.dictionaries(KEYS, VALUES, min_size=1, max_size=30), depth=DEPTHS,
       pick=st.integers(0, 1000), position=st.integers(0, HASH_SIZE - 1))
def test_proofs_verify_and_any_tampering_is_rejected(store, depth, pick, position) -> None:
    tree = create_merkle_tree(store, depth)
    key = sorted(store)[pick % len(store)]
    value = store[key]
    proof = tree.proof(key)
    root = tree.root
    assert verify_merkle_proof((key, value), root, proof)
    assert verify_merkle_proof((key, value), root, MerkleProof.from_data(proof.to_data()))
    # tampered leaf
    assert not verify_merkle_proof((key, value + b"!"), root, proof)
    others = [k for k in store if k != key]
    if others:
        assert not verify_merkle_proof((others[pick % len(others)], value), root, proof)
    # tampered root
    assert not verify_merkle_proof((key, value), flip(root, position), proof)
    # tampered proof: every sibling, the bucket entries, the leaf index, the depth
    for level in range(depth):
        siblings = list(proof.siblings)
        siblings[level] = flip(siblings[level], position)
        assert not verify_merkle_proof((key, value), root, MerkleProof(
            proof.depth, proof.leaf_index, proof.bucket, tuple(siblings)))
    if proof.bucket:
        (k0, d0), *rest = proof.bucket
        assert not verify_merkle_proof((key, value), root, MerkleProof(
            depth, proof.leaf_index, ((k0, flip(d0, position)), *rest), proof.siblings))
        assert not verify_merkle_proof((key, value), root, MerkleProof(
            depth, proof.leaf_index, tuple(rest), proof.siblings))
    if depth:
        assert not verify_merkle_proof((key, value), root, MerkleProof(
            depth, proof.leaf_index ^ 1, proof.bucket, proof.siblings))
        assert not verify_merkle_proof((key, value), root, MerkleProof(
            depth - 1, proof.leaf_index >> 1, proof.bucket, proof.siblings[:-1]))


def test_proof_of_an_absent_key_is_a_key_error_and_garbage_verifies_false() -> None:
    tree = MerkleTree.build({"a": b"1"}, depth=3)
    with pytest.raises(KeyError):
        tree.proof("b")
    proof = tree.proof("a")
    assert not verify_merkle_proof(("a", b"1"), tree.root, None)  # type: ignore[arg-type]
    assert not verify_merkle_proof(("a",), tree.root, proof)  # type: ignore[arg-type]
    assert not verify_merkle_proof(("a", {1, 2}), tree.root, proof)
    assert not verify_merkle_proof(("a", b"1"), tree.root, MerkleProof(
        3, proof.leaf_index, proof.bucket, (b"short", *proof.siblings[1:])))


def wire_diff(mine: MerkleTree, theirs: MerkleTree) -> tuple[set[str], int]:
    """A sync exchange that uses only the level-at-a-time API (what crosses the wire)."""
    exchanged = 1
    if mine.differing_nodes(0, [0], theirs.level_hashes(0, [0])) == []:
        return set(), exchanged
    frontier = [0]
    for level in range(mine.depth):
        children = MerkleTree.children(frontier)
        their_hashes = theirs.level_hashes(level + 1, children)     # one message
        exchanged += len(their_hashes)
        frontier = mine.differing_children(level, frontier, their_hashes)
    keys: set[str] = set()
    for leaf in frontier:
        a, b, c = diff_entries(mine.bucket_entries(leaf), theirs.bucket_entries(leaf))
        keys |= a | b | c
        assert set(mine.bucket_keys(leaf)) == set(mine.bucket_entries(leaf))
    return keys, exchanged


@settings(max_examples=300)
@given(store=STORES, edits=EDITS, depth=DEPTHS)
def test_level_by_level_exchange_finds_the_same_keys_as_diff(store, edits, depth) -> None:
    mine = MerkleTree.build(store, depth)
    theirs = MerkleTree.build(apply_edits(store, edits), depth)
    keys, exchanged = wire_diff(mine, theirs)
    result = mine.diff(theirs)
    assert keys == result.keys
    assert exchanged == result.hashes_compared
    # key ranges: a subtree's entries are exactly the buckets under it
    if depth:
        for index in range(2):
            span = mine.leaf_span(1, index)
            expected = {k: d for k, d in mine.items() if leaf_index_for(k, depth) in span}
            assert mine.subtree_entries(1, index) == expected


def test_trees_of_different_depth_cannot_be_diffed() -> None:
    with pytest.raises(ValueError, match=r"different depth \(4 vs 5\)"):
        MerkleTree.build({"a": b"1"}, 4).diff(MerkleTree.build({"a": b"1"}, 5))


def test_bad_arguments_are_rejected() -> None:
    tree = MerkleTree(depth=3)
    for depth in (-1, 25, 2.0, True):
        with pytest.raises(ValueError):
            MerkleTree(depth)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tree.level_hashes(4)
    with pytest.raises(ValueError):
        tree.node_hash(2, 4)
    with pytest.raises(ValueError):
        tree.differing_nodes(1, [0, 1], [b"x"])
    with pytest.raises(ValueError):
        tree.differing_children(3, [0], [])
    with pytest.raises(TypeError):
        tree.update(1, b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        value_digest(object())


def test_empty_and_emptied_trees_agree_and_small_trees_are_cheap() -> None:
    empty = MerkleTree()
    assert empty.depth == DEFAULT_DEPTH and len(empty) == 0
    tree = MerkleTree.build({"a": b"1", "b": b"2"})
    assert tree.root != empty.root and "a" in tree and "zz" not in tree
    tree.update("a", b"1")                         # unchanged value: no-op
    assert tree.remove("a") and tree.remove("b") and not tree.remove("b")
    assert tree.root == empty.root and tree == empty
    assert tree.digest_of("a") is None


def test_value_digests_are_canonical_and_domain_separated() -> None:
    assert len({value_digest(b"1"), value_digest("1"), value_digest(1)}) == 3
    assert value_digest({"a": 1, "b": [1, 2]}) == value_digest({"b": [1, 2], "a": 1})
    tree = MerkleTree.build({"k": {"x": 1}}, depth=4)
    twin = MerkleTree.build_from_digests({"k": value_digest({"x": 1})}, depth=4)
    assert tree.root == twin.root


def test_depth_for_keys() -> None:
    assert depth_for_keys(1_000_000) == 20
    assert depth_for_keys(1_000_000, keys_per_leaf=16) == 16
    assert depth_for_keys(0) == 1 and depth_for_keys(10**12) == 24


def test_a_small_difference_in_a_large_tree_touches_under_one_percent() -> None:
    store = {f"key-{i:06d}": i.to_bytes(4, "big") for i in range(100_000)}
    mine = MerkleTree.build(store)
    rng = random.Random(42)
    changed = set(rng.sample(sorted(store), 10))
    theirs = mine.copy()
    for key in changed:
        theirs.update(key, b"changed")
    assert theirs == MerkleTree.build({**store, **dict.fromkeys(changed, b"changed")})
    result = mine.diff(theirs)
    assert result.changed == changed and not result.only_local and not result.only_remote
    assert result.leaves_differing == len({mine.leaf_index(k) for k in changed})
    assert result.touched_fraction < 0.01
    assert result.entries_compared < 0.01 * 2 * len(store)
