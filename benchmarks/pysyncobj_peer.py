"""Side-by-side peer figures: PySyncObj, 3 nodes on loopback, on this machine.

    python benchmarks/pysyncobj_peer.py [--kills 8] [--samples 200] [--writes 20000]
                                        [--tuned] [--json out.json]

Each node is a separate OS process running a ``SyncObj`` that replicates a
dict through one ``@replicated put(key, value)``; the nodes talk TCP on
127.0.0.1 with free ports and keep no journal (log and state in memory only).
The client runs in the parent process and sends requests to a node process as
JSON lines over its stdin/stdout pipes, which is the counterpart of our client
calling the leader actor:

* commit latency: one request per ``put``; the leader process calls
  ``put(sync=True)`` and answers when the entry is committed and applied on
  the leader; timed in the parent (so it includes one pipe round trip);
* throughput: one request asks the leader process to submit ``writes`` puts
  with callbacks (pipelined) and answers when every callback has fired; commits
  per second are ``writes`` divided by the parent-side round trip;
* failover: the leader process is killed with SIGKILL; both survivors then
  record (CLOCK_MONOTONIC, shared by all processes) when they first see a
  leader other than the dead one, and retry ``put(sync=True)`` until one is
  acknowledged. Figures are the earliest survivor, measured from the kill. The
  killed node is restarted on the same port, without journal, between trials.

Trials start only once every node is connected to both peers: PySyncObj
retries a lost connection every ``connectionRetryTime`` (5 s), and a kill
before the mesh is whole would measure that retry instead of the election.

``measure()`` uses the library's default ``SyncObjConf``; ``--tuned`` adds
latency and throughput (fewer latency samples) for each of ``TUNED_CONFS``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

NODES = 3
WAIT_S = 60.0  # generous bound for any single wait on the cluster
TUNED_CONFS: dict[str, dict[str, Any]] = {
    "appendEntriesPeriod=1ms": {"appendEntriesPeriod": 0.001},
    "appendEntriesUseBatch=False": {"appendEntriesUseBatch": False},
}
DIVERGENCE_MARK = "may have diverged"


# --------------------------------------------------------------------------- node side


def _node_main(self_addr: str, peers: list[str], conf_kwargs: dict[str, Any]) -> None:
    """Run one node until stdin closes; answer JSON-line requests on stdout."""
    from pysyncobj import SyncObj, SyncObjConf, SyncObjException, replicated

    class Store(SyncObj):
        def __init__(self) -> None:
            super().__init__(self_addr, peers, SyncObjConf(**conf_kwargs))
            self.data: dict[str, int] = {}

        @replicated
        def put(self, key: str, value: int) -> int:
            self.data[key] = value
            return value

    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything the library prints goes to the node's log, not the protocol
    out_lock = threading.Lock()
    store = Store()

    def leader_address() -> str | None:
        leader = store._getLeader()
        return None if leader is None else leader.address

    def status() -> dict[str, Any]:
        return {"leader": leader_address(), "is_leader": store._isLeader(),
                "ready": store.isReady(), "term": store.raftCurrentTerm,
                "commit": store.raftCommitIndex, "applied": store.raftLastApplied,
                "connected_peers": sum(store.isNodeConnected(n) for n in store.otherNodes)}

    def burst(count: int, timeout: float) -> dict[str, Any]:
        done = threading.Event()
        lock = threading.Lock()
        tally = {"ok": 0, "failed": 0}

        def on_result(_result: Any, error: int) -> None:
            with lock:
                tally["ok" if error == 0 else "failed"] += 1
                if tally["ok"] + tally["failed"] == count:
                    done.set()

        for seq in range(count):
            store.put(f"k{seq % 1000}", seq, callback=on_result)
        done.wait(timeout)
        return dict(tally)

    def failover(dead: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen: dict[str, Any] = {"first_commit_at": None, "attempts": 0}

        def probe() -> None:
            while time.monotonic() < deadline:
                seen["attempts"] += 1
                try:
                    store.put("failover", 1, sync=True, timeout=max(0.01, deadline - time.monotonic()))
                except SyncObjException:
                    time.sleep(0.001)
                    continue
                seen["first_commit_at"] = time.monotonic()
                return

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        new_leader_at, new_leader = None, None
        while new_leader_at is None and time.monotonic() < deadline:
            leader = leader_address()
            if leader is not None and leader != dead:
                new_leader_at, new_leader = time.monotonic(), leader
            else:
                time.sleep(0.0005)
        prober.join(max(0.0, deadline - time.monotonic()))
        return {"new_leader_at": new_leader_at, "new_leader": new_leader, **seen}

    def handle(request: dict[str, Any]) -> None:
        op, args = request["op"], request.get("args", {})
        try:
            if op == "status":
                result: Any = status()
            elif op == "put":
                result = store.put(args["key"], args["value"], sync=True, timeout=args["limit"])
            elif op == "burst":
                result = burst(args["count"], args["limit"])
            elif op == "failover":
                result = failover(args["dead"], args["limit"])
            else:
                raise ValueError(f"unknown op {op!r}")
            reply = {"id": request["id"], "ok": True, "result": result}
        except Exception as exc:
            reply = {"id": request["id"], "ok": False, "error": repr(exc)}
        with out_lock:
            out.write(json.dumps(reply) + "\n")
            out.flush()

    for line in sys.stdin:  # EOF: the parent is gone, so this node goes too
        threading.Thread(target=handle, args=(json.loads(line),), daemon=True).start()
    os._exit(0)


# --------------------------------------------------------------------------- parent side


class NodeProcess:
    """One node's OS process and its request pipe; every wait is bounded."""

    def __init__(self, address: str, peers: list[str], conf: dict[str, Any], log: Path) -> None:
        self.address = address
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--node", address,
             "--peers", ",".join(peers), "--conf", json.dumps(conf)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True, text=True)
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._read_replies, daemon=True).start()

    def _read_replies(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(json.loads(line))
        self._replies.put(None)

    def call(self, op: str, timeout: float = WAIT_S, **args: Any) -> Any:
        """Send one request and return its result; raise on error, death or timeout."""
        self.send(op, **args)
        return self.receive(timeout)

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self._next_id += 1
        self.proc.stdin.write(json.dumps({"id": self._next_id, "op": op, "args": args}) + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"node {self.address}: no reply in {timeout:.0f} s") from None
            if reply is None:
                raise RuntimeError(f"node {self.address} exited (code {self.proc.poll()})")
            if reply["id"] != self._next_id:
                continue  # a late answer to an abandoned request
            if not reply["ok"]:
                raise RuntimeError(f"node {self.address}: {reply['error']}")
            return reply["result"]

    def kill(self) -> None:
        """SIGKILL the node (idempotent) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]
        self._log.close()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Cluster:
    """Three PySyncObj node processes; a context manager that kills them all on exit."""

    def __init__(self, conf: dict[str, Any], log_dir: Path) -> None:
        self.conf = conf
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.addresses = [f"127.0.0.1:{port}" for port in _free_ports(NODES)]
        self.nodes: dict[str, NodeProcess] = {}

    def __enter__(self) -> Cluster:
        try:
            for address in self.addresses:
                self.start(address)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self, address: str) -> None:
        peers = [other for other in self.addresses if other != address]
        log = self.log_dir / f"node-{address.rsplit(':', 1)[1]}.log"
        self.nodes[address] = NodeProcess(address, peers, self.conf, log)

    def close(self) -> None:
        for node in self.nodes.values():
            node.kill()

    def wait_stable(self, timeout: float = WAIT_S) -> NodeProcess:
        """Wait until every node is ready, connected to all peers and names the same leader.

        Returns the leader after one committed put through it.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = {a: n.call("status", timeout=10) for a, n in self.nodes.items()}
            leaders = {s["leader"] for s in states.values()}
            settled = all(s["ready"] and s["connected_peers"] == NODES - 1 for s in states.values())
            if len(leaders) == 1 and None not in leaders and settled:
                leader = self.nodes[leaders.pop()]
                if states[leader.address]["is_leader"]:
                    leader.call("put", key="warmup", value=0, limit=10)
                    return leader
            time.sleep(0.05)
        raise TimeoutError(f"no stable leader within {timeout:.0f} s")

    def divergence_warnings(self) -> int:
        return sum(path.read_text(errors="replace").count(DIVERGENCE_MARK)
                   for path in self.log_dir.glob("node-*.log"))


def _summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p99": None, "min": None, "max": None, "n": 0}
    ordered = sorted(values)

    def nearest_rank(quantile: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(quantile * len(ordered)) - 1))]

    return {"p50": nearest_rank(0.50), "p99": nearest_rank(0.99), "min": ordered[0],
            "max": ordered[-1], "n": len(ordered)}


def _commit_latency(cluster: Cluster, samples: int) -> dict[str, Any]:
    leader = cluster.wait_stable()
    latencies = []
    for seq in range(samples):
        start = time.perf_counter()
        leader.call("put", key="latency", value=seq, limit=10)
        latencies.append((time.perf_counter() - start) * 1e3)
    return _summary(latencies)


def _throughput(cluster: Cluster, writes: int, repetitions: int = 3) -> dict[str, Any]:
    rates = []
    for _ in range(repetitions):
        leader = cluster.wait_stable()
        start = time.perf_counter()
        tally = leader.call("burst", timeout=WAIT_S * 2 + 10, count=writes, limit=WAIT_S * 2)
        elapsed = time.perf_counter() - start
        if tally["ok"] != writes:
            raise RuntimeError(f"burst of {writes}: {tally}")
        rates.append(writes / elapsed)
    rates.sort()
    return {"median": rates[len(rates) // 2], "min": rates[0], "max": rates[-1], "n": len(rates),
            "writes_per_run": writes}


def _failover(cluster: Cluster, kills: int) -> dict[str, Any]:
    """Kill the leader ``kills`` times; return the failover figures (ms) and failed trials."""
    new_leader_ms: list[float] = []
    first_commit_ms: list[float] = []
    rejoin_ms: list[float] = []
    failures = 0
    victim = cluster.wait_stable()
    for _ in range(kills):
        survivors = [node for node in cluster.nodes.values() if node is not victim]
        killed_at = time.monotonic()
        victim.proc.send_signal(signal.SIGKILL)
        for node in survivors:
            node.send("failover", dead=victim.address, limit=WAIT_S / 2)
        reports = [node.receive(timeout=WAIT_S) for node in survivors]
        victim.kill()
        leader_seen = [r["new_leader_at"] for r in reports if r["new_leader_at"] is not None]
        committed = [r["first_commit_at"] for r in reports if r["first_commit_at"] is not None]
        if leader_seen and committed:
            new_leader_ms.append((min(leader_seen) - killed_at) * 1e3)
            first_commit_ms.append((min(committed) - killed_at) * 1e3)
        else:
            failures += 1
        restarted_at = time.monotonic()
        cluster.start(victim.address)  # same port, empty log: it catches up from the leader
        victim = cluster.wait_stable()
        rejoin_ms.append((time.monotonic() - restarted_at) * 1e3)
    return {"failover_new_leader_ms": _summary(new_leader_ms),
            "failover_first_commit_ms": _summary(first_commit_ms),
            "restart_rejoin_ms": _summary(rejoin_ms), "failover_failures": failures}


def _require_pysyncobj() -> str:
    if importlib.util.find_spec("pysyncobj") is None:
        raise RuntimeError("PySyncObj is not installed; install the benchmark extra: "
                           "pip install -e '.[bench]'")
    return importlib.metadata.version("pysyncobj")


def _config(conf: dict[str, Any]) -> dict[str, Any]:
    from pysyncobj import SyncObjConf

    effective = SyncObjConf(**conf)
    return {
        "nodes": NODES, "transport": "TCP on 127.0.0.1", "journal": "none (in-memory log)",
        "conf_overrides": conf,
        **{name: getattr(effective, name) for name in (
            "appendEntriesPeriod", "appendEntriesUseBatch", "raftMinTimeout", "raftMaxTimeout",
            "autoTickPeriod", "logCompactionMinEntries")},
        "client": "parent process, JSON lines over pipes to the leader process",
        "restart": "killed node restarted on the same port with an empty log",
    }


def measure(kills: int = 8, latency_samples: int = 200, writes: int = 20000, *,
            tuned: bool = False) -> dict[str, Any]:
    """Measure PySyncObj (default config) on 3 local processes; return JSON-able figures.

    Keys: ``commit_latency_ms``, ``failover_new_leader_ms``,
    ``failover_first_commit_ms`` and ``restart_rejoin_ms`` (restart of the
    killed node until the cluster is settled again) as {p50, p99, min, max, n};
    ``throughput_per_s`` as {median, min, max, n}; ``failover_failures`` (trials
    without a new leader or commit); ``version``; ``config``. With ``tuned``,
    ``tuned`` lists latency and throughput for each of ``TUNED_CONFS``.
    Raises RuntimeError if PySyncObj is missing, TimeoutError if the cluster
    stops answering. All node processes are killed before this returns or raises.
    """
    version = _require_pysyncobj()
    result: dict[str, Any] = {"version": version, "config": _config({})}
    with tempfile.TemporaryDirectory(prefix="pysyncobj-peer-") as tmp:
        with Cluster({}, Path(tmp) / "default") as cluster:
            result["commit_latency_ms"] = _commit_latency(cluster, latency_samples)
            result["throughput_per_s"] = _throughput(cluster, writes)
            result.update(_failover(cluster, kills))
            result["config"].update(kills=kills, latency_samples=latency_samples,
                                    writes=writes,
                                    divergence_warnings=cluster.divergence_warnings())
        if tuned:
            result["tuned"] = []
            for label, conf in TUNED_CONFS.items():
                with Cluster(conf, Path(tmp) / label) as cluster:
                    result["tuned"].append({
                        "label": label, "config": _config(conf),
                        "commit_latency_ms": _commit_latency(cluster, max(20, latency_samples // 4)),
                        "throughput_per_s": _throughput(cluster, writes),
                        "divergence_warnings": cluster.divergence_warnings(),
                    })
    return result


def _print_table(result: dict[str, Any]) -> None:
    def row(name: str, stats: dict[str, Any], unit: str) -> None:
        mid = stats.get("p50", stats.get("median"))
        if mid is None:
            print(f"| {name} | no sample | | | | 0 |")
            return
        p99 = f"{stats['p99']:,.1f}" if "p99" in stats else "-"
        print(f"| {name} | {mid:,.1f} {unit} | {p99} | {stats['min']:,.1f} | "
              f"{stats['max']:,.1f} | {stats['n']} |")

    print(f"PySyncObj {result['version']}, {NODES} processes on loopback, default SyncObjConf")
    print("| figure | p50 / median | p99 | min | max | n |")
    print("| --- | --- | --- | --- | --- | --- |")
    row("commit latency, one client waiting", result["commit_latency_ms"], "ms")
    row("pipelined throughput", result["throughput_per_s"], "commits/s")
    row("leader SIGKILL -> new leader seen", result["failover_new_leader_ms"], "ms")
    row("leader SIGKILL -> first commit acked", result["failover_first_commit_ms"], "ms")
    row("killed node restarted -> cluster settled", result["restart_rejoin_ms"], "ms")
    warnings = [f"default {result['config']['divergence_warnings']}"]
    for variant in result.get("tuned", []):
        row(f"{variant['label']}: commit latency", variant["commit_latency_ms"], "ms")
        row(f"{variant['label']}: throughput", variant["throughput_per_s"], "commits/s")
        warnings.append(f"{variant['label']} {variant['divergence_warnings']}")
    print(f"failover trials without a new leader or commit: {result['failover_failures']}; "
          f"'{DIVERGENCE_MARK}' log lines: {', '.join(warnings)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--writes", type=int, default=20000)
    parser.add_argument("--tuned", action="store_true", help="also measure the TUNED_CONFS variants")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--node", help=argparse.SUPPRESS)
    parser.add_argument("--peers", help=argparse.SUPPRESS)
    parser.add_argument("--conf", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.node:
        _node_main(args.node, args.peers.split(","), json.loads(args.conf))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up on SIGTERM too
    try:
        result = measure(args.kills, args.samples, args.writes, tuned=args.tuned)
    except KeyboardInterrupt:  # the node processes are already gone
        sys.exit(130)
    _print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
