"""Write throughput and latency of the durable Raft storage (SQLite, WAL).

For each durability level it measures:

* batch throughput: Readies of ``--batch`` entries (each a KV ``put`` command)
  plus a hard state, in entries per second;
* single-entry latency: Readies of one entry plus a hard state, one commit
  each, as p50/p99 in milliseconds;
* load time of the resulting log (what a restarted node pays).

Run::

    python benchmarks/storage_write.py [--dir DIR] [--batch 500] [--batches 60] [--singles 3000]

The database goes to a temporary directory on the same file system as
``--dir`` (default: the system temporary directory); durability figures depend
on that file system's fsync.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cluster_actors.core.kv import Command
from cluster_actors.core.raft_types import Entry, HardState, Ready
from cluster_actors.runtime.storage import RaftStorage


def _entries(first: int, count: int) -> list[Entry]:
    return [Entry(i, 1, data=Command("client", i, ("put", f"key{i % 100}", i)))
            for i in range(first, first + count)]


def measure(directory: Path, synchronous: str, batch: int, batches: int,
            singles: int) -> dict[str, float]:
    path = directory / f"bench-{synchronous}.db"
    with RaftStorage(path, synchronous=synchronous) as storage:
        readies = [Ready(hard_state=HardState(1, "n1", (b + 1) * batch),
                         entries=_entries(b * batch + 1, batch)) for b in range(batches)]
        start = time.perf_counter()
        for ready in readies:
            storage.persist(ready)
        batch_seconds = time.perf_counter() - start
        first = batches * batch + 1
        latencies = []
        for i in range(first, first + singles):
            ready = Ready(hard_state=HardState(1, "n1", i), entries=_entries(i, 1))
            start = time.perf_counter()
            storage.persist(ready)
            latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        state = storage.load()
        load_seconds = time.perf_counter() - start
        size = storage.size_bytes()
    latencies.sort()
    return {
        "entries_per_s": batches * batch / batch_seconds,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "load_entries": len(state.entries),
        "load_ms": load_seconds * 1e3,
        "size_mb": size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--singles", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        print(f"| synchronous | {args.batch}-entry Readies | 1-entry persist p50 / p99 "
              f"| load() | file |")
        print("| --- | --- | --- | --- | --- |")
        for mode in ("FULL", "NORMAL"):
            r = measure(Path(directory), mode, args.batch, args.batches, args.singles)
            print(f"| {mode} | {r['entries_per_s']:,.0f} entries/s "
                  f"| {r['p50_ms']:.3f} / {r['p99_ms']:.3f} ms "
                  f"| {r['load_entries']:,} entries in {r['load_ms']:.0f} ms "
                  f"| {r['size_mb']:.1f} MB |")


if __name__ == "__main__":
    main()
