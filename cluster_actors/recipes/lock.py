"""A distributed mutex with a fencing token, on the cluster's leases.

The same mechanism as :mod:`cluster_actors.recipes.election` under ``lock/<name>/``:
each contender attaches a key to its lease, the key with the lowest create
revision holds the lock, and that revision is the fencing token. It is the
:class:`~.holder.LineHolder` whose rule is "first in line". The lock is
released by its holder, or by the cluster when the holder's lease expires
(death, pause, partition).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .checks import check_name
from .holder import LineHolder
from .lease import check_ttl
from .line import LeaderInfo, LeaseLine

if TYPE_CHECKING:
    from ..client.session import LeaderSession

LOCK_PREFIX = "lock/"


class Lock(LineHolder):
    """A distributed mutex with a fencing token (``cluster.lock(name)``).

    ``with cluster.lock("jobs", ttl=2.0) as lock: lock.guarded_put(...)``.
    Released by ``release()``, on leaving the ``with``, or by the cluster when
    the holder's lease expires (death, pause, partition); ``lost`` tells the
    holder. Not reentrant; one handle is one contender. A ``ttl`` outside the
    cluster's bounds (its election timeout to one day) raises
    ValidationFailed here rather than at ``acquire``.
    """

    kind = "lock"

    def __init__(self, session: LeaderSession, name: str, ttl: float = 2.0,
                 holder_id: str | None = None, timeout: float | None = None) -> None:
        check_name("name", name)
        check_ttl(session, ttl)
        super().__init__(session, LeaseLine(session, f"{LOCK_PREFIX}{name}/"), name, ttl,
                         holder_id, timeout)

    def locked(self) -> bool:
        """True while this handle surely holds the lock (a local check, no call)."""
        return self.held()

    def holder(self) -> LeaderInfo | None:
        """Who holds the lock now (linearizable read), or None."""
        return self.line.head()


__all__ = ["LOCK_PREFIX", "Lock"]
