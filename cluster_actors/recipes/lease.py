"""A lease held by this process and kept alive in the background.

:meth:`Lease.grant` asks the cluster for a lease of ``ttl`` seconds (through
the log, as a command of a :class:`~cluster_actors.client.session.LeaderSession`,
so a retried grant is applied once) and
starts a daemon thread that sends a keepalive to the consensus leader every
``ttl / 3``, retrying quickly when one fails.

The holder's view is conservative: its local deadline is the time it SENT its
last acknowledged keepalive (or the grant) plus the TTL, and the leader resets
its own deadline when it RECEIVES the keepalive, and to a full TTL whenever
leadership changes. So the lease never expires on the cluster before the
holder's deadline (clocks running at the same rate). When the deadline passes
without an acknowledgement, or the leader answers that the lease is gone, the
lease is lost for good: ``lost`` is set, ``lost_reason`` says why and the
``on_lost`` callback runs once (in the keeper thread).

A process that is paused (SIGSTOP, a long GC) keeps no lease alive; when it
resumes, its keeper sees the deadline passed and reports the loss before it
sends anything. Writes it had already decided on must still carry a fencing
token, since it cannot know it was paused between deciding and writing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.limits import lease_ttl_ms
from ..errors import ClusterError

if TYPE_CHECKING:
    from ..client.session import LeaderSession

logger = logging.getLogger(__name__)


def check_ttl(session: LeaderSession, ttl: Any) -> int:
    """``ttl`` (seconds) as whole ms if it lies between the cluster's election
    timeout and one day; else raises ValidationFailed (the leader checks the same)."""
    return lease_ttl_ms(ttl, getattr(session.options, "election_timeout", 1))


class Lease:
    """A granted lease with a background keepalive (see the module doc).

    ``lease_id``: the cluster's id for it; ``ttl``: seconds; ``lost``: a
    ``threading.Event`` set once the lease is lost, revoked or abandoned;
    ``lost_reason``: why.
    """

    def __init__(self, session: LeaderSession, lease_id: int, ttl: float, sent_at: float,
                 on_lost: Callable[[Lease], Any] | None = None) -> None:
        self.session = session
        self.lease_id = lease_id
        self.ttl = ttl
        self.on_lost = on_lost
        self.lost = threading.Event()
        self.lost_reason: str | None = None
        self.keepalives = 0  #: acknowledged keepalives
        self._involuntary = False  # lost without the holder asking
        self._notified = False  # on_lost ran
        self._deadline = sent_at + ttl
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_alive, daemon=True,
                                        name=f"lease-{lease_id}-keepalive")
        self._thread.start()

    @classmethod
    def grant(cls, session: LeaderSession, ttl: float, on_lost: Callable[[Lease], Any] | None = None,
              timeout: float | None = None) -> Lease:
        """Grant a lease of ``ttl`` seconds and start keeping it alive. A ``ttl``
        that is not a finite number between the cluster's election timeout and
        one day raises ValidationFailed; nothing is granted."""
        ttl_ms = check_ttl(session, ttl)
        sent_at = time.monotonic()
        result = session.run(("lease_grant", None, ttl_ms), timeout)
        if not result.ok:
            raise ClusterError(f"the cluster refused a lease: {result}")
        return cls(session, result.lease_id, ttl, sent_at, on_lost)

    # ----------------------------------------------------------------- state
    @property
    def deadline(self) -> float:
        """``time.monotonic()`` value until which the lease surely holds."""
        return self._deadline

    def remaining(self) -> float:
        """Seconds the lease surely still holds (0 once lost)."""
        if self.lost.is_set():
            return 0.0
        return max(0.0, self._deadline - time.monotonic())

    def is_alive(self) -> bool:
        """True while the lease surely holds: not lost, deadline not passed."""
        return not self.lost.is_set() and time.monotonic() < self._deadline

    # ---------------------------------------------------------------- ending
    def revoke(self, timeout: float | None = None) -> bool:
        """Stop the keepalive and revoke the lease, deleting its keys. True if
        the revoke was applied now; False if it could not be confirmed (the
        lease then expires by itself within its TTL). A lease whose deadline
        had already passed counts as lost involuntarily (``on_lost`` runs)."""
        self._stop.set()
        if time.monotonic() >= self._deadline:
            self._mark_lost(self._expiry_reason())
        self._mark_lost("revoked by its holder", notify=False)
        try:
            self.session.run(("lease_revoke", self.lease_id), timeout)
        except Exception as error:
            logger.info("lease %s not revoked (%s); it expires within %s s",
                        self.lease_id, error, self.ttl)
            return False
        return True

    def let_expire(self) -> None:
        """Stop the keepalive without revoking, as if this process had died:
        the cluster revokes the lease once its TTL runs out."""
        self._stop.set()
        self._mark_lost("abandoned by its holder", notify=False)

    def notify_loss(self, callback: Callable[[Lease], Any]) -> None:
        """Set ``on_lost``; if the lease was already lost involuntarily and no
        callback ran, run this one now (so no loss goes unreported)."""
        with self._lock:
            self.on_lost = callback
            due = self._involuntary and not self._notified
            self._notified = self._notified or due
        if due:
            self._run_callback(callback)

    def _mark_lost(self, reason: str, notify: bool = True) -> None:
        with self._lock:
            if self.lost.is_set():
                return
            self.lost_reason = reason
            self._involuntary = notify
            self.lost.set()
            callback = self.on_lost if notify else None
            self._notified = callback is not None
        if callback is not None:
            self._run_callback(callback)

    def _run_callback(self, callback: Callable[[Lease], Any]) -> None:
        try:
            callback(self)
        except Exception:
            logger.exception("on_lost callback of lease %s failed", self.lease_id)

    # ------------------------------------------------------------- keepalive
    def _keep_alive(self) -> None:
        interval = self.ttl / 3
        retry = min(self.ttl / 10, 0.1)
        next_due = time.monotonic() + interval
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= self._deadline:
                self._expired()
                return
            wait = min(next_due, self._deadline) - now
            if wait > 0:
                self._stop.wait(wait)
                continue
            sent = time.monotonic()
            try:
                [ttl_ms] = self.session.call("lease_keepalive", [self.lease_id],
                                             timeout=max(0.05, self._deadline - sent))
            except Exception as error:  # no leader, a timeout, a dying actor: retry soon
                logger.debug("keepalive of lease %s failed: %s", self.lease_id, error)
                next_due = time.monotonic() + retry
                continue
            if self._stop.is_set():
                return
            if time.monotonic() >= self._deadline:
                self._expired()  # answered too late: we already stopped trusting it
                return
            if ttl_ms is None:
                self._mark_lost("the lease was revoked or expired on the cluster")
                return
            with self._lock:
                self._deadline = max(self._deadline, sent + ttl_ms / 1000)
                self.keepalives += 1
            next_due = sent + interval

    def _expiry_reason(self) -> str:
        return (f"no keepalive acknowledged within the TTL ({self.ttl} s): partitioned, "
                f"paused or the cluster had no leader")

    def _expired(self) -> None:
        self._mark_lost(self._expiry_reason())
        try:  # let waiting contenders in at once if the cluster still has the lease
            self.session.run(("lease_revoke", self.lease_id), timeout=self.ttl)
        except Exception as error:
            logger.debug("revoke of expired lease %s failed: %s", self.lease_id, error)

    def __repr__(self) -> str:
        state = f"lost: {self.lost_reason}" if self.lost.is_set() else \
            f"{self.remaining():.2f} s left"
        return f"<Lease {self.lease_id} ttl={self.ttl} s, {state}>"


__all__ = ["Lease", "check_ttl"]
