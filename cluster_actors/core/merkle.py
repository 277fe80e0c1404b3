"""Hash-bucketed Merkle trees for anti-entropy: build, incremental update, diff, proofs.

The layout follows Dynamo and Cassandra: a fixed ``depth`` gives ``2**depth``
leaves; a key belongs to the leaf named by the top ``depth`` bits of
``blake2b(key)``, so both replicas put every key in the same bucket whatever
else they hold. A leaf hashes the sorted ``(key, value digest)`` entries of its
bucket; an inner node hashes its two children. Levels are stored as flat
byte arrays (level 0 is the root, level ``depth`` the leaves; node ``i`` at
level ``l`` has children ``2i`` and ``2i + 1``), which keeps a million-key
tree in a few hundred MB and its hashes in ``16 * 2**(depth + 1)`` bytes.

- :meth:`MerkleTree.update` / :meth:`~MerkleTree.remove` rehash one bucket and
  the ``depth`` nodes above it; no rebuild.
- :meth:`MerkleTree.diff` descends only into subtrees whose hashes differ, then
  compares the entries of differing buckets, and returns exactly the keys that
  differ together with the work it did.
- For a sync protocol that exchanges hashes over the wire, the same descent
  is available a level at a time: :meth:`~MerkleTree.level_hashes`,
  :meth:`~MerkleTree.differing_nodes`, :meth:`~MerkleTree.differing_children`,
  :meth:`~MerkleTree.bucket_entries`, :meth:`~MerkleTree.subtree_entries` and
  :func:`diff_entries`.
- :meth:`MerkleTree.proof` and :func:`verify_merkle_proof` prove that a
  ``(key, value)`` pair is part of the tree with a given root.

Values are digested by :func:`value_digest`: bytes as they are, str as UTF-8,
anything else as canonical JSON (sorted keys), so a CRDT's ``to_data()``
digests the same on every replica.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

__all__ = [
    "DEFAULT_DEPTH",
    "HASH_SIZE",
    "MAX_DEPTH",
    "MAX_REMOTE_DEPTH",
    "DiffResult",
    "MerkleProof",
    "MerkleTree",
    "create_merkle_tree",
    "depth_for_keys",
    "diff_entries",
    "leaf_index_for",
    "value_digest",
    "verify_merkle_proof",
]

HASH_SIZE = 16
"""Bytes per node hash and per value digest (128-bit blake2b)."""

DEFAULT_DEPTH = 16
"""65,536 leaves: about 15 keys per bucket at a million keys (Cassandra uses 15)."""

MAX_DEPTH = 24

MAX_REMOTE_DEPTH = 16
"""The deepest tree a remote caller may have built (``create_merkle_tree`` and
``merkle_proof`` with data): 65,536 leaves, a few MB, whereas depth 24 costs
about 0.7 GB per call. The store's own tree may go to :data:`MAX_DEPTH`."""

_KEY_PERSON = b"ca-merkle-key"
_VALUE_PERSON = b"ca-merkle-value"
_LEAF_PERSON = b"ca-merkle-leaf"
_NODE_PERSON = b"ca-merkle-node"


def depth_for_keys(expected_keys: int, keys_per_leaf: float = 1.0) -> int:
    """A depth giving about ``keys_per_leaf`` keys per bucket for ``expected_keys`` keys.

    Deeper trees make a diff touch a smaller share of the tree and compare
    fewer bucket entries, at ``32 * 2**depth`` bytes of hashes. Both sides of
    a sync must use the same depth, so pick it from the expected store size
    once (a million keys: 20), not from each replica's current size.
    """
    if expected_keys < 0 or keys_per_leaf <= 0:
        raise ValueError("expected_keys must be >= 0 and keys_per_leaf > 0")
    leaves = max(1.0, expected_keys / keys_per_leaf)
    return min(MAX_DEPTH, max(1, math.ceil(math.log2(leaves))))


def value_digest(value: Any) -> bytes:
    """The 16-byte digest the tree stores for ``value``.

    bytes-like values are hashed as they are, ``str`` as UTF-8, anything else
    as canonical JSON (``sort_keys``, compact separators); the three are
    domain-separated so ``b"1"``, ``"1"`` and ``1`` differ. Raises TypeError for
    values JSON cannot encode.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = b"b" + bytes(value)
    elif isinstance(value, str):
        data = b"s" + value.encode()
    else:
        data = b"j" + json.dumps(value, sort_keys=True, separators=(",", ":"),
                                 allow_nan=False).encode()
    return blake2b(data, digest_size=HASH_SIZE, person=_VALUE_PERSON).digest()


def leaf_index_for(key: str, depth: int) -> int:
    """The leaf (bucket) a key belongs to in any tree of ``depth``."""
    digest = blake2b(key.encode(), digest_size=8, person=_KEY_PERSON).digest()
    return int.from_bytes(digest, "big") >> (64 - depth)


def _leaf_hash(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """Hash of a bucket: its ``(key, value digest)`` entries, sorted by key."""
    h = blake2b(digest_size=HASH_SIZE, person=_LEAF_PERSON)
    for key, digest in sorted(entries):
        encoded = key.encode()
        h.update(len(encoded).to_bytes(4, "big"))
        h.update(encoded)
        h.update(digest)
    return h.digest()


def _node_hash(left_and_right: bytes | bytearray | memoryview) -> bytes:
    return blake2b(left_and_right, digest_size=HASH_SIZE, person=_NODE_PERSON).digest()


def _empty_hashes(depth: int) -> list[bytes]:
    """``result[l]``: the hash of a node at level ``l`` whose subtree holds no key."""
    result = [b""] * (depth + 1)
    result[depth] = _leaf_hash(())
    for level in range(depth - 1, -1, -1):
        result[level] = _node_hash(result[level + 1] * 2)
    return result


def diff_entries(mine: Mapping[str, bytes], theirs: Mapping[str, bytes]
                 ) -> tuple[set[str], set[str], set[str]]:
    """Compare two ``key -> value digest`` maps: ``(only_mine, only_theirs, changed)``."""
    only_mine = mine.keys() - theirs.keys()
    only_theirs = theirs.keys() - mine.keys()
    changed = {key for key in mine.keys() & theirs.keys() if mine[key] != theirs[key]}
    return set(only_mine), set(only_theirs), changed


@dataclass(frozen=True)
class DiffResult:
    """What :meth:`MerkleTree.diff` found, and what it cost.

    ``self`` of the diff is the local side. ``keys`` is exactly the set of keys
    whose value differs or that exist on one side only.
    """

    only_local: frozenset[str]
    only_remote: frozenset[str]
    changed: frozenset[str]
    hashes_compared: int
    """Node hashes compared on the way down (root included)."""
    leaves_differing: int
    differing_leaves: tuple[int, ...]
    entries_compared: int
    """Bucket entries (both sides) examined in differing leaves."""
    node_count: int
    """Hashes in one tree: ``2**(depth + 1) - 1``."""

    @property
    def keys(self) -> frozenset[str]:
        return self.only_local | self.only_remote | self.changed

    @property
    def touched_fraction(self) -> float:
        """``hashes_compared / node_count``: the share of the tree the diff looked at."""
        return self.hashes_compared / self.node_count

    def __bool__(self) -> bool:
        """True when the trees differ."""
        return bool(self.only_local or self.only_remote or self.changed)


@dataclass(frozen=True)
class MerkleProof:
    """Evidence that one ``(key, value)`` is in a tree with a given root.

    ``bucket`` holds the other entries of the key's bucket (``(key, value
    digest)`` pairs) so the verifier can recompute the leaf; ``siblings`` are
    the sibling hashes from the leaf up to (not including) the root.
    """

    depth: int
    leaf_index: int
    bucket: tuple[tuple[str, bytes], ...]
    siblings: tuple[bytes, ...]

    def to_data(self) -> dict[str, Any]:
        """JSON-able form (hashes as hex)."""
        return {"depth": self.depth, "leaf_index": self.leaf_index,
                "bucket": [[key, digest.hex()] for key, digest in self.bucket],
                "siblings": [sibling.hex() for sibling in self.siblings]}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> MerkleProof:
        """Rebuild from :meth:`to_data`; ValueError (or TypeError) if malformed."""
        return cls(depth=int(data["depth"]), leaf_index=int(data["leaf_index"]),
                   bucket=tuple((str(k), bytes.fromhex(d)) for k, d in data["bucket"]),
                   siblings=tuple(bytes.fromhex(s) for s in data["siblings"]))


def _check_depth(depth: int) -> None:
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be an integer in 0..{MAX_DEPTH}, got {depth!r}")


class MerkleTree:
    """A fixed-depth, hash-bucketed Merkle tree over ``str`` keys.

    Contract: after any sequence of :meth:`update` / :meth:`remove` calls the
    tree (every level, every bucket) equals ``MerkleTree.build`` of the same
    final contents; two trees of equal depth have equal roots exactly when
    they hold the same ``key -> value digest`` entries (up to hash collisions).
    """

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        """An empty tree of ``depth`` (``2**depth`` leaves)."""
        _check_depth(depth)
        self._depth = depth
        self._empty = _empty_hashes(depth)
        self._levels = [bytearray(self._empty[level] * (1 << level))
                        for level in range(depth + 1)]
        self._buckets: list[dict[str, bytes] | None] = [None] * (1 << depth)
        self._size = 0

    # -- construction ---------------------------------------------------------
    @classmethod
    def build(cls, items: Mapping[str, Any] | Iterable[tuple[str, Any]],
              depth: int = DEFAULT_DEPTH) -> MerkleTree:
        """A tree over ``items`` (``key -> value``; values digested by :func:`value_digest`)."""
        pairs = items.items() if isinstance(items, Mapping) else items
        return cls.build_from_digests(((key, value_digest(value)) for key, value in pairs), depth)

    @classmethod
    def build_from_digests(cls, digests: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
                           depth: int = DEFAULT_DEPTH) -> MerkleTree:
        """A tree over precomputed ``key -> value digest`` entries (16 bytes each)."""
        tree = cls(depth)
        pairs = digests.items() if isinstance(digests, Mapping) else digests
        buckets = tree._buckets
        shift = 64 - depth
        size = 0
        for key, digest in pairs:
            if not isinstance(key, str):
                raise TypeError(f"Merkle tree keys must be str, got {key!r}")
            index = int.from_bytes(
                blake2b(key.encode(), digest_size=8, person=_KEY_PERSON).digest(), "big") >> shift
            bucket = buckets[index]
            if bucket is None:
                bucket = buckets[index] = {}
            if key not in bucket:
                size += 1
            bucket[key] = digest
        tree._size = size
        leaves = tree._levels[depth]
        dirty = []
        for index, bucket in enumerate(buckets):
            if bucket:
                leaves[HASH_SIZE * index:HASH_SIZE * (index + 1)] = _leaf_hash(bucket.items())
                dirty.append(index)
        tree._rehash_from(dirty)
        return tree

    def _rehash_from(self, dirty_leaves: Sequence[int]) -> None:
        """Recompute every inner node above the given (sorted, distinct) leaves."""
        dirty = list(dirty_leaves)
        for level in range(self._depth - 1, -1, -1):
            child = memoryview(self._levels[level + 1])
            parent = self._levels[level]
            if len(dirty) * 4 > (1 << level):    # dense: rehash the whole level
                step = 2 * HASH_SIZE
                parent[:] = b"".join(_node_hash(child[i:i + step])
                                     for i in range(0, len(child), step))
                dirty = list(range(1 << level))
            else:
                parents = sorted({index >> 1 for index in dirty})
                for index in parents:
                    start = 2 * HASH_SIZE * index
                    parent[HASH_SIZE * index:HASH_SIZE * (index + 1)] = _node_hash(
                        child[start:start + 2 * HASH_SIZE])
                dirty = parents

    # -- incremental updates --------------------------------------------------
    def update(self, key: str, value: Any) -> None:
        """Insert or replace ``key``; rehashes its bucket and the path to the root."""
        self.update_digest(key, value_digest(value))

    def update_digest(self, key: str, digest: bytes) -> None:
        """Like :meth:`update` with a precomputed :func:`value_digest`."""
        if not isinstance(key, str):
            raise TypeError(f"Merkle tree keys must be str, got {key!r}")
        index = leaf_index_for(key, self._depth)
        bucket = self._buckets[index]
        if bucket is None:
            bucket = self._buckets[index] = {}
        if bucket.get(key) == digest:
            return
        if key not in bucket:
            self._size += 1
        bucket[key] = bytes(digest)
        self._rehash_path(index)

    def remove(self, key: str) -> bool:
        """Delete ``key`` if present (returns whether it was); rehashes its path."""
        index = leaf_index_for(key, self._depth)
        bucket = self._buckets[index]
        if not bucket or key not in bucket:
            return False
        del bucket[key]
        if not bucket:
            self._buckets[index] = None
        self._size -= 1
        self._rehash_path(index)
        return True

    def _rehash_path(self, leaf: int) -> None:
        bucket = self._buckets[leaf]
        leaves = self._levels[self._depth]
        leaves[HASH_SIZE * leaf:HASH_SIZE * (leaf + 1)] = _leaf_hash(bucket.items() if bucket
                                                                      else ())
        index = leaf
        for level in range(self._depth - 1, -1, -1):
            index >>= 1
            start = 2 * HASH_SIZE * index
            self._levels[level][HASH_SIZE * index:HASH_SIZE * (index + 1)] = _node_hash(
                self._levels[level + 1][start:start + 2 * HASH_SIZE])

    # -- reading -------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self._depth

    @property
    def root(self) -> bytes:
        """The root hash (16 bytes)."""
        return bytes(self._levels[0])

    @property
    def leaf_count(self) -> int:
        return 1 << self._depth

    @property
    def node_count(self) -> int:
        """Hashes in the tree: ``2**(depth + 1) - 1``."""
        return (1 << (self._depth + 1)) - 1

    def __len__(self) -> int:
        """Number of keys."""
        return self._size

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.digest_of(key) is not None

    def digest_of(self, key: str) -> bytes | None:
        """The stored value digest of ``key``, None if absent."""
        bucket = self._buckets[leaf_index_for(key, self._depth)]
        return None if bucket is None else bucket.get(key)

    def leaf_index(self, key: str) -> int:
        """The leaf ``key`` belongs to."""
        return leaf_index_for(key, self._depth)

    def node_hash(self, level: int, index: int) -> bytes:
        """Hash of node ``index`` at ``level`` (0 = root, ``depth`` = leaves)."""
        self._check_node(level, index)
        return bytes(self._levels[level][HASH_SIZE * index:HASH_SIZE * (index + 1)])

    def copy(self) -> MerkleTree:
        """An independent copy."""
        clone = MerkleTree.__new__(MerkleTree)
        clone._depth, clone._empty, clone._size = self._depth, self._empty, self._size
        clone._levels = [bytearray(level) for level in self._levels]
        clone._buckets = [None if b is None else dict(b) for b in self._buckets]
        return clone

    def items(self) -> Iterable[tuple[str, bytes]]:
        """Every ``(key, value digest)``, bucket by bucket."""
        for bucket in self._buckets:
            if bucket:
                yield from bucket.items()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleTree):
            return NotImplemented
        return (self._depth == other._depth and self._levels == other._levels
                and [b or None for b in self._buckets] == [b or None for b in other._buckets])

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"MerkleTree(depth={self._depth}, keys={self._size}, root={self.root.hex()})"

    # -- the level-at-a-time API for sync protocols ---------------------------------
    def _check_node(self, level: int, index: int) -> None:
        if not 0 <= level <= self._depth:
            raise ValueError(f"level must be in 0..{self._depth}, got {level}")
        if not 0 <= index < (1 << level):
            raise ValueError(f"index {index} out of range for level {level} "
                             f"(0..{(1 << level) - 1})")

    def level_hashes(self, level: int, indices: Iterable[int] | None = None) -> list[bytes]:
        """Hashes of the given nodes at ``level`` (every node of the level when None)."""
        data = self._levels[level] if 0 <= level <= self._depth else None
        if data is None:
            raise ValueError(f"level must be in 0..{self._depth}, got {level}")
        if indices is None:
            return [bytes(data[i:i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]
        return [self.node_hash(level, index) for index in indices]

    @staticmethod
    def children(indices: Iterable[int]) -> list[int]:
        """Child indices (one level down) of the given nodes, in order: ``2i, 2i + 1``."""
        return [child for index in indices for child in (2 * index, 2 * index + 1)]

    def differing_nodes(self, level: int, indices: Sequence[int],
                        their_hashes: Sequence[bytes]) -> list[int]:
        """The nodes of ``indices`` (at ``level``) whose hash differs from ``their_hashes``."""
        if len(indices) != len(their_hashes):
            raise ValueError(f"{len(indices)} indices but {len(their_hashes)} hashes")
        return [index for index, theirs in zip(indices, their_hashes, strict=True)
                if self.node_hash(level, index) != theirs]

    def differing_children(self, level: int, indices: Sequence[int],
                           their_child_hashes: Sequence[bytes]) -> list[int]:
        """Children (at ``level + 1``) of ``indices`` whose hash differs from the peer's.

        ``their_child_hashes`` are the peer's ``level_hashes(level + 1,
        children(indices))``. Returns indices at ``level + 1``; when ``level + 1``
        is the leaf level, follow with :meth:`bucket_entries`.
        """
        if level >= self._depth:
            raise ValueError(f"level {level} has no children (depth is {self._depth})")
        return self.differing_nodes(level + 1, self.children(indices), their_child_hashes)

    def leaf_span(self, level: int, index: int) -> range:
        """The leaf indices under node ``index`` at ``level``."""
        self._check_node(level, index)
        shift = self._depth - level
        return range(index << shift, (index + 1) << shift)

    def bucket_keys(self, leaf_index: int) -> list[str]:
        """Keys of one bucket, sorted."""
        return sorted(self.bucket_entries(leaf_index))

    def bucket_entries(self, leaf_index: int) -> dict[str, bytes]:
        """``key -> value digest`` of one bucket (a copy)."""
        self._check_node(self._depth, leaf_index)
        bucket = self._buckets[leaf_index]
        return dict(bucket) if bucket else {}

    def subtree_entries(self, level: int, index: int) -> dict[str, bytes]:
        """``key -> value digest`` of every bucket under one node: a key range to exchange."""
        entries: dict[str, bytes] = {}
        for leaf in self.leaf_span(level, index):
            bucket = self._buckets[leaf]
            if bucket:
                entries.update(bucket)
        return entries

    # -- diff ----------------------------------------------------------------------
    def diff(self, other: MerkleTree) -> DiffResult:
        """Exactly the keys that differ between ``self`` (local) and ``other`` (remote).

        Descends level by level into nodes whose hashes differ, then compares
        the entries of differing buckets. Raises ValueError for trees of
        different depth, since their buckets do not line up.
        """
        if not isinstance(other, MerkleTree):
            raise TypeError(f"can only diff against a MerkleTree, got {type(other).__name__}")
        if other._depth != self._depth:
            raise ValueError(
                f"cannot diff Merkle trees of different depth ({self._depth} vs {other._depth}): "
                "buckets only line up when both sides build with the same depth")
        compared = 1
        frontier = [0] if self._levels[0] != other._levels[0] else []
        for level in range(1, self._depth + 1):
            if not frontier:
                break
            mine, theirs = self._levels[level], other._levels[level]
            next_frontier = []
            for child in self.children(frontier):
                start = HASH_SIZE * child
                if mine[start:start + HASH_SIZE] != theirs[start:start + HASH_SIZE]:
                    next_frontier.append(child)
            compared += 2 * len(frontier)
            frontier = next_frontier
        only_local: set[str] = set()
        only_remote: set[str] = set()
        changed: set[str] = set()
        entries = 0
        for leaf in frontier:
            mine_b, theirs_b = self._buckets[leaf] or {}, other._buckets[leaf] or {}
            entries += len(mine_b) + len(theirs_b)
            a, b, c = diff_entries(mine_b, theirs_b)
            only_local |= a
            only_remote |= b
            changed |= c
        return DiffResult(frozenset(only_local), frozenset(only_remote), frozenset(changed),
                          hashes_compared=compared, leaves_differing=len(frontier),
                          differing_leaves=tuple(frontier), entries_compared=entries,
                          node_count=self.node_count)

    # -- proofs ----------------------------------------------------------------------
    def proof(self, key: str) -> MerkleProof:
        """A proof that ``key`` (with its current value) is in this tree; KeyError if absent."""
        index = leaf_index_for(key, self._depth)
        bucket = self._buckets[index]
        if not bucket or key not in bucket:
            raise KeyError(key)
        siblings = []
        node = index
        for level in range(self._depth, 0, -1):
            siblings.append(self.node_hash(level, node ^ 1))
            node >>= 1
        others = tuple(sorted((k, d) for k, d in bucket.items() if k != key))
        return MerkleProof(self._depth, index, others, tuple(siblings))


def verify_merkle_proof(leaf: tuple[str, Any], root: bytes, proof: MerkleProof) -> bool:
    """True when ``leaf = (key, value)`` with ``proof`` hashes up to ``root``.

    Checks that the key belongs to the proof's bucket, recomputes the bucket
    hash from the other entries plus this one, and climbs the siblings. Any
    change to key, value, bucket entries, siblings, leaf index, depth or root
    makes it False; malformed input gives False, never an exception.
    """
    if (not isinstance(leaf, (tuple, list)) or len(leaf) != 2
            or not isinstance(proof, MerkleProof)
            or not isinstance(root, (bytes, bytearray)) or len(root) != HASH_SIZE):
        return False  # e.g. "kv" would unpack into key "k" and value "v"
    try:
        key, value = leaf
        depth = proof.depth
        if (not isinstance(key, str) or isinstance(depth, bool) or not isinstance(depth, int)
                or not 0 <= depth <= MAX_DEPTH
                or isinstance(proof.leaf_index, bool) or not isinstance(proof.leaf_index, int)
                or len(proof.siblings) != depth
                or leaf_index_for(key, depth) != proof.leaf_index):
            return False
        keys = [k for k, _ in proof.bucket]
        if key in keys or len(set(keys)) != len(keys):
            return False
        if any(leaf_index_for(k, depth) != proof.leaf_index for k in keys):
            return False
        node = _leaf_hash([*proof.bucket, (key, value_digest(value))])
        index = proof.leaf_index
        for sibling in proof.siblings:
            if len(sibling) != HASH_SIZE:
                return False
            node = _node_hash(sibling + node if index & 1 else node + sibling)
            index >>= 1
        return node == bytes(root)
    except (TypeError, ValueError, AttributeError):
        return False


def create_merkle_tree(data: Mapping[str, Any], depth: int = DEFAULT_DEPTH) -> MerkleTree:
    """The seed's ``create_merkle_tree(Data)``: :meth:`MerkleTree.build` of a mapping."""
    return MerkleTree.build(data, depth)
