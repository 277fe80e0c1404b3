"""A counting semaphore with fencing tokens (Curator's
InterProcessSemaphoreV2), on a :class:`~.line.LeaseLine` under
``semaphore/<name>/``.

A contender holds once its key is among the first ``limit`` keys of the line.
Keys only leave the line or join at its end, so a key among the first
``limit`` stays there until it leaves: never more than ``limit`` holders. A
holder whose lease expires (death, pause, partition) has its key deleted by
the cluster, which frees its slot. Every contender records the limit it was
given; one that finds a different limit in the line raises ValidationFailed
instead of counting wrongly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ValidationFailed
from .checks import check_count, check_name
from .holder import LineHolder
from .line import Item, LeaderInfo, LeaseLine, Ready

if TYPE_CHECKING:
    from ..client.session import LeaderSession

SEMAPHORE_PREFIX = "semaphore/"


def slot_ready(limit: int, name: str) -> Ready:
    """The rule: the key is among the first ``limit``, all with this limit."""

    def ready(line: list[Item], key: str) -> bool:
        for item in line:
            other = item[1].get("limit") if isinstance(item[1], dict) else None
            if other != limit:
                raise ValidationFailed([("limit", f"semaphore {name!r} is in use with limit "
                                                  f"{other!r}, not {limit}: give every holder "
                                                  f"the same limit")])
        return any(item[0] == key for item in line[:limit])

    return ready


class Semaphore(LineHolder):
    """At most ``limit`` holders at once (``cluster.semaphore(name, limit)``);
    one handle is one contender::

        with cluster.semaphore("gpu", limit=2) as slot:   # slot.token fences
            ...
    """

    kind = "semaphore"

    def __init__(self, session: LeaderSession, name: str, limit: int, ttl: float = 2.0,
                 holder_id: str | None = None, timeout: float | None = None) -> None:
        check_name("name", name)
        self.limit = check_count("limit", limit)
        line = LeaseLine(session, f"{SEMAPHORE_PREFIX}{name}/")
        super().__init__(session, line, name, ttl, holder_id, timeout,
                         slot_ready(self.limit, name), {"limit": self.limit})

    def holders(self) -> list[LeaderInfo]:
        """Who holds a slot now (linearizable)."""
        return self.line.line()[:self.limit]

    def __repr__(self) -> str:
        state = f"held, token {self.token}" if self.held() else "not held"
        return f"<Semaphore {self.name!r} limit={self.limit} {state}>"


__all__ = ["SEMAPHORE_PREFIX", "Semaphore"]
