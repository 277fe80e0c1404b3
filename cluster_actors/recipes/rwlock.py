"""A read-write lock with fencing tokens (Curator's InterProcessReadWriteLock,
etcd's recipe), on a :class:`~.line.LeaseLine` under ``rwlock/<name>/``.

Readers and writers join one line, each key recording its ``mode``. A writer
holds once it is first in line: every reader and writer ahead of it has left.
A reader holds once no writer is ahead of it, so readers share the lock and a
waiting writer is not starved: readers that come after it wait behind it.
The fencing token is the holder's create revision; a hold ends on release or
when its lease expires.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .checks import check_name, check_timeout, check_ttl
from .holder import LineHolder
from .line import Item, LeaderInfo, LeaseLine, is_first

if TYPE_CHECKING:
    from ..client.session import LeaderSession

RWLOCK_PREFIX = "rwlock/"


def reader_ready(line: list[Item], key: str) -> bool:
    """A reader holds once no writer is ahead of it."""
    for item in line:
        if item[0] == key:
            return True
        record = item[1] if isinstance(item[1], dict) else {}
        if record.get("mode") != "read":
            return False
    return False


class ReadLock(LineHolder):
    """The shared side (``with rwlock.read():``)."""

    kind = "read lock"


class WriteLock(LineHolder):
    """The exclusive side (``with rwlock.write():``)."""

    kind = "write lock"


class RWLock:
    """A named read-write lock (``cluster.rwlock(name)``): ``read()`` and
    ``write()`` each make a new contender, to use as a context manager::

        rw = cluster.rwlock("catalog")
        with rw.read() as hold:      # many readers at once
            ...
        with rw.write() as hold:     # alone; hold.guarded_put(...) is fenced
            ...
    """

    def __init__(self, session: LeaderSession, name: str, ttl: float = 2.0,
                 timeout: float | None = None) -> None:
        self.session = session
        self.name = check_name("name", name)
        self.ttl = check_ttl(ttl)
        self.timeout = check_timeout(timeout)
        self.line = LeaseLine(session, f"{RWLOCK_PREFIX}{name}/")

    def read(self, timeout: float | None = None, holder_id: str | None = None) -> ReadLock:
        """A new reader (acquired by ``with`` or ``acquire()``)."""
        return ReadLock(self.session, self.line, self.name, self.ttl, holder_id,
                        self.timeout if timeout is None else timeout, reader_ready,
                        {"mode": "read"})

    def write(self, timeout: float | None = None, holder_id: str | None = None) -> WriteLock:
        """A new writer (acquired by ``with`` or ``acquire()``)."""
        return WriteLock(self.session, self.line, self.name, self.ttl, holder_id,
                         self.timeout if timeout is None else timeout, is_first,
                         {"mode": "write"})

    def holders(self) -> list[LeaderInfo]:
        """Who holds it now (linearizable): one writer, or the readers ahead of
        any writer; ``info.extra["mode"]`` tells which."""
        line = self.line.line()
        if line and line[0].extra.get("mode") != "read":
            return line[:1]
        out = []
        for info in line:
            if info.extra.get("mode") != "read":
                break
            out.append(info)
        return out

    def __repr__(self) -> str:
        return f"<RWLock {self.name!r}>"


__all__ = ["RWLOCK_PREFIX", "RWLock", "ReadLock", "WriteLock", "reader_ready"]
