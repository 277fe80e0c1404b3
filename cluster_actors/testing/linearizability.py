"""Linearizability checking of recorded client histories (Wing & Gong, Lowe, Porcupine).

A history is a list of :class:`Operation`: who called what, when it was called,
when it returned and what it returned. A :class:`Model` describes the sequential
object the history claims to implement. :func:`check_operations` decides whether
some total order of the operations, consistent with real time (an operation that
returned before another was called comes first), is a legal sequential run of the
model.

The search (see ``REFERENCE.md``): the history is split by key, since
linearizability is compositional; each part's call and return events are sorted
by time (calls first on ties) into a linked list; a depth-first search linearizes
one pending call at a time, backtracking when a return is reached before its
call has been linearized, and caches every (set of linearized operations, model
state) pair it has seen so that no configuration is explored twice.

An operation whose outcome is unknown (the client timed out or crashed) has
``output=UNKNOWN`` and, if it never returned, ``return_time=None``: it returns
at the end of the history, so it may take effect at any point after its call or,
equivalently, never be observed; the model accepts any output for it.

Ready-made models: :class:`RegisterModel` (the Jepsen etcd register) and
:class:`KVModel` (a many-key store, partitioned by key). :func:`parse_jepsen_log`
reads Jepsen etcd logs.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = [
    "UNKNOWN",
    "CheckResult",
    "KVModel",
    "Model",
    "Operation",
    "RegisterModel",
    "Verdict",
    "check_operations",
    "parse_jepsen_log",
]

S = TypeVar("S")


class _Unknown(enum.Enum):
    UNKNOWN = "unknown"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown.UNKNOWN
"""Output of an operation whose result was never seen: every model accepts it."""


@dataclass(frozen=True)
class Operation:
    """One client operation of a history.

    ``call_time`` and ``return_time`` are comparable numbers on one clock (wall
    seconds, ticks, line numbers...). ``return_time=None`` means the operation
    never returned: it is treated as returning after every other event.
    ``output=UNKNOWN`` means its result is unknown: the model accepts any output,
    and its effect, if it has one, is still applied.
    """

    client_id: Hashable
    input: Any
    call_time: float
    return_time: float | None = None
    output: Any = UNKNOWN

    def __post_init__(self) -> None:
        if self.return_time is not None and self.return_time < self.call_time:
            raise ValueError(
                f"operation {self.input!r} of client {self.client_id!r} returns "
                f"at {self.return_time} before its call at {self.call_time}")

    @property
    def outcome_unknown(self) -> bool:
        """True when the operation may or may not have taken effect."""
        return self.output is UNKNOWN


class Verdict(enum.Enum):
    """Outcome of a check."""

    LINEARIZABLE = "ok"
    NOT_LINEARIZABLE = "illegal"
    UNKNOWN = "unknown"  # the deadline passed before the search finished


class Model(Generic[S]):
    """A sequential specification. Subclass and override ``init`` and ``step``.

    ``step(state, input, output)`` returns ``(ok, new_state)``: whether the
    object in ``state`` may answer ``input`` with ``output``, and the state
    after it. It must not mutate ``state``, and it must accept
    ``output is UNKNOWN`` (returning the state the operation would leave).

    ``partition_key(input)`` names the independent part of the object an
    operation touches (a key); operations on different parts are checked
    separately. ``state_key(state)`` must be hashable and equal for
    interchangeable states: the search caches on it.
    """

    def init(self) -> S:
        raise NotImplementedError

    def step(self, state: S, input: Any, output: Any) -> tuple[bool, S]:
        raise NotImplementedError

    def partition_key(self, input: Any) -> Hashable:
        """The part of the object ``input`` touches; one part by default."""
        return None

    def partition(self, operations: Sequence[Operation]) -> list[list[Operation]]:
        """Split a history into independently checkable histories, by ``partition_key``."""
        groups: dict[Hashable, list[Operation]] = {}
        for op in operations:
            groups.setdefault(self.partition_key(op.input), []).append(op)
        return list(groups.values())

    def state_key(self, state: S) -> Hashable:
        """A hashable stand-in for ``state`` (the state itself by default)."""
        return state

    def describe_operation(self, input: Any, output: Any) -> str:
        return f"{input!r} -> {output!r}"

    def describe_state(self, state: S) -> str:
        return repr(state)


def _freeze(value: Any) -> Hashable:
    """A hashable equivalent of a JSON-like value (lists, dicts and sets included)."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return frozenset((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, (set, frozenset)):
        return frozenset(_freeze(v) for v in value)
    return value


def _describe(input: Any, output: Any) -> str:
    name, *args = input
    shown = "?" if output is UNKNOWN else repr(output)
    return f"{name}({', '.join(map(repr, args))}) -> {shown}"


class RegisterModel(Model[Any]):
    """One register, the Jepsen etcd model. The state is the value; ``None`` is empty.

    ====================  ==========================================
    input                 output
    ====================  ==========================================
    ``("read",)``         the value read, ``None`` if empty
    ``("write", v)``      ignored (``None`` by convention)
    ``("cas", a, b)``     ``True`` if the value was ``a`` and is now
                          ``b``, ``False`` if the value was not ``a``
    ====================  ==========================================
    """

    def init(self) -> Any:
        return None

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        op = input[0]
        if op == "read":
            return (output is UNKNOWN or output == state), state
        if op == "write":
            return True, input[1]
        if op == "cas":
            swapped = state == input[1]
            ok = output is UNKNOWN or output == swapped
            return ok, (input[2] if swapped else state)
        raise ValueError(f"register operation must be read, write or cas, got {input!r}")

    def describe_operation(self, input: Any, output: Any) -> str:
        return _describe(input, output)


class KVModel(Model[frozenset]):
    """A key-value store checked key by key. Absent keys read as ``None``.

    ==============================  =================================================
    input                           output
    ==============================  =================================================
    ``("put", key, value)``         ignored (``None`` by convention)
    ``("get", key)``                the value, ``None`` if the key is absent
    ``("cas", key, old, new)``      ``True`` if the value was ``old`` (``None``: the
                                    key was absent) and is now ``new``, else ``False``
    ``("delete", key)``             ``None`` (no information) or a bool: whether the
                                    key existed
    ==============================  =================================================

    Any operation may have output ``UNKNOWN`` (timed out, client crashed).
    Values are compared with ``==`` after turning lists, dicts and sets into
    tuples and frozensets; putting ``None`` is the same as deleting. The state
    is a frozenset of ``(key, value)`` pairs.
    """

    def init(self) -> frozenset:
        return frozenset()

    def partition_key(self, input: Any) -> Hashable:
        return input[1]

    def step(self, state: frozenset, input: Any, output: Any) -> tuple[bool, frozenset]:
        op, key = input[0], input[1]
        current = next((v for k, v in state if k == key), None)
        if op == "get":
            return (output is UNKNOWN or _freeze(output) == current), state
        if op == "put":
            return True, self._set(state, key, _freeze(input[2]))
        if op == "delete":
            ok = output is UNKNOWN or output is None or output == (current is not None)
            return ok, self._set(state, key, None)
        if op == "cas":
            swapped = current == _freeze(input[2])
            ok = output is UNKNOWN or output == swapped
            return ok, (self._set(state, key, _freeze(input[3])) if swapped else state)
        raise ValueError(f"kv operation must be put, get, cas or delete, got {input!r}")

    @staticmethod
    def _set(state: frozenset, key: Hashable, value: Hashable) -> frozenset:
        rest = frozenset(kv for kv in state if kv[0] != key)
        return rest if value is None else rest | {(key, value)}

    def describe_operation(self, input: Any, output: Any) -> str:
        return _describe(input, output)

    def describe_state(self, state: frozenset) -> str:
        return repr(dict(state))


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check_operations` found.

    For ``NOT_LINEARIZABLE`` (and ``UNKNOWN``, as far as the search got) the
    fields describe the failing partition at the deepest point of the search:
    ``linearized`` is the longest linearizable prefix found, in linearization
    order, ``state`` the model state after it, ``pending`` the operations called
    but not yet linearized up to the first return still ahead, and ``blocked``
    the operation owning that return: none of ``pending`` could be linearized
    next in a way that let ``blocked`` take effect before it returned.
    ``pending`` is the smallest failing window to show in a report. ``steps``
    counts the distinct (linearized set, model state) configurations explored.
    """

    verdict: Verdict
    partitions: int = 0
    steps: int = 0
    partition_key: Hashable = None
    linearized: tuple[Operation, ...] = ()
    state: Any = None
    pending: tuple[Operation, ...] = ()
    blocked: Operation | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.LINEARIZABLE

    def explain(self, model: Model | None = None) -> str:
        """A human-readable account of the verdict (uses ``model``'s describe helpers)."""
        model = model if model is not None else Model()

        def show(op: Operation) -> str:
            ret = "never" if op.return_time is None else op.return_time
            return (f"  client {op.client_id}: {model.describe_operation(op.input, op.output)}"
                    f"  [called {op.call_time}, returned {ret}]")

        if self.ok:
            return f"linearizable ({self.partitions} partitions, {self.steps} search steps)"
        head = ("NOT linearizable" if self.verdict is Verdict.NOT_LINEARIZABLE
                else "undecided: the deadline passed")
        lines = [f"{head} in partition {self.partition_key!r} after {self.steps} search steps",
                 f"longest linearizable prefix ({len(self.linearized)} operations):",
                 *map(show, self.linearized),
                 f"state after it: {model.describe_state(self.state)}"]
        if self.blocked is not None:
            lines += ["pending operations (no order of them completes the history):",
                      *map(show, self.pending),
                      "the first to return, which could not be linearized in time:",
                      show(self.blocked)]
        return "\n".join(lines)


_POLL_EVERY = 256  # search steps between two deadline checks


def check_operations(model: Model, operations: Sequence[Operation],
                     timeout: float | None = None, *,
                     deadline_check: Callable[[], bool] | None = None) -> CheckResult:
    """Decide whether ``operations`` is a linearizable history of ``model``.

    The search stops with ``Verdict.UNKNOWN`` once ``timeout`` seconds
    (``time.monotonic``) have passed, or once ``deadline_check()`` returns
    True; both are polled every few hundred search steps, first at step 0.
    Partitions are checked in order and the first illegal one is reported.
    """
    checks: list[Callable[[], bool]] = []
    if deadline_check is not None:
        checks.append(deadline_check)
    if timeout is not None:
        deadline = time.monotonic() + timeout
        checks.append(lambda: time.monotonic() >= deadline)

    def expired() -> bool:
        return any(check() for check in checks)

    parts = [p for p in model.partition(list(operations)) if p]
    total_steps = 0
    for part in parts:
        result = _check_partition(model, part, expired if checks else None)
        total_steps += result.steps
        if result.verdict is not Verdict.LINEARIZABLE:
            return CheckResult(
                result.verdict, len(parts), total_steps, model.partition_key(part[0].input),
                result.linearized, result.state, result.pending, result.blocked)
    return CheckResult(Verdict.LINEARIZABLE, len(parts), total_steps)


def _check_partition(model: Model, ops: list[Operation],
                     expired: Callable[[], bool] | None) -> CheckResult:
    """The DFS over one partition. Entries 1..2n of a doubly linked list (0 is the head)."""
    n = len(ops)
    events = sorted(
        [(op.call_time, 0, i) for i, op in enumerate(ops)]
        + [(op.return_time, 1, i) for i, op in enumerate(ops) if op.return_time is not None],
        key=lambda e: (e[0], e[1]))
    order = [(kind, i) for _, kind, i in events]
    order += [(1, i) for i, op in enumerate(ops) if op.return_time is None]
    size = 2 * n + 1
    nxt, prv = [-1] * size, [-1] * size
    is_call, op_of, match = [False] * size, [0] * size, [0] * size
    call_node = [0] * n
    for node, (kind, i) in enumerate(order, start=1):
        prv[node], nxt[node - 1] = node - 1, node
        op_of[node] = i
        if kind == 0:
            is_call[node] = True
            call_node[i] = node
        else:
            match[call_node[i]] = node

    inputs = [op.input for op in ops]
    outputs = [op.output for op in ops]
    bits = [1 << i for i in range(n)]
    step = model.step
    state_key = None if type(model).state_key is Model.state_key else model.state_key
    cache: set[tuple[int, Hashable]] = set()  # (linearized bitset, state key) seen
    stack: list[tuple[int, Any, int]] = []  # (call node, state before it, bitset before it)
    state = model.init()
    linearized = 0
    best = _snapshot(stack, state, nxt, is_call, op_of)
    verdict = Verdict.NOT_LINEARIZABLE
    node = nxt[0]
    while True:
        if is_call[node]:
            i = op_of[node]
            ok, new_state = step(state, inputs[i], outputs[i])
            if ok:
                new_linearized = linearized | bits[i]
                key = (new_linearized, new_state if state_key is None else state_key(new_state))
                if key not in cache:
                    if expired is not None and len(cache) % _POLL_EVERY == 0 and expired():
                        verdict = Verdict.UNKNOWN
                        break
                    cache.add(key)
                    stack.append((node, state, linearized))
                    state, linearized = new_state, new_linearized
                    ret = match[node]  # lift the call, then its return
                    before, after = prv[node], nxt[node]
                    nxt[before] = after
                    prv[after] = before  # a call is never last
                    before, after = prv[ret], nxt[ret]
                    nxt[before] = after
                    if after != -1:
                        prv[after] = before
                    node = nxt[0]
                    if node == -1:
                        return CheckResult(Verdict.LINEARIZABLE, 1, len(cache))
                    if len(stack) > len(best[0]):
                        best = _snapshot(stack, state, nxt, is_call, op_of)
                    continue
            node = nxt[node]
        else:
            if not stack:
                break
            node, state, linearized = stack.pop()
            ret = match[node]  # unlift the return, then the call
            nxt[prv[ret]] = ret
            if nxt[ret] != -1:
                prv[nxt[ret]] = ret
            nxt[prv[node]] = node
            prv[nxt[node]] = node
            node = nxt[node]

    prefix, best_state, window, blocked = best
    return CheckResult(verdict, 1, len(cache), None, tuple(ops[i] for i in prefix), best_state,
                       tuple(ops[i] for i in window), ops[blocked])


def _snapshot(stack: list[tuple[int, Any, int]], state: Any, nxt: list[int], is_call: list[bool],
              op_of: list[int]) -> tuple[list[int], Any, list[int], int]:
    """(linearized op indices, state, pending window, blocked op) at the current search point."""
    window, node = [], nxt[0]
    while node != -1 and is_call[node]:
        window.append(op_of[node])
        node = nxt[node]
    return [op_of[entry[0]] for entry in stack], state, window, op_of[node]


_JEPSEN_LINE = re.compile(r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(\w+)\s+:(\w+)\s*(.*?)\s*$")


def _jepsen_value(text: str) -> Any:
    if text == "nil":
        return None
    if text.startswith("[") and text.endswith("]"):
        return tuple(_jepsen_value(t) for t in text[1:-1].split())
    if text.startswith(":"):
        return text  # a keyword such as :timed-out
    return int(text)


def parse_jepsen_log(path: str | Path) -> list[Operation]:
    """Read a Jepsen etcd register log into operations for :class:`RegisterModel`.

    Times are line numbers. ``:ok`` completes an operation; ``:fail :cas`` is a
    cas that did not swap (output ``False``); ``:fail :read :timed-out`` is a
    read with ``UNKNOWN`` output returning at that line; any other ``:fail``
    did not happen and is dropped; ``:info`` leaves the operation pending, and
    every call still pending at the end gets ``return_time=None`` and
    ``UNKNOWN`` output. Lines not from ``jepsen.util`` are ignored; a malformed
    one raises ``ValueError`` naming the file and line.
    """
    path = Path(path)
    pending: dict[int, tuple[int, tuple]] = {}
    operations: list[tuple[int, Operation]] = []  # (call line, op), sorted at the end
    with path.open() as lines:
        for line_no, line in enumerate(lines):
            if "jepsen.util" not in line:
                continue
            where = f"{path}:{line_no + 1}"
            m = _JEPSEN_LINE.match(line)
            if m is None:
                raise ValueError(f"{where}: unrecognised jepsen line {line.strip()!r}")
            process, kind, f, raw = int(m[1]), m[2], m[3], m[4]
            value = _jepsen_value(raw) if raw else None
            if kind == "invoke":
                if process in pending:
                    raise ValueError(f"{where}: process {process} has a call outstanding")
                if f == "read":
                    pending[process] = (line_no, ("read",))
                elif f == "write":
                    pending[process] = (line_no, ("write", value))
                elif f == "cas" and isinstance(value, tuple) and len(value) == 2:
                    pending[process] = (line_no, ("cas", *value))
                else:
                    raise ValueError(f"{where}: unknown operation {f} {raw}")
                continue
            if kind == "info":
                continue
            if process not in pending:
                raise ValueError(f"{where}: {kind} of process {process} without a call")
            call_line, input = pending.pop(process)
            if kind == "ok":
                output = value if f == "read" else True if f == "cas" else None
            elif kind == "fail" and f == "cas":
                output = False
            elif kind == "fail" and value == ":timed-out":
                output = UNKNOWN
            elif kind == "fail":
                continue  # definitely did not happen
            else:
                raise ValueError(f"{where}: unknown completion {kind}")
            operations.append((call_line, Operation(process, input, call_line, line_no, output)))
    for process, (call_line, input) in pending.items():
        operations.append((call_line, Operation(process, input, call_line)))
    operations.sort(key=lambda pair: pair[0])
    return [op for _, op in operations]
