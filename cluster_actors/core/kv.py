"""The replicated state machine that consensus applies: a key-value store with
revisions (like etcd's MVCC keyspace) and client sessions.

Every mutation bumps the store's ``revision``; each key records the revision
that created it (``create_revision``, usable as a fencing token: it strictly
increases each time the key is created anew), the revision of its last change
(``mod_revision``) and its ``version`` (changes since creation). Each change
is also kept in a bounded history (:mod:`.mvcc`), so reads can see a past
revision and watchers can follow changes; ``("compact", revision)`` drops the
history up to a revision (its result: the ``compacted_revision`` after it).

Client sessions make retries safe: a :class:`Command` carries
``(client_id, seq)``; a command whose ``seq`` was already applied returns the
remembered result and changes nothing. ``ack_below`` lets a client say that it
has seen the results of all its commands below that sequence number, so the
session can forget them (one client may have many commands in flight).
"""

from __future__ import annotations

import hashlib
import pickle
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import ValidationFailed
from .mvcc import DEFAULT_MVCC_HISTORY, Change, History, RangeResult
from .pickling import pickled_by_fields
from .raft_types import Entry, EntryKind

OPS = ("put", "get", "cas", "delete", "txn")

#: the longest key, in bytes of UTF-8 (checked on every replica, at apply time too)
MAX_KEY_BYTES = 4096
#: the most compares, and the most ops per branch, of one txn (etcd's --max-txn-ops)
MAX_TXN_OPS = 128


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Command:
    """A client command as carried in a NORMAL log entry.

    ``op`` is one of:

    * ``("put", key, value)`` → :class:`KVResult` with ``ok=True``
    * ``("get", key)`` → value read through the log (``ok`` = key exists)
    * ``("cas", key, expected, new)`` → ``ok`` tells whether the value was
      ``expected`` (None: the key must be absent) and is now ``new``
    * ``("delete", key)`` → ``ok`` tells whether the key existed
    * ``("txn", compares, success_ops, failure_ops)``: ``compares`` is a
      sequence of ``(key, field, value)`` with ``field`` one of ``value``,
      ``version``, ``create_revision``, ``mod_revision`` (all must be equal);
      the put/delete ops of the chosen branch apply atomically; ``ok`` tells
      which branch ran. This is the fencing-token guard.
    """

    client_id: str
    seq: int
    op: tuple[Any, ...]
    ack_below: int = 0


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: Any
    create_revision: int
    mod_revision: int
    version: int


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class KVResult:
    """The outcome of one command: ``ok`` as documented per op, the store's
    ``revision`` after it, the key's record after it (``kv``, None if absent)
    and the previous record (``prev``)."""

    ok: bool
    revision: int
    kv: KeyValue | None = None
    prev: KeyValue | None = None

    @property
    def value(self) -> Any:
        return self.kv.value if self.kv else None


class InvalidCommand(ValidationFailed):
    """A command whose op is malformed, or too large: refused before it is
    proposed (by the client and the leader), and rejected identically on every
    replica should one reach the log. A :class:`ValidationFailed` (code
    ``validation_failed``, also a ValueError); nothing was changed."""


class _ShortRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:
            return f"an integer of {x.bit_length()} bits"
        return super().repr_int(x, level)


_REPR = _ShortRepr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 3


def shown(value: Any) -> str:
    """A short repr for an error message, safe for any input (a 32 MiB value,
    an integer of a million digits, an object whose repr raises)."""
    try:
        return _REPR.repr(value)
    except Exception:
        return f"<a {type(value).__name__}>"


def check_key(key: Any, what: str = "key") -> None:
    """Raise :class:`InvalidCommand` unless ``key`` is a string of at most
    :data:`MAX_KEY_BYTES` bytes of UTF-8."""
    if not isinstance(key, str):
        raise InvalidCommand(f"{what}s are strings, got {type(key).__name__} {shown(key)}")
    if len(key) > MAX_KEY_BYTES:  # each character takes at least one byte
        raise InvalidCommand(f"a {what} takes at most {MAX_KEY_BYTES} bytes of UTF-8, got "
                             f"{len(key)} characters; use a shorter {what}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidCommand(f"a {what} must be valid UTF-8 text (no lone surrogates), got "
                             f"{key[:40]!r}") from None
    if size > MAX_KEY_BYTES:
        raise InvalidCommand(f"a {what} takes at most {MAX_KEY_BYTES} bytes of UTF-8, got "
                             f"{size}; use a shorter {what}")


_ARITY = {"put": 3, "get": 2, "cas": 4, "delete": 2, "txn": 4}


def validate_op(op: Any, extra_ops: dict[str, int] | None = None) -> None:
    """Raise :class:`InvalidCommand` unless ``op`` is well formed.
    ``extra_ops`` maps the op names a subclass adds to their arity."""
    arities = {**_ARITY, **(extra_ops or {})}
    if not isinstance(op, tuple) or not op or not isinstance(op[0], str) \
            or op[0] not in arities:
        raise InvalidCommand(f"unknown operation {shown(op)}: expected a tuple whose first item "
                             f"is one of {', '.join(arities)}")
    arity = arities[op[0]]
    if len(op) != arity:
        raise InvalidCommand(f"{op[0]} takes {arity - 1} arguments, got {len(op) - 1}: {shown(op)}")
    if op[0] not in _ARITY:
        return
    if op[0] == "txn":
        if not all(isinstance(part, (tuple, list)) for part in op[1:]):
            raise InvalidCommand(f"txn takes sequences of compares, success ops and failure "
                                 f"ops, got {shown(op)}")
        check_count(op[1], "compares")
        for compare in op[1]:
            if (not isinstance(compare, (tuple, list)) or len(compare) != 3
                    or not isinstance(compare[0], str) or compare[1] not in _FIELDS):
                raise InvalidCommand(f"malformed compare {shown(compare)}: expected (key, field, "
                                     f"value) with field in {', '.join(_FIELDS)}")
            check_key(compare[0])
        check_count(op[2], "success ops")
        check_count(op[3], "failure ops")
        for sub in (*op[2], *op[3]):
            if not isinstance(sub, tuple) or not sub or sub[0] not in ("put", "delete"):
                raise InvalidCommand(f"txn branches hold put/delete ops only, got {shown(sub)}")
            validate_op(sub)
    else:
        check_key(op[1])


def check_count(items: Any, what: str) -> None:
    """Raise :class:`InvalidCommand` if a txn part holds more than :data:`MAX_TXN_OPS`."""
    if len(items) > MAX_TXN_OPS:
        raise InvalidCommand(f"a txn takes at most {MAX_TXN_OPS} {what}, got {len(items)}; "
                             "split it into several")


_FIELDS = ("value", "version", "create_revision", "mod_revision")


@dataclass(slots=True)
class _Session:
    floor: int = 0
    results: dict[int, Any] = field(default_factory=dict)
    last_index: int = 0


class KVStateMachine:
    """Deterministic: replicas that apply the same entries in the same order
    hold equal state and return equal results.

    Subclasses add operations by listing them in ``EXTRA_OPS`` (name ->
    arity) and implementing :meth:`execute_extra`; they share the sessions.
    """

    EXTRA_OPS: ClassVar[dict[str, int]] = {"compact": 2}

    def __init__(self, max_sessions: int = 10_000,
                 mvcc_history: int = DEFAULT_MVCC_HISTORY) -> None:
        """``mvcc_history``: how many revisions of changes the history keeps
        (every replica must be given the same)."""
        self.data: dict[str, KeyValue] = {}
        self.revision = 0
        self.history = History(mvcc_history)
        self.applied_index = 0
        self.sessions: dict[str, _Session] = {}
        self.max_sessions = max_sessions

    # -------------------------------------------------------------- applying
    def apply(self, entry: Entry) -> tuple[Any, bool]:
        """Apply a committed entry. Returns ``(result, duplicate)``:
        ``duplicate`` is True when the command had already been applied (the
        remembered result is returned and nothing changes). Non-command
        entries return ``(None, False)``. An invalid op yields the
        :class:`InvalidCommand` as its result, on every replica alike."""
        if entry.index != self.applied_index + 1:  # a gap or a replay: never skip or redo
            raise ValueError(f"entry {entry.index} applied out of order: the state machine "
                             f"has applied through {self.applied_index} and takes only entry "
                             f"{self.applied_index + 1} next")
        self.applied_index = entry.index
        command = entry.data
        if entry.kind is not EntryKind.NORMAL or not isinstance(command, Command):
            return None, False
        session = self.sessions.get(command.client_id)
        if session is None:
            session = self.sessions[command.client_id] = _Session(last_index=entry.index)
            self._evict_sessions(keep=command.client_id)
        session.last_index = entry.index
        if command.seq < session.floor or command.seq in session.results:
            return session.results.get(command.seq), True
        try:
            validate_op(command.op, self.EXTRA_OPS)
            result: Any = (self.execute_extra(command.op) if command.op[0] in self.EXTRA_OPS
                           else self._execute(command.op))
        except InvalidCommand as error:
            result = error
        session.results[command.seq] = result
        if command.ack_below > session.floor:
            session.floor = command.ack_below
            for seq in [s for s in session.results if s < session.floor]:
                del session.results[seq]
        return result, False

    def _evict_sessions(self, keep: str) -> None:
        """Forget the least recently used sessions beyond ``max_sessions``."""
        while len(self.sessions) > self.max_sessions:
            oldest = min((c for c in self.sessions if c != keep),
                         key=lambda c: self.sessions[c].last_index)
            del self.sessions[oldest]

    def execute_extra(self, op: tuple[Any, ...]) -> Any:
        """Execute an op listed in ``EXTRA_OPS`` (subclasses override and
        call this for the ops they do not know)."""
        if op[0] == "compact":
            revision = op[1]
            if isinstance(revision, bool) or not isinstance(revision, int) or \
                    not 0 <= revision <= self.revision:
                raise InvalidCommand(f"compact takes a revision in [0, {self.revision}] (the "
                                     f"current one), got {revision!r}")
            self.history.compact(revision)
            return self.history.compacted_revision
        raise InvalidCommand(f"operation {shown(op[0])} is not implemented")

    def _execute(self, op: tuple[Any, ...]) -> KVResult:
        kind, key = op[0], op[1]
        if kind == "get":
            kv = self.data.get(key)
            return KVResult(kv is not None, self.revision, kv, kv)
        if kind == "put":
            return self._put(key, op[2])
        if kind == "delete":
            return self._delete(key)
        if kind == "cas":
            current = self.data.get(key)
            matches = current is None if op[2] is None else (
                current is not None and current.value == op[2])
            if not matches:
                return KVResult(False, self.revision, current, current)
            if op[3] is None and current is None:
                return KVResult(True, self.revision, None, None)  # absent, stays absent
            return self._put(key, op[3]) if op[3] is not None else self._delete(key)
        return self._txn(op[1], op[2], op[3])

    def _put(self, key: str, value: Any) -> KVResult:
        prev = self.data.get(key)
        self.revision += 1
        kv = KeyValue(key, value,
                      prev.create_revision if prev else self.revision,
                      self.revision, prev.version + 1 if prev else 1)
        self.data[key] = kv
        self.history.record(Change(self.revision, key, kv, prev))
        return KVResult(True, self.revision, kv, prev)

    def _delete(self, key: str) -> KVResult:
        prev = self.data.pop(key, None)
        if prev is None:
            return KVResult(False, self.revision, None, None)
        self.revision += 1
        self.history.record(Change(self.revision, key, None, prev))
        return KVResult(True, self.revision, None, prev)

    def _txn(self, compares: Sequence[tuple[str, str, Any]], success: Sequence[tuple[Any, ...]],
             failure: Sequence[tuple[Any, ...]]) -> KVResult:
        ok = all(self._compare(key, fld, expected) for key, fld, expected in compares)
        last: KVResult | None = None
        for sub in success if ok else failure:
            last = self._put(sub[1], sub[2]) if sub[0] == "put" else self._delete(sub[1])
        return KVResult(ok, self.revision, last.kv if last else None,
                        last.prev if last else None)

    def _compare(self, key: str, fld: str, expected: Any) -> bool:
        kv = self.data.get(key)
        if kv is None:
            return expected is None or (fld != "value" and expected == 0)
        return getattr(kv, fld) == expected

    # ----------------------------------------------------------------- reads
    def get(self, key: str) -> KeyValue | None:
        """A local read: linearizable only after a ReadIndex confirmed that
        this replica applied up to the read's index."""
        return self.data.get(key)

    def range(self, prefix: str = "") -> list[KeyValue]:
        return [kv for key, kv in sorted(self.data.items()) if key.startswith(prefix)]

    def range_view(self, start: str, end: str | None = None, limit: int | None = None,
                   revision: int | None = None) -> RangeResult:
        """etcd's Range (a local read): the records of the keys in ``[start,
        end)`` (``end=None``: the key ``start`` alone; ``mvcc.ALL_KEYS``: no
        upper bound) by key, at most ``limit``, as of ``revision`` (None: now).
        Raises ``Compacted`` for a revision before the history's start and
        ValidationFailed for bad arguments or a future revision."""
        return self.history.range(self.data, self.revision, start, end, limit, revision)

    def changes_since(self, after: int, start: str, end: str | None = None,
                      limit: int | None = None) -> tuple[list[Change], int]:
        """The changes of keys in the range with a revision above ``after``
        (see :meth:`.mvcc.History.since`): what a watch delivers next."""
        return self.history.since(after, start, end, self.revision, limit)

    @property
    def compacted_revision(self) -> int:
        return self.history.compacted_revision

    # ------------------------------------------------------------- snapshots
    def snapshot(self) -> bytes:
        """The whole state, sessions included (so deduplication survives
        compaction), as bytes."""
        sessions = {c: (s.floor, s.results, s.last_index) for c, s in self.sessions.items()}
        return pickle.dumps((self.data, self.revision, self.applied_index, sessions,
                             self.history.to_state()), protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, blob: bytes | None) -> None:
        limit = self.history.limit
        if blob is None:
            self.__init__(self.max_sessions)  # type: ignore[misc]
            self.history.limit = limit
            return
        data, revision, applied, sessions, *history = pickle.loads(blob)
        self.data, self.revision, self.applied_index = data, revision, applied
        self.history = (History.from_state(history[0], limit) if history
                        else History(limit, compacted_revision=revision))
        self.sessions = {c: _Session(f, r, i) for c, (f, r, i) in sessions.items()}

    def state_hash(self) -> str:
        """A digest of the user-visible state, equal on converged replicas
        (cached until the next change)."""
        cached = getattr(self, "_hash_cache", None)
        if cached is not None and cached[0] == (self.revision, self.applied_index):
            return cached[1]
        value = self._compute_state_hash()
        self._hash_cache = ((self.revision, self.applied_index), value)
        return value

    def _compute_state_hash(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((self.revision, self.history.hash_parts())).encode())
        for key in sorted(self.data):
            kv = self.data[key]
            try:
                value = repr(_canonical(kv.value))
            except (RecursionError, ValueError):  # nested ~1000 deep, an int of 5000 digits
                value = _pickled_digest(kv.value)
            digest.update(repr((key, value, kv.create_revision,
                                kv.mod_revision, kv.version)).encode())
        return digest.hexdigest()


def _pickled_digest(value: Any) -> str:
    """A digest of a value whose repr cannot be taken (the same on every replica)."""
    try:
        return "pickled:" + hashlib.blake2b(pickle.dumps(value, protocol=5),
                                            digest_size=16).hexdigest()
    except Exception:
        return f"unhashable {type(value).__name__}"


def _canonical(value: Any) -> Any:
    """A representation whose repr does not depend on hash order (sets, dicts)."""
    if isinstance(value, (set, frozenset)):
        return ("set", sorted(repr(_canonical(v)) for v in value))
    if isinstance(value, dict):
        return ("dict", sorted((repr(_canonical(k)), repr(_canonical(v)))
                               for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_canonical(v) for v in value])
    return value
