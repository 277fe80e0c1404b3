"""Bounds on what a caller may propose, checked before anything enters the log.

The state machine (:mod:`.kv`, :mod:`.leases`) checks the shape of every op
and its constant bounds (key length, txn size, lease TTL at most a day) when
it applies an entry, identically on every replica. What depends on this
node's options, or costs a pickle, is checked here instead, once, before a
command is proposed: by the client (locally, before sending) and by the
leader (in ``submit``/``propose``, whoever calls them):

* the values of a command must survive the plain pickle the log storage uses
  (:data:`PICKLE_PROTOCOL`, as ``runtime/storage.py``), dumped and loaded
  back, and take at most ``max_value_bytes`` together (etcd's request limit,
  1.5 MiB by default);
* a lease's TTL is at least the cluster's election timeout (a shorter lease
  could expire during an ordinary leader change) and at most one day;
* a command's session fields are a bounded string and integers in range.

Every refusal is an :class:`~.kv.InvalidCommand`, a ``ValidationFailed``.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

from .kv import Command, InvalidCommand, check_key, shown, validate_op
from .leases import LEASE_OPS, MAX_ID, MAX_LEASE_TTL_MS, check_lease_op

#: what runtime/storage.py pickles log entries with
PICKLE_PROTOCOL = 5
#: etcd's default request limit: the values of one command, pickled
DEFAULT_MAX_VALUE_BYTES = 1_572_864
#: bounds of the ``max_value_bytes`` option
MIN_MAX_VALUE_BYTES = 1024
MAX_MAX_VALUE_BYTES = 64 << 20
#: a client id is a short string (the session key every replica keeps)
MAX_CLIENT_ID_CHARS = 256
#: a timeout a remote caller may ask for, in seconds
MAX_TIMEOUT_S = 3600.0
#: the most commands in one ``submit`` call
MAX_BATCH = 65_536
#: bounds of the failure detector's settings, shared by the cluster options
#: and the heartbeat component's ``configure`` (ms where a time)
MAX_PHI_THRESHOLD = 300.0  # phi is a log10 probability: 300 is already 1e-300
MAX_ACCEPTABLE_PAUSE_MS = 600_000
MAX_MIN_STD_DEVIATION_MS = 600_000
MAX_SAMPLE_SIZE = 100_000
#: the longest node id
MAX_NODE_ID_CHARS = 256
#: the kinds of a membership change (core/raft_types.py's ConfChangeType)
CONF_CHANGE_KINDS = ("add_voter", "add_learner", "remove")
#: the longest ``data_dir`` (Linux's PATH_MAX)
MAX_PATH_CHARS = 4096


def check_value(value: Any, max_bytes: int, what: str = "the value") -> int:
    """The size of ``value`` pickled as the log stores it; raises
    InvalidCommand unless it pickles, loads back, and fits in ``max_bytes``."""
    try:
        blob = pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception as error:
        raise InvalidCommand(
            f"{what} cannot be stored: the plain pickle of the log refuses it "
            f"({type(error).__name__}: {_first_line(error)}); store plain data (str, bytes, "
            "numbers, lists, dicts, instances of importable classes), not functions, "
            "locks, handles or classes defined in __main__") from None
    if len(blob) > max_bytes:
        raise InvalidCommand(_too_large(what, len(blob), max_bytes))
    _load_back(blob, what)
    return len(blob)


def _load_back(blob: bytes, what: str) -> None:
    try:
        pickle.loads(blob)
    except Exception as error:
        raise InvalidCommand(
            f"{what} pickles but does not load back ({type(error).__name__}: "
            f"{_first_line(error)}): a restarted node could not read it; store plain "
            "data") from None


def check_op(op: Any, *, extra_ops: Mapping[str, int], max_value_bytes: int,
             min_lease_ttl_ms: int = 1) -> None:
    """Raise InvalidCommand unless ``op`` is well formed (as the state machine
    checks it), its lease TTL lies in ``min_lease_ttl_ms``..one day, and its
    values pickle, load back and take at most ``max_value_bytes`` together."""
    validate_op(op, dict(extra_ops))
    if op[0] in LEASE_OPS:
        check_lease_op(op)
        if op[0] == "lease_grant" and op[2] < min_lease_ttl_ms:
            raise InvalidCommand(
                f"a lease TTL of {op[2]} ms is shorter than the election timeout "
                f"({min_lease_ttl_ms} ms): it could expire during an ordinary leader change; "
                f"use {min_lease_ttl_ms}..{MAX_LEASE_TTL_MS} ms")
    try:
        blob: bytes | None = pickle.dumps(op, protocol=PICKLE_PROTOCOL)
    except Exception:
        blob = None  # find the culprit below
    if blob is not None and len(blob) <= max_value_bytes:
        _load_back(blob, f"the {op[0]} command")
        return
    total = 0
    for what, value in _values(op):
        total += check_value(value, max_value_bytes, what)
    if total > max_value_bytes:
        raise InvalidCommand(_too_large(f"the values of the {op[0]} command together", total,
                                        max_value_bytes))
    if blob is None:  # every value pickles alone: the op as a whole does not
        check_value(op, 2 * max_value_bytes + (4 << 20), f"the {op[0]} command")
    else:
        _load_back(blob, f"the {op[0]} command")


def check_command(command: Any, *, extra_ops: Mapping[str, int], max_value_bytes: int,
                  min_lease_ttl_ms: int = 1) -> Command:
    """``command`` if it is a :class:`~.kv.Command` whose session fields are in
    range and whose op passes :func:`check_op`; else raises InvalidCommand."""
    if not isinstance(command, Command):
        raise InvalidCommand(f"expected a Command(client_id, seq, op, ack_below), got "
                             f"{type(command).__name__} {shown(command)}")
    client_id, seq, ack_below = command.client_id, command.seq, command.ack_below
    if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID_CHARS:
        raise InvalidCommand(f"a client id is a non-empty string of at most "
                             f"{MAX_CLIENT_ID_CHARS} characters, got {shown(client_id)}")
    if not _is_int(seq) or not 1 <= seq <= MAX_ID:
        raise InvalidCommand(f"a command's seq is an integer in 1..2**63-1, got {shown(seq)}")
    if not _is_int(ack_below) or not 0 <= ack_below <= MAX_ID:
        raise InvalidCommand(f"a command's ack_below is an integer in 0..2**63-1, got "
                             f"{shown(ack_below)}")
    check_op(command.op, extra_ops=extra_ops, max_value_bytes=max_value_bytes,
             min_lease_ttl_ms=min_lease_ttl_ms)
    return command


def check_keys(keys: Any) -> list[str]:
    """``keys`` as a list if it is a list or tuple of at most :data:`MAX_BATCH`
    valid keys (:func:`~.kv.check_key`); else raises InvalidCommand."""
    if not isinstance(keys, (list, tuple)) or len(keys) > MAX_BATCH:
        raise InvalidCommand(f"expected a list of at most {MAX_BATCH} keys, got "
                             f"{type(keys).__name__} {shown(keys)}")
    for key in keys:
        check_key(key)
    return list(keys)


def check_timeout(timeout: Any, what: str = "timeout") -> float:
    """``timeout`` as a float if it is a positive number of seconds (NaN is
    not), at most :data:`MAX_TIMEOUT_S` (a longer one, infinity included, is
    cut to that); else raises InvalidCommand."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not timeout > 0:
        raise InvalidCommand(f"{what} is a positive number of seconds, got {shown(timeout)}")
    return float(min(timeout, MAX_TIMEOUT_S))


def check_faults(blocked: Any, drop_rate: Any, delay_ms: Any
                 ) -> tuple[set[str], float, float]:
    """``(blocked, drop_rate, delay_ms)`` of a chaos fault filter if
    ``blocked`` is None or a list, tuple or set of at most :data:`MAX_BATCH`
    strings, ``drop_rate`` a number in [0, 1] and ``delay_ms`` one in
    [0, :data:`MAX_TIMEOUT_S` s]; else raises InvalidCommand."""
    if blocked is None:
        blocked = ()
    if not isinstance(blocked, (list, tuple, set, frozenset)) or len(blocked) > MAX_BATCH \
            or not all(isinstance(node, str) for node in blocked):
        raise InvalidCommand(f"blocked is a list of node ids, got {shown(blocked)}")
    for name, value, top in (("drop_rate", drop_rate, 1.0),
                             ("delay_ms", delay_ms, MAX_TIMEOUT_S * 1000)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= top:
            raise InvalidCommand(f"{name} is a number in [0, {top:g}], got {shown(value)}")
    return set(blocked), float(drop_rate), float(delay_ms)


def check_seq(seq: Any, what: str = "since") -> int:
    """``seq`` if it is an integer in ``0..2**63-1`` (an event or log
    position a caller reads from); else raises InvalidCommand."""
    if not _is_int(seq) or not 0 <= seq <= MAX_ID:
        raise InvalidCommand(f"{what} is an integer in 0..2**63-1, got {shown(seq)}")
    return int(seq)


def check_node_id(node: Any, what: str = "node") -> str:
    """``node`` if it is a node id (a string of 1..:data:`MAX_NODE_ID_CHARS`
    characters); else raises InvalidCommand."""
    if not isinstance(node, str) or not 0 < len(node) <= MAX_NODE_ID_CHARS:
        raise InvalidCommand(f"{what} is a node id (a string of 1..{MAX_NODE_ID_CHARS} "
                             f"characters), got {shown(node)}")
    return node


def check_conf_changes(changes: Any) -> tuple[tuple[str, str], ...]:
    """``changes`` as ``((kind, node), ...)`` if it is a non-empty list or
    tuple of at most :data:`MAX_BATCH` pairs, each kind ``"add_voter"``,
    ``"add_learner"`` or ``"remove"`` and each node a node id; else raises
    InvalidCommand."""
    if not isinstance(changes, (list, tuple)) or not 0 < len(changes) <= MAX_BATCH:
        raise InvalidCommand(f"changes is a non-empty list of (kind, node) pairs, got "
                             f"{shown(changes)}")
    checked = []
    for change in changes:
        if not isinstance(change, (list, tuple)) or len(change) != 2 \
                or change[0] not in CONF_CHANGE_KINDS:
            raise InvalidCommand(f"a membership change is (kind, node) with kind one of "
                                 f"{', '.join(CONF_CHANGE_KINDS)}, got {shown(change)}")
        checked.append((change[0], check_node_id(change[1])))
    return tuple(checked)


def check_callable(function: Any, what: str) -> Any:
    """``function`` if it can be called; else raises InvalidCommand."""
    if not callable(function):
        raise InvalidCommand(f"{what} is a function, got {shown(function)}")
    return function


def lease_ttl_ms(ttl: Any, min_ms: int = 1) -> int:
    """A lease TTL given in seconds (the public API's unit) as whole ms, or
    InvalidCommand unless it is a finite number within ``min_ms``..one day."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) \
            or (isinstance(ttl, float) and not math.isfinite(ttl)):
        raise InvalidCommand(f"ttl is a number of seconds, got {type(ttl).__name__} "
                             f"{shown(ttl)}")
    if not min_ms / 1000 <= ttl <= MAX_LEASE_TTL_MS / 1000:
        raise InvalidCommand(f"ttl must lie between the election timeout ({min_ms / 1000:g} s) "
                             f"and one day ({MAX_LEASE_TTL_MS // 1000} s), got {shown(ttl)}")
    return max(min_ms, round(ttl * 1000))


def _values(op: tuple[Any, ...]) -> Iterator[tuple[str, Any]]:
    """``(description, value)`` of every value an op carries (keys aside)."""
    kind = op[0]
    if kind in ("put", "put_lease"):
        yield f"the value of {kind} {shown(op[1])}", op[2]
    elif kind == "cas":
        yield f"the expected value of cas {shown(op[1])}", op[2]
        yield f"the new value of cas {shown(op[1])}", op[3]
    elif kind in ("txn", "guarded"):
        for compare in op[1]:
            yield f"the compared value of {shown(compare[0])}", compare[2]
        for branch in op[2:]:
            for sub in branch:
                yield from _values(sub)
    elif kind == "fence":
        for sub in op[3]:
            yield from _values(sub)
    elif kind not in ("get", "delete", "lease_grant", "lease_revoke"):
        yield f"the {kind} command", op


def _too_large(what: str, size: int, limit: int) -> str:
    return (f"{what} takes {size} bytes pickled; the limit is max_value_bytes = {limit} bytes "
            f"({limit / (1 << 20):.2g} MiB), an option of the cluster: keep large data "
            "elsewhere (a file, the Ray object store) and store a reference")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_ACCEPTABLE_PAUSE_MS",
    "MAX_CLIENT_ID_CHARS",
    "MAX_MAX_VALUE_BYTES",
    "MAX_MIN_STD_DEVIATION_MS",
    "MAX_NODE_ID_CHARS",
    "MAX_PATH_CHARS",
    "MAX_PHI_THRESHOLD",
    "MAX_SAMPLE_SIZE",
    "MAX_TIMEOUT_S",
    "MIN_MAX_VALUE_BYTES",
    "PICKLE_PROTOCOL",
    "check_callable",
    "check_command",
    "check_conf_changes",
    "check_faults",
    "check_keys",
    "check_node_id",
    "check_op",
    "check_seq",
    "check_timeout",
    "check_value",
    "lease_ttl_ms",
]
