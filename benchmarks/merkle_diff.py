"""Merkle diff of two large stores that differ in a few keys.

Builds a tree over each of two stores of ``--keys`` keys (default 1,000,000)
that differ in ``--differ`` keys (default 100: half changed values, a quarter
only on each side), diffs them and prints build time, diff time, hashes
compared, and the share of the tree the diff touched. Also times incremental
updates and estimates the bytes a level-by-level sync exchange would send.

    python benchmarks/merkle_diff.py                  # 1M keys, depth for 1M keys (20)
    python benchmarks/merkle_diff.py --depth 16       # Cassandra-like 65,536 leaves
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

try:
    from cluster_actors.core.merkle import HASH_SIZE, MerkleTree, depth_for_keys
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from cluster_actors.core.merkle import HASH_SIZE, MerkleTree, depth_for_keys


def make_stores(keys: int, differ: int, seed: int) -> tuple[dict[str, bytes], dict[str, bytes],
                                                            set[str]]:
    rng = random.Random(seed)
    local = {f"user:{i:08d}": rng.randbytes(32) for i in range(keys)}
    remote = dict(local)
    picked = rng.sample(sorted(local), differ - differ // 4)
    changed, only_local = picked[: differ // 2], picked[differ // 2:]
    for key in changed:
        remote[key] = rng.randbytes(32)
    for key in only_local:
        del remote[key]
    only_remote = [f"new:{i:08d}" for i in range(differ // 4)]
    for key in only_remote:
        remote[key] = rng.randbytes(32)
    return local, remote, set(changed) | set(only_local) | set(only_remote)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--differ", type=int, default=100)
    parser.add_argument("--depth", type=int, default=None,
                        help="tree depth (default: depth_for_keys(keys), 20 for 1M keys)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    depth = args.depth if args.depth is not None else depth_for_keys(args.keys)

    local, remote, expected = make_stores(args.keys, args.differ, args.seed)
    print(f"stores: {len(local):,} and {len(remote):,} keys, differing in {len(expected)}; "
          f"depth {depth} ({1 << depth:,} leaves, {(1 << (depth + 1)) - 1:,} hashes)")

    start = time.perf_counter()
    mine = MerkleTree.build(local, depth)
    build_local = time.perf_counter() - start
    start = time.perf_counter()
    theirs = MerkleTree.build(remote, depth)
    build_remote = time.perf_counter() - start
    print(f"build: {build_local:.2f} s and {build_remote:.2f} s "
          f"({build_local / len(local) * 1e6:.2f} us/key)")

    start = time.perf_counter()
    result = mine.diff(theirs)
    diff_time = time.perf_counter() - start
    if result.keys != expected:
        print("ERROR: diff does not match the expected keys", file=sys.stderr)
        return 1
    print(f"diff: {diff_time * 1e3:.2f} ms; found {len(result.keys)} keys "
          f"({len(result.changed)} changed, {len(result.only_local)} only local, "
          f"{len(result.only_remote)} only remote), exact")
    print(f"hashes compared: {result.hashes_compared:,} of {result.node_count:,} "
          f"= {result.touched_fraction:.4%} of the tree")
    print(f"leaves differing: {result.leaves_differing}; bucket entries compared: "
          f"{result.entries_compared:,} ({result.entries_compared / len(local):.4%} of keys)")
    key_bytes = sum(len(key.encode()) + HASH_SIZE for key, _ in mine.items()) / len(mine)
    wire = result.hashes_compared * HASH_SIZE + result.entries_compared * key_bytes
    print(f"level-by-level sync would send about {wire / 1024:.0f} KiB in {depth + 1} "
          f"round trips (a full digest list: {len(local) * key_bytes / 2**20:.0f} MiB)")

    sample = random.Random(args.seed + 1).sample(sorted(local), 10_000)
    start = time.perf_counter()
    for key in sample:
        mine.update(key, b"x" * 32)
    update_time = time.perf_counter() - start
    print(f"incremental update: {update_time / len(sample) * 1e6:.1f} us per key")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MiB (both stores and both trees)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
