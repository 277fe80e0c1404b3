"""Barriers (ZooKeeper's and etcd's recipes): a cyclic barrier that releases
``parties`` waiters together, and the double barrier (``enter`` / ``leave``).

Layout under ``barrier/<name>/``: ``gen`` holds the current generation
(absent = 0); a party arrives by attaching ``g<gen>/<lease id>`` to its lease,
in a txn that applies only while ``gen`` is still that generation. Once the
line of a generation holds ``parties`` keys, whoever sees it trips the
barrier: a txn that raises ``gen`` only if those keys still exist and ``gen``
did not move. Every party of that generation is released once ``gen`` moved.

A party that gives up (timeout) withdraws its key in a txn guarded on ``gen``
still being its generation: either it withdrew before any trip (no trip
counted it) or the withdrawal fails because the barrier tripped, and then it
was released after all. A party whose process dies loses its lease and its
key, so it is never counted. The double barrier keeps the key after
``enter``; ``leave`` deletes it and waits until every party of the
generation left.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from ..client.kv import KVClient
from ..errors import ClusterError, CoordinationTimeout
from .checks import check_count, check_name, check_timeout, check_ttl
from .lease import Lease
from .line import POLL_S, LeaseLine, ordered

if TYPE_CHECKING:
    from ..client.session import LeaderSession

BARRIER_PREFIX = "barrier/"


class Barrier:
    """A named barrier for ``parties`` parties (``cluster.barrier(name,
    parties)``); one handle is one party::

        barrier.wait(timeout=30)        # all parties pass together
        barrier.enter(); ...; barrier.leave()   # the double barrier
        with barrier: ...                        # the same, enter/leave

    ``wait`` and ``enter`` return the generation passed and raise
    CoordinationTimeout if the other parties did not all arrive in time.
    """

    def __init__(self, session: LeaderSession, name: str, parties: int, ttl: float = 2.0,
                 party_id: str | None = None) -> None:
        self.session = session
        self.name = check_name("name", name)
        self.parties = check_count("parties", parties)
        self.ttl = check_ttl(ttl)
        self.party_id = party_id or f"party-{uuid.uuid4().hex[:8]}"
        self.prefix = f"{BARRIER_PREFIX}{name}/"
        self._gen_key = f"{self.prefix}gen"
        self._kv = KVClient(session)
        self._entered: tuple[Lease, int] | None = None  # the double barrier's lease, gen

    # ------------------------------------------------------------ cyclic barrier
    def wait(self, timeout: float | None = None) -> int:
        """Arrive and wait until ``parties`` parties arrived: the generation
        passed. CoordinationTimeout after ``timeout`` s (the arrival withdrawn)."""
        lease, gen = self._pass(check_timeout(timeout))
        lease.revoke()
        return gen

    # ------------------------------------------------------------ double barrier
    def enter(self, timeout: float | None = None) -> int:
        """Arrive and wait for all parties; stay counted until :meth:`leave`."""
        if self._entered is not None:
            raise ClusterError(f"barrier {self.name!r}: this party already entered; "
                               f"leave first")
        self._entered = self._pass(check_timeout(timeout))
        return self._entered[1]

    def leave(self, timeout: float | None = None) -> None:
        """Leave and wait until every party of this generation left (or its
        lease expired). CoordinationTimeout names those still inside."""
        timeout = check_timeout(timeout)
        if self._entered is None:
            raise ClusterError(f"barrier {self.name!r}: this party has not entered; "
                               f"enter first")
        (lease, gen), self._entered = self._entered, None
        lease.revoke()
        line = LeaseLine(self.session, f"{self.prefix}g{gen}/")
        deadline = None if timeout is None else time.monotonic() + timeout
        known: list[tuple[str, int]] | None = None
        while True:
            wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            items = line.items(known, max(0.0, wait))
            if not items:
                return
            if deadline is not None and time.monotonic() >= deadline:
                inside = [item[1].get("candidate") for item in items]
                raise CoordinationTimeout(f"barrier {self.name!r}: parties {inside} have not "
                                          f"left within {timeout} s; wait longer or stop them")
            known = [(item[0], item[3]) for item in items]

    def __enter__(self) -> Barrier:
        self.enter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._entered is not None:
            self.leave()

    # ----------------------------------------------------------------- helpers
    def generation(self) -> int:
        """The current generation (linearizable): how many times it tripped."""
        return int(self._kv.get(self._gen_key, 0))

    def arrived(self) -> int:
        """How many parties wait in the current generation."""
        gen = self.generation()
        return len(LeaseLine(self.session, f"{self.prefix}g{gen}/").items())

    def _gen_value(self, gen: int) -> int | None:
        return None if gen == 0 else gen  # absent means 0

    def _pass(self, timeout: float | None) -> tuple[Lease, int]:
        """Arrive, wait for the trip: ``(lease, generation)``; on timeout the
        arrival is withdrawn and CoordinationTimeout raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            lease = Lease.grant(self.session, self.ttl)
            try:
                gen, key = self._arrive(lease)
                if self._await_trip(lease, gen, deadline):
                    return lease, gen
            except BaseException:
                lease.revoke()
                raise
            if lease.is_alive():  # timed out: withdraw unless the barrier tripped
                withdraw = ("guarded", ((self._gen_key, "value", self._gen_value(gen)),),
                            (("delete", key),))
                tripped = not self.session.run(withdraw).ok
                if tripped:
                    return lease, gen
                lease.revoke()
                raise CoordinationTimeout(
                    f"barrier {self.name!r}: fewer than {self.parties} parties arrived within "
                    f"{timeout} s; start the missing parties or wait longer")
            lease.revoke()  # our lease lapsed while waiting: arrive again
            if self.generation() > gen:
                return Lease.grant(self.session, self.ttl), gen

    def _arrive(self, lease: Lease) -> tuple[int, str]:
        record = {"candidate": self.party_id, "value": None, "parties": self.parties}
        while True:
            gen = self.generation()
            key = f"{self.prefix}g{gen}/{lease.lease_id:016x}"
            op = ("guarded", ((self._gen_key, "value", self._gen_value(gen)),),
                  (("put_lease", key, record, lease.lease_id),))
            if self.session.run(op).ok:
                return gen, key
            if not lease.is_alive():
                raise ClusterError(f"barrier {self.name!r}: the party's lease was lost "
                                   f"while arriving; the cluster may have lost its leader")

    def _await_trip(self, lease: Lease, gen: int, deadline: float | None) -> bool:
        """True once generation ``gen`` tripped; False on timeout or a lost lease."""
        line = LeaseLine(self.session, f"{self.prefix}g{gen}/")
        known: list[tuple[str, int]] | None = None
        while lease.is_alive():
            wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            try:
                items = line.items(known, max(0.0, wait))
            except ClusterError:
                items = None  # no leader for a moment
            if items is not None:
                known = [(item[0], item[3]) for item in items]
                if len(items) >= self.parties:
                    self._trip(gen, ordered(items)[:self.parties])
            if self.generation() > gen:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return False

    def _trip(self, gen: int, counted: list[Any]) -> None:
        compares = ((self._gen_key, "value", self._gen_value(gen)),
                    *((item[0], "create_revision", item[2]) for item in counted))
        self.session.run(("guarded", compares, (("put", self._gen_key, gen + 1),)))

    def __repr__(self) -> str:
        return f"<Barrier {self.name!r} parties={self.parties}>"


__all__ = ["BARRIER_PREFIX", "Barrier"]
