"""Workloads for chaos runs: concurrent clients doing register operations
through the cluster's linearizable key-value client, recorded as a history
the checker can judge, and a sampler of every node's Raft status.

A history holds every operation with its call and return times (seconds on
the run's clock). Outcomes follow Jepsen:

* ``ok`` -- it completed and its output is known (a ``cas`` that did not
  swap is ``ok`` with output False);
* ``fail`` -- it certainly had no effect;
* ``info`` -- indeterminate: the client timed out or lost its path to the
  cluster, so the operation may have taken effect, at any time after its
  call, or never. It is kept, never dropped; a client whose operation is
  indeterminate continues as a new process id (as Jepsen's do).

Written values are unique integers, so a read names the write it saw. Keys
rotate every ``key_lifetime`` seconds (``reg3.0``, ``reg3.1``, ...), which
keeps each key's history small for the linearizability search.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from typing import Any

from ..core.kv import KVResult
from ..errors import SyncFailed
from ..testing.linearizability import UNKNOWN, Operation
from .probe import ClusterProbe

OUTCOMES = ("ok", "fail", "info")


@dataclass(frozen=True, slots=True)
class HistoryOp:
    """One operation of a history.

    ``f`` is ``read``, ``write`` or ``cas`` (registers) or ``add`` (the
    CRDT set); ``value`` the value written (write), ``(expected, new)``
    (cas), the element (add) or None (read); ``output`` the value read or
    whether a cas swapped; ``ret`` None if it never returned; ``revision``
    the store's revision after a write that took effect; ``node`` the node
    that served an add.
    """

    process: int | str
    f: str
    key: str
    value: Any
    call: float
    ret: float | None
    outcome: str
    output: Any = None
    error: str | None = None
    revision: int | None = None
    node: str | None = None

    @property
    def acknowledged_write(self) -> bool:
        """A write the cluster said it applied (a write, or a cas that swapped)."""
        return self.outcome == "ok" and (self.f == "write" or (self.f == "cas" and self.output))

    @property
    def written(self) -> Any:
        """The value this operation writes if it takes effect (None for reads)."""
        return self.value if self.f == "write" else self.value[1] if self.f == "cas" else None

    def to_operation(self) -> Operation | None:
        """This operation for :class:`~cluster_actors.testing.linearizability.KVModel`;
        None for a read without output (it constrains nothing) or a failure."""
        if self.outcome == "fail" or self.f == "add" or (
                self.f == "read" and self.outcome != "ok"):
            return None
        known = self.outcome == "ok"
        ret = self.ret if known else None
        if self.f == "read":
            return Operation(self.process, ("get", self.key), self.call, ret, self.output)
        if self.f == "write":
            return Operation(self.process, ("put", self.key, self.value), self.call, ret,
                             None if known else UNKNOWN)
        return Operation(self.process, ("cas", self.key, *self.value), self.call, ret,
                         bool(self.output) if known else UNKNOWN)

    def describe(self) -> str:
        if self.f == "cas":
            shown = f"cas {self.value[0]!r}->{self.value[1]!r}"
        elif self.f == "add":
            shown = f"add {self.value!r} on {self.node}"
        else:
            shown = f"write {self.value!r}" if self.f == "write" else "read"
        ret = "never" if self.ret is None else f"{self.ret:.3f}"
        out = "" if self.f in ("write", "add") else f" = {self.output!r}"
        err = f" ({self.error})" if self.error else ""
        return (f"p{self.process} {shown} {self.key}{out} [{self.outcome}] "
                f"call {self.call:.3f} ret {ret}{err}")


class History:
    """A thread-safe, append-only list of :class:`HistoryOp`."""

    def __init__(self) -> None:
        self._ops: list[HistoryOp] = []
        self._lock = threading.Lock()

    def append(self, op: HistoryOp) -> None:
        with self._lock:
            self._ops.append(op)

    @property
    def ops(self) -> list[HistoryOp]:
        with self._lock:
            return list(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def by_outcome(self) -> dict[str, int]:
        counts = Counter(op.outcome for op in self.ops)
        return {o: counts.get(o, 0) for o in OUTCOMES}

    def by_function(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {}
        for op in self.ops:
            out.setdefault(op.f, Counter())[op.outcome] += 1
        return {f: dict(c) for f, c in sorted(out.items())}

    def touched_keys(self) -> list[str]:
        return sorted({op.key for op in self.ops})

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(op) for op in self.ops]


class RegisterWorkload:
    """``clients`` threads doing read / write / cas on ``keys`` registers
    through ``kv`` (a :class:`~cluster_actors.client.KVClient`) until
    stopped; see the module doc. ``mix`` is the (read, write, cas) share.
    ``clock`` returns the run's time in seconds (the chaos timeline's).
    """

    def __init__(self, kv: Any, *, clients: int = 8, keys: int = 8,
                 key_lifetime: float = 10.0, mix: tuple[float, float, float] = (0.5, 0.3, 0.2),
                 op_timeout: float = 3.0, seed: int = 0, prefix: str = "reg",
                 clock: Callable[[], float] | None = None) -> None:
        if clients < 1 or keys < 1 or key_lifetime <= 0 or op_timeout <= 0:
            raise ValueError("clients, keys, key_lifetime and op_timeout must be positive")
        self.kv = kv
        self.clients = clients
        self.keys = keys
        self.key_lifetime = key_lifetime
        self.mix = mix
        self.op_timeout = op_timeout
        self.seed = seed
        self.prefix = prefix
        epoch = time.monotonic()
        self.clock = clock or (lambda: time.monotonic() - epoch)
        self.history = History()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_value: dict[str, Any] = {}
        self._started_at = 0.0

    def key(self, slot: int, now: float) -> str:
        generation = int((now - self._started_at) // self.key_lifetime)
        return f"{self.prefix}{slot}.{generation}"

    def start(self) -> RegisterWorkload:
        self._started_at = self.clock()
        for client in range(self.clients):
            thread = threading.Thread(target=self._client, args=(client,), daemon=True,
                                      name=f"workload-{client}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop issuing operations and wait for the ones in flight."""
        self._stop.set()
        wait = timeout if timeout is not None else self.op_timeout + 5.0
        for thread in self._threads:
            thread.join(wait)

    def run(self, duration: float) -> History:
        self.start()
        self._stop.wait(duration)
        self.stop()
        return self.history

    def _client(self, client: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + client)
        process, serial = client, 0
        read_share, write_share, _ = self.mix
        while not self._stop.is_set():
            key = self.key(rng.randrange(self.keys), self.clock())
            serial += 1
            value = (client + 1) * 10_000_000 + serial  # unique across the run
            draw = rng.random()
            if draw < read_share:
                op = self.read(process, key)
            elif draw < read_share + write_share:
                op = self.write(process, key, value)
            else:
                op = self.cas(process, key, self._last_value.get(key), value)
            if op.outcome == "info":
                process += self.clients  # this process may still have an op in flight

    # --------------------------------------------------------------- operations
    def read(self, process: int | str, key: str) -> HistoryOp:
        call = self.clock()
        try:
            value = self.kv.get(key, timeout=self.op_timeout)
        except Exception as error:
            op = HistoryOp(process, "read", key, None, call, self.clock(), "info",
                           error=_name(error))
        else:
            op = HistoryOp(process, "read", key, None, call, self.clock(), "ok", value)
            if value is not None:
                self._last_value[key] = value
        self.history.append(op)
        return op

    def write(self, process: int | str, key: str, value: Any) -> HistoryOp:
        return self._submit(process, "write", key, value, ("put", key, value))

    def cas(self, process: int | str, key: str, expected: Any, new: Any) -> HistoryOp:
        return self._submit(process, "cas", key, (expected, new), ("cas", key, expected, new))

    def _submit(self, process: int | str, f: str, key: str, value: Any,
                command: tuple[Any, ...]) -> HistoryOp:
        call = self.clock()
        try:
            result = self.kv.submit(command).result(self.op_timeout)
        except FutureTimeout:
            result = TimeoutError(f"no answer within {self.op_timeout} s")
        except Exception as error:  # the client path itself broke
            result = error
        if isinstance(result, KVResult):
            swapped = result.ok if f == "cas" else None
            op = HistoryOp(process, f, key, value, call, self.clock(), "ok", swapped,
                           revision=result.revision if f == "write" or swapped else None)
            if f == "write" or swapped:
                self._last_value[key] = value[1] if f == "cas" else value
        else:
            op = HistoryOp(process, f, key, value, call, None, "info",
                           error=_name(result))
        self.history.append(op)
        return op

    def final_reads(self, attempts: int = 20) -> list[HistoryOp]:
        """After the faults are healed: read every key the run touched (as
        process ``"final"``), retrying reads that fail; returns the reads."""
        reads = []
        for key in self.history.touched_keys():
            for _ in range(attempts):
                op = self.read("final", key)
                if op.outcome == "ok":
                    reads.append(op)
                    break
        return reads


class SetWorkload:
    """``clients`` threads adding unique elements to one OR-set ``key`` of
    the eventually consistent CRDT store, each add through a random node's
    replica (``cluster.data(node)``). An add that times out or loses its
    node is indeterminate. After heal, :meth:`final_reads` syncs the
    replicas and reads the set on every node."""

    def __init__(self, cluster: Any, *, clients: int = 2, key: str = "chaos-set",
                 op_timeout: float = 3.0, seed: int = 0,
                 clock: Callable[[], float] | None = None) -> None:
        from ..client.data import DataStore

        self.node_ids = list(cluster.node_ids)
        self.stores = {n: DataStore(cluster.name, n, op_timeout) for n in self.node_ids}
        self.clients = clients
        self.key = key
        self.seed = seed
        epoch = time.monotonic()
        self.clock = clock or (lambda: time.monotonic() - epoch)
        self.history = History()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SetWorkload:
        for client in range(self.clients):
            thread = threading.Thread(target=self._client, args=(client,), daemon=True,
                                      name=f"set-workload-{client}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _client(self, client: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + 7919 + client)
        serial = 0
        while not self._stop.is_set():
            serial += 1
            node = rng.choice(self.node_ids)
            element = (client + 1) * 10_000_000 + serial
            call = self.clock()
            try:
                self.stores[node].add(self.key, element)
            except Exception as error:
                self.history.append(HistoryOp(client, "add", self.key, element, call, None,
                                              "info", error=_name(error), node=node))
            else:
                self.history.append(HistoryOp(client, "add", self.key, element, call,
                                              self.clock(), "ok", node=node))
            self._stop.wait(0.01)

    def final_reads(self, nodes: list[str] | None = None, timeout: float = 60.0
                    ) -> dict[str, frozenset[Any] | None]:
        """Sync every replica until their state hashes agree (or ``timeout``),
        then the set as each node holds it (None where it did not answer)."""
        nodes = nodes or self.node_ids
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hashes = set()
            for node in nodes:
                try:
                    with contextlib.suppress(SyncFailed):  # a peer did not answer in time
                        self.stores[node].sync_now(wait=True, timeout=5.0)
                    hashes.add(self.stores[node].state_hash())
                except Exception:
                    hashes.add(None)
            if len(hashes) == 1 and None not in hashes:
                break
        out: dict[str, frozenset[Any] | None] = {}
        for node in nodes:
            try:
                out[node] = frozenset(self.stores[node].get(self.key, frozenset()))
            except Exception:
                out[node] = None
        return out


def _name(error: BaseException | Any) -> str:
    text = str(error).split("\n", 1)[0][:120]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass(frozen=True, slots=True)
class StatusSample:
    """One node's Raft status at ``t`` (run clock); ``pid`` tells incarnations apart."""

    t: float
    node: str
    pid: int | None
    role: str
    term: int
    leader: str | None
    commit: int
    applied: int


class StatusSampler:
    """Polls every node's consensus status every ``period`` seconds in a
    background thread; the samples feed the Election Safety and commit
    monotonicity checks and the failover measurements."""

    def __init__(self, cluster: Any, period: float = 0.1,
                 clock: Callable[[], float] | None = None) -> None:
        self.probe = ClusterProbe(cluster)
        self.period = period
        epoch = time.monotonic()
        self.clock = clock or (lambda: time.monotonic() - epoch)
        self.samples: list[StatusSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> list[StatusSample]:
        now = self.clock()
        taken = [StatusSample(now, node, s.get("pid"), s["role"], s["term"], s["leader"],
                              s["commit"], s["applied"])
                 for node, s in self.probe.statuses(timeout=min(1.0, 5 * self.period)).items()
                 if s is not None and s.get("role") != "starting"]
        self.samples.extend(taken)
        return taken

    def start(self) -> StatusSampler:
        def loop() -> None:
            while not self._stop.wait(self.period):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True, name="status-sampler")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)


__all__ = ["OUTCOMES", "History", "HistoryOp", "RegisterWorkload", "SetWorkload",
           "StatusSample", "StatusSampler"]
