"""Leases, as etcd has them: a replicated lease table, keys attached to
leases, and the leader's expiry clock.

Two halves, both pure:

* :class:`LeasedKV` is the key-value state machine plus a lease table, changed
  only through log entries, so every replica holds the same leases:

  - ``("lease_grant", lease_id | None, ttl_ms)`` → :class:`LeaseResult`. With
    ``None`` the state machine picks the next free id (deterministically).
    Granting an id that exists fails (``ok=False``). A grant does not change
    the key revision.
  - ``("lease_revoke", lease_id)`` → :class:`LeaseResult` whose ``deleted``
    lists the keys removed with it; ``ok`` tells whether the lease existed.
  - ``("put_lease", key, value, lease_id)`` → :class:`~.kv.KVResult`: sets the
    key and attaches it to the lease (moving it off any other lease);
    ``ok=False`` and nothing changes if the lease does not exist.
  - ``("guarded", compares, ops)`` → KVResult: like ``txn`` with an empty
    failure branch, but ``ops`` may hold ``put_lease`` too and ``compares``
    may test the field ``lease`` (the key's lease id, None if unattached).
  - ``("fence", fence_key, token, ops)`` → KVResult: the fencing-token cas.
    ``fence_key`` holds the highest token used on a resource; the op applies
    ``ops`` and raises the stored token to ``token`` only if ``token`` is at
    least the stored one (or none is stored). ``prev`` is the fence record
    before the op, so a rejected caller learns the newer token.

  A key stays attached while it is only changed by ``put_lease`` (or the
  ``put_lease`` of a ``guarded``/``fence`` op) on the same lease: a plain
  ``put`` or a ``delete`` detaches it (etcd's rule), which the table notices
  lazily by the key's ``mod_revision``.

* :class:`LeaseDeadlines` is the expiry clock the LEADER keeps in memory.
  Replicas never decide expiry from their clocks: a deadline is reset to
  ``now + ttl`` on grant, on each keepalive, and for every lease when a node
  becomes leader; when one passes, the leader proposes ``lease_revoke``.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .kv import (
    InvalidCommand,
    KeyValue,
    KVResult,
    KVStateMachine,
    check_count,
    check_key,
    shown,
    validate_op,
)
from .pickling import pickled_by_fields

LEASE_OPS: dict[str, int] = {"lease_grant": 3, "lease_revoke": 2, "put_lease": 4,
                             "guarded": 3, "fence": 4}
GUARD_FIELDS = ("value", "version", "create_revision", "mod_revision", "lease")

#: the longest lease TTL, one day (a longer one is refused at validation and at apply)
MAX_LEASE_TTL_MS = 86_400_000
#: the largest lease id or fencing token (a signed 64-bit integer, as etcd's)
MAX_ID = 2**63 - 1


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(slots=True)
class Lease:
    """One granted lease: its TTL and the keys attached to it, each with the
    ``mod_revision`` it had when attached (a later plain write detaches it)."""

    lease_id: int
    ttl_ms: int
    keys: dict[str, int] = field(default_factory=dict)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class LeaseResult:
    """The outcome of ``lease_grant`` / ``lease_revoke`` (see the module doc)."""

    ok: bool
    lease_id: int
    ttl_ms: int
    revision: int
    deleted: tuple[str, ...] = ()


class LeaseTable:
    """Leases and key attachments. ``epoch`` counts changes to the table, so
    a watcher can tell cheaply that something may have moved."""

    def __init__(self) -> None:
        self.leases: dict[int, Lease] = {}
        self.owner: dict[str, int] = {}  # key -> lease id (validated lazily)
        self.next_id = 1
        self.epoch = 0

    def grant(self, lease_id: int | None, ttl_ms: int) -> Lease | None:
        """A new lease, or None if ``lease_id`` is taken."""
        if lease_id is None:
            lease_id = self.next_id  # deterministic: every replica picks the same id
        if lease_id in self.leases:
            return None
        self.next_id = max(self.next_id, lease_id + 1)
        lease = self.leases[lease_id] = Lease(lease_id, ttl_ms)
        self.epoch += 1
        return lease

    def remove(self, lease_id: int) -> Lease | None:
        """Drop a lease from the table (its keys are the caller's to delete)."""
        lease = self.leases.pop(lease_id, None)
        if lease is not None:
            for key in lease.keys:
                if self.owner.get(key) == lease_id:
                    del self.owner[key]
            self.epoch += 1
        return lease

    def attach(self, key: str, lease_id: int, mod_revision: int) -> None:
        previous = self.owner.get(key)
        if previous is not None and previous != lease_id and previous in self.leases:
            self.leases[previous].keys.pop(key, None)
        self.owner[key] = lease_id
        self.leases[lease_id].keys[key] = mod_revision
        self.epoch += 1

    def lease_of(self, key: str, kv: KeyValue | None) -> int | None:
        """The lease ``key`` is attached to, given its current record."""
        lease_id = self.owner.get(key)
        if lease_id is None or kv is None:
            return None
        lease = self.leases.get(lease_id)
        if lease is None or lease.keys.get(key) != kv.mod_revision:
            return None
        return lease_id

    def live_keys(self, lease_id: int, data: dict[str, KeyValue]) -> list[str]:
        """The keys still attached to the lease, sorted."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return []
        return sorted(k for k in lease.keys if self.lease_of(k, data.get(k)) == lease_id)

    def leased_items(self, prefix: str, data: dict[str, KeyValue]
                     ) -> list[tuple[KeyValue, int]]:
        """``(record, lease id)`` of every attached key under ``prefix``, by key.
        Costs O(attached keys), not O(all keys)."""
        out = []
        for key in sorted(k for k in self.owner if k.startswith(prefix)):
            kv = data.get(key)
            lease_id = self.lease_of(key, kv)
            if lease_id is not None and kv is not None:
                out.append((kv, lease_id))
        return out

    def ttls(self) -> dict[int, int]:
        return {lease_id: lease.ttl_ms for lease_id, lease in self.leases.items()}

    def to_state(self) -> tuple[Any, ...]:
        return (self.next_id, self.epoch,
                {i: (lease.ttl_ms, dict(lease.keys)) for i, lease in self.leases.items()})

    @classmethod
    def from_state(cls, state: tuple[Any, ...]) -> LeaseTable:
        table = cls()
        table.next_id, table.epoch, leases = state
        for lease_id, (ttl_ms, keys) in leases.items():
            table.leases[lease_id] = Lease(lease_id, ttl_ms, dict(keys))
            for key in keys:
                table.owner[key] = lease_id
        return table


def check_lease_op(op: tuple[Any, ...]) -> None:
    """Raise InvalidCommand unless a lease op's arguments are well formed and
    in range (before anything changes, so a bad op is rejected whole): TTLs
    in 1 ms..:data:`MAX_LEASE_TTL_MS`, ids and tokens in 1..:data:`MAX_ID`."""
    kind = op[0]
    if kind == "lease_grant":
        if op[1] is not None and (not _is_int(op[1]) or not 1 <= op[1] <= MAX_ID):
            raise InvalidCommand(f"lease ids are integers in 1..2**63-1 or None, got {shown(op[1])}")
        if not _is_int(op[2]) or not 1 <= op[2] <= MAX_LEASE_TTL_MS:
            raise InvalidCommand(f"a lease TTL is a whole number of ms from 1 to "
                                 f"{MAX_LEASE_TTL_MS} (one day), got {shown(op[2])}")
    elif kind == "lease_revoke":
        if not _is_int(op[1]):
            raise InvalidCommand(f"lease ids are integers, got {shown(op[1])}")
    elif kind == "put_lease":
        if not _is_int(op[3]):
            raise InvalidCommand(f"put_lease takes (key: str, value, lease_id: int), got {shown(op)}")
        check_key(op[1])
    else:
        if kind == "fence":
            if not _is_int(op[2]) or not 0 <= op[2] <= MAX_ID:
                raise InvalidCommand(f"fence takes (fence_key: str, token: int in 0..2**63-1, "
                                     f"ops), got {shown(op)}")
            check_key(op[1], "fence key")
        compares = op[1] if kind == "guarded" else ()
        if not isinstance(compares, (tuple, list)) or not isinstance(op[-1], (tuple, list)):
            raise InvalidCommand(f"{kind} takes sequences of compares and ops, got {shown(op)}")
        check_count(compares, "compares")
        check_count(op[-1], "ops")
        for compare in compares:
            if not isinstance(compare, (tuple, list)) or len(compare) != 3 \
                    or not isinstance(compare[0], str) or compare[1] not in GUARD_FIELDS:
                raise InvalidCommand(f"malformed compare {shown(compare)}: expected (key, field, "
                                     f"value) with field in {', '.join(GUARD_FIELDS)}")
            check_key(compare[0])
        for sub in op[-1]:
            if not isinstance(sub, tuple) or not sub or sub[0] not in (
                    "put", "delete", "put_lease"):
                raise InvalidCommand(f"{kind} ops are put, delete or put_lease, got {shown(sub)}")
            validate_op(sub, {"put_lease": 4})
            if sub[0] == "put_lease":
                check_lease_op(sub)


_check_lease_op = check_lease_op  # the former private name


class LeasedKV(KVStateMachine):
    """The key-value state machine with leases (see the module doc)."""

    EXTRA_OPS: ClassVar[dict[str, int]] = {**KVStateMachine.EXTRA_OPS, **LEASE_OPS}

    def __init__(self, max_sessions: int = 10_000) -> None:
        super().__init__(max_sessions)
        self.leases = LeaseTable()

    def execute_extra(self, op: tuple[Any, ...]) -> Any:
        if op[0] not in LEASE_OPS:
            return super().execute_extra(op)
        check_lease_op(op)
        kind = op[0]
        if kind == "lease_grant":
            lease = self.leases.grant(op[1], op[2])
            if lease is None:
                return LeaseResult(False, op[1], op[2], self.revision)
            return LeaseResult(True, lease.lease_id, lease.ttl_ms, self.revision)
        if kind == "lease_revoke":
            return self._revoke(op[1])
        if kind == "put_lease":
            return self._put_lease(op[1], op[2], op[3])
        if kind == "guarded":
            ok = all(self._guard(key, fld, expected) for key, fld, expected in op[1])
            if ok and not self._leases_exist(op[2]):
                ok = False
            last = self._apply_ops(op[2]) if ok else None
            return KVResult(ok, self.revision, last.kv if last else None,
                            last.prev if last else None)
        return self._fence(op[1], op[2], op[3])

    def _revoke(self, lease_id: int) -> LeaseResult:
        lease = self.leases.leases.get(lease_id)
        if lease is None:
            return LeaseResult(False, lease_id, 0, self.revision)
        doomed = self.leases.live_keys(lease_id, self.data)
        self.leases.remove(lease_id)
        for key in doomed:
            self._delete(key)
        return LeaseResult(True, lease_id, lease.ttl_ms, self.revision, tuple(doomed))

    def _put_lease(self, key: str, value: Any, lease_id: int) -> KVResult:
        if lease_id not in self.leases.leases:
            current = self.data.get(key)
            return KVResult(False, self.revision, current, current)
        result = self._put(key, value)
        assert result.kv is not None
        self.leases.attach(key, lease_id, result.kv.mod_revision)
        return result

    def _guard(self, key: str, fld: str, expected: Any) -> bool:
        if fld == "lease":
            return self.leases.lease_of(key, self.data.get(key)) == expected
        return self._compare(key, fld, expected)

    def _leases_exist(self, ops: Sequence[tuple[Any, ...]]) -> bool:
        return all(sub[3] in self.leases.leases for sub in ops if sub[0] == "put_lease")

    def _apply_ops(self, ops: Iterable[tuple[Any, ...]]) -> KVResult | None:
        last: KVResult | None = None
        for sub in ops:
            if sub[0] == "put":
                last = self._put(sub[1], sub[2])
            elif sub[0] == "delete":
                last = self._delete(sub[1])
            else:
                last = self._put_lease(sub[1], sub[2], sub[3])
        return last

    def _fence(self, fence_key: str, token: int, ops: Sequence[tuple[Any, ...]]) -> KVResult:
        stored = self.data.get(fence_key)
        stored_token = stored.value if stored is not None else None
        ok = (stored_token is None or (isinstance(stored_token, int) and token >= stored_token))
        if not ok or not self._leases_exist(ops):
            return KVResult(False, self.revision, stored, stored)
        last = self._put(fence_key, token) if stored_token != token else None
        last = self._apply_ops(ops) or last
        kv = last.kv if last else stored
        return KVResult(True, self.revision, kv, stored)

    # ------------------------------------------------------------ reads
    def leased_items(self, prefix: str) -> list[tuple[KeyValue, int]]:
        """Attached keys under ``prefix`` with their lease ids (a local read)."""
        return self.leases.leased_items(prefix, self.data)

    # ------------------------------------------------------------ snapshots
    def snapshot(self) -> bytes:
        return pickle.dumps((super().snapshot(), self.leases.to_state()),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, blob: bytes | None) -> None:
        if blob is None:
            super().restore(None)
            return
        kv_blob, lease_state = pickle.loads(blob)
        super().restore(kv_blob)
        self.leases = LeaseTable.from_state(lease_state)

    def state_hash(self) -> str:
        digest = hashlib.blake2b(super().state_hash().encode(), digest_size=16)
        for lease_id in sorted(self.leases.leases):
            digest.update(repr((lease_id, self.leases.leases[lease_id].ttl_ms,
                                self.leases.live_keys(lease_id, self.data))).encode())
        return digest.hexdigest()


class LeaseDeadlines:
    """The leader's in-memory expiry clock (times in seconds, passed in).

    Deadlines exist only on the leader; a new leader starts every lease's
    clock afresh (``reset_all``), so a lease never expires earlier than its
    holder, who counts from before its last acknowledged keepalive, expects.
    """

    def __init__(self) -> None:
        self.deadlines: dict[int, float] = {}
        self.expiring: dict[int, float] = {}  # lease id -> when its revoke was proposed

    def reset_all(self, ttls: dict[int, int], now: float) -> None:
        """Become leader: every lease gets a full TTL from ``now``."""
        self.deadlines = {lease_id: now + ttl / 1000 for lease_id, ttl in ttls.items()}
        self.expiring = {}

    def clear(self) -> None:
        """Stop leading: forget every deadline."""
        self.deadlines = {}
        self.expiring = {}

    def sync(self, ttls: dict[int, int], now: float) -> None:
        """Match the lease table: newly granted leases start at ``now + ttl``,
        revoked ones are forgotten."""
        for lease_id, ttl in ttls.items():
            if lease_id not in self.deadlines:
                self.deadlines[lease_id] = now + ttl / 1000
        if len(self.deadlines) != len(ttls):
            for lease_id in [i for i in self.deadlines if i not in ttls]:
                del self.deadlines[lease_id]
                self.expiring.pop(lease_id, None)

    def renew(self, lease_id: int, ttl_ms: int, now: float) -> int | None:
        """A keepalive received at ``now``: the remaining TTL in ms, or None if
        the lease is already being revoked (its holder must consider it lost)."""
        if lease_id in self.expiring:
            return None
        self.deadlines[lease_id] = max(self.deadlines.get(lease_id, now), now + ttl_ms / 1000)
        return ttl_ms

    def expired(self, now: float, retry_after: float) -> list[int]:
        """Leases whose deadline passed and whose revoke is not in flight (or
        was proposed more than ``retry_after`` seconds ago); they are marked
        as expiring, so no keepalive can save them."""
        due = []
        for lease_id, deadline in self.deadlines.items():
            if deadline > now:
                continue
            proposed = self.expiring.get(lease_id)
            if proposed is None or now - proposed >= retry_after:
                self.expiring[lease_id] = now
                due.append(lease_id)
        return sorted(due)

    def remaining(self, lease_id: int, now: float) -> float | None:
        deadline = self.deadlines.get(lease_id)
        return None if deadline is None else max(0.0, deadline - now)


__all__ = ["GUARD_FIELDS", "LEASE_OPS", "MAX_ID", "MAX_LEASE_TTL_MS", "Lease", "LeaseDeadlines", "LeaseResult", "LeaseTable",
           "LeasedKV", "check_lease_op"]
