"""A line of contenders on the cluster's leases: the mechanism under the
election, the lock and the recipes built like them.

Each contender takes a lease and attaches one key ``<prefix><lease id>`` to it,
carrying a record ``{"candidate": id, "value": v, ...}``. Keys are ordered by
their ``create_revision``, which only grows: a key's place in the line can
only move forward (keys ahead of it leave, new keys join behind it). A
contender holds once a ``ready(line, key)`` rule is true of a linearizable
read of the line: "first" for a mutex or a leader, "among the first N" for a
semaphore, "no writer ahead" for a reader. Since no key ever joins ahead, a
rule of that shape, once true, stays true until the holder leaves; that is
what makes each recipe safe, and the holder's ``create_revision`` is its
fencing token. A holder whose lease expires (death, pause, partition) has its
key deleted by the cluster, and the line moves on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ClusterError, CoordinationTimeout
from .checks import check_name, check_timeout
from .lease import Lease, check_ttl

if TYPE_CHECKING:
    from ..client.session import LeaderSession

#: longest single long poll while waiting (the wait ends earlier on any change)
POLL_S = 1.0

#: one key of a line as the lease watch answers it:
#: ``(key, record, create_revision, mod_revision, lease_id)``
Item = Sequence[Any]

#: the rule that says a key holds, given the line sorted by create revision
Ready = Callable[[list[Item], str], bool]


class Cancelled(ClusterError):
    """A campaign or lock acquisition was cancelled by its caller."""

    code = "cancelled"


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    """Who leads (or holds the lock): the candidate's id and proclaimed value,
    the fencing token, the election key, its lease and its mod revision;
    ``extra`` holds the other fields of its record (a lock mode, a limit)."""

    candidate_id: str
    value: Any
    token: int
    key: str
    lease_id: int
    revision: int
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def info_of(item: Item) -> LeaderInfo:
    """The :class:`LeaderInfo` of one watch item."""
    key, record, create_revision, mod_revision, lease_id = item
    record = record if isinstance(record, dict) else {}
    extra = {k: v for k, v in record.items() if k not in ("candidate", "value")}
    return LeaderInfo(str(record.get("candidate")), record.get("value"), create_revision, key,
                      lease_id, mod_revision, extra)


def first_of(items: Sequence[Item]) -> Item | None:
    """The item with the lowest create revision, or None."""
    return min(items, key=lambda item: item[2]) if items else None


def ordered(items: Sequence[Item]) -> list[Item]:
    """The items by create revision: the order of the line."""
    return sorted(items, key=lambda item: item[2])


def is_first(line: list[Item], key: str) -> bool:
    """The mutex rule: ``key`` is first in line."""
    return bool(line) and line[0][0] == key


class LeaseLine:
    """Keys under one prefix, each attached to a contender's lease, in the
    order of their create revisions (see the module doc)."""

    def __init__(self, session: LeaderSession, prefix: str) -> None:
        self.session = session
        self.prefix = prefix

    def items(self, known: list[tuple[str, int]] | None = None, wait: float = 0.0
              ) -> list[Item]:
        """The line (linearizable, by key); with ``known`` (``(key,
        mod_revision)`` pairs), waits up to ``wait`` seconds for it to differ."""
        return self.session.call("lease_watch", self.prefix, known, wait,
                                 timeout=wait + self.session.timeout)

    def head(self) -> LeaderInfo | None:
        first = first_of(self.items())
        return None if first is None else info_of(first)

    def line(self) -> list[LeaderInfo]:
        return [info_of(item) for item in ordered(self.items())]

    def enter(self, candidate_id: str, value: Any, ttl: float,
              extra: dict[str, Any] | None = None) -> tuple[Lease, str, int]:
        """Join the line without waiting: ``(lease, key, create revision)``."""
        record = {**(extra or {}), "candidate": candidate_id, "value": value}
        while True:
            lease = Lease.grant(self.session, ttl)
            key = f"{self.prefix}{lease.lease_id:016x}"
            try:
                result = self.session.run(("put_lease", key, record, lease.lease_id))
            except BaseException:
                lease.revoke()
                raise
            if result.ok:
                return lease, key, result.kv.create_revision
            lease.revoke()  # the lease lapsed before the put: take a new one

    def enter_and_wait(self, candidate_id: str, value: Any, ttl: float, timeout: float | None,
                       cancel: threading.Event | None, ready: Ready = is_first,
                       extra: dict[str, Any] | None = None) -> tuple[Lease, str, int]:
        """Join the line and wait until ``ready`` holds for our key:
        ``(lease, key, token)``. A lease lost while waiting is replaced (the
        place in line is lost). Raises CoordinationTimeout after ``timeout``
        s, Cancelled on ``cancel``, ValidationFailed (before anything is
        granted) for a ``ttl`` that is not a number between the cluster's
        election timeout and one day; whatever ``ready`` raises propagates
        (the lease revoked). A bad ``timeout``, candidate id or value raises
        ValidationFailed before anything is granted too."""
        check_ttl(self.session, ttl)
        timeout = check_timeout(timeout)
        check_name("candidate_id", candidate_id)
        # the record must pass the leader's checks: refused here, no lease granted
        self.session.check(("put_lease", self.prefix, {**(extra or {}),
                                                       "candidate": candidate_id,
                                                       "value": value}, 1))
        deadline = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            self._check(deadline if attempt else None, cancel)
            attempt += 1
            lease, key, token = self.enter(candidate_id, value, ttl, extra)
            if self.wait_ready(lease, key, ttl, deadline, cancel, ready):
                return lease, key, token
            lease.revoke()  # the lease lapsed while waiting: leave no key behind, rejoin

    def wait_ready(self, lease: Lease, key: str, ttl: float, deadline: float | None,
                   cancel: threading.Event | None, ready: Ready = is_first) -> bool:
        """Wait until ``ready`` holds for ``key``: True; False if the lease
        was lost meanwhile. Raises (revoking the lease) on timeout, cancel or
        an error of ``ready``."""
        known: list[tuple[str, int]] | None = None
        try:
            while lease.is_alive():
                wait = POLL_S if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    items = self.items(known, min(wait, POLL_S, ttl))
                except ClusterError:
                    self._check(deadline, cancel)
                    continue
                known = [(item[0], item[3]) for item in items]
                if not any(item[0] == key for item in items):
                    return False  # our key is gone: the lease expired while we waited
                if ready(ordered(items), key) and lease.is_alive():
                    return True
                self._check(deadline, cancel)
            return False
        except BaseException:
            lease.revoke()
            raise

    @staticmethod
    def _check(deadline: float | None, cancel: threading.Event | None) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled while waiting for leadership")
        if deadline is not None and time.monotonic() >= deadline:
            raise CoordinationTimeout("not elected within the timeout: another contender "
                                      "still holds it; wait longer or resign the holder")


__all__ = ["POLL_S", "Cancelled", "Item", "LeaderInfo", "LeaseLine", "Ready", "first_of",
           "info_of", "is_first", "ordered"]
