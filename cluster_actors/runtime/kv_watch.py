"""The consensus node's etcd-style reads of the key-value history: a range
(optionally at a past revision) and a long-poll watch of the changes after a
revision.

Both answer from the replicated history (:mod:`cluster_actors.core.mvcc`),
which holds only committed changes and is identical on every replica up to
the revision each applied, so a watcher that resumes after the last revision
it was given, on whichever node leads, neither loses nor repeats a change.

The functions know the consensus core only through a few attributes (``sm``,
``raft``, ``leases``, ``_confirm_read``, ``require_started``, ``node_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from ..core.limits import check_seq, check_timeout
from ..core.mvcc import RangeResult, check_range
from ..core.raft_types import Role
from ..errors import NotLeader

#: at most this many changes travel in one watch answer
WATCH_BATCH = 1000


def _require_leader(core: Any) -> None:
    core.require_started()
    if core.raft.role is not Role.LEADER:
        raise NotLeader(core.node_id, core.raft.lead)


async def read_range(core: Any, start: str, end: str | None, limit: int | None,
                     revision: int | None, timeout: float) -> RangeResult:
    """A linearizable range read (ReadIndex on the leader, then the local
    history): see :meth:`~cluster_actors.core.kv.KVStateMachine.range_view`."""
    check_range(start, end, limit, revision)
    await core._confirm_read(check_timeout(timeout))
    return core.sm.range_view(start, end, limit, revision)


async def watch_events(core: Any, start: str, end: str | None, after: int | None,
                       timeout: float, limit: int | None = None) -> dict[str, Any]:
    """Long poll (leader only): ``{"changes": [...], "revision": r}`` with the
    changes (:class:`~cluster_actors.core.mvcc.Change`) of keys in the range
    whose revision is above ``after``, in revision order, once there is at
    least one or ``timeout`` s passed; ``r`` is the revision they were looked
    for up to: the caller continues with ``after=r``. ``after=None`` answers
    at once, after a ReadIndex round, with no changes and the current
    revision (a watch that starts now). Raises ``Compacted`` when changes
    after ``after`` were dropped from the history."""
    check_range(start, end, limit)
    if after is not None:
        after = check_seq(after, "after_revision")
    if timeout != 0:  # 0: answer at once
        timeout = check_timeout(timeout)
    _require_leader(core)
    if after is None:
        await core._confirm_read(max(0.1, timeout))
        return {"changes": [], "revision": core.sm.revision}
    limit = WATCH_BATCH if limit is None else min(limit, WATCH_BATCH)
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        changes, upto = core.sm.changes_since(after, start, end, limit)
        remaining = deadline - time.monotonic()
        if changes or remaining <= 0 or core.raft.role is not Role.LEADER:
            return {"changes": changes, "revision": max(after, upto)}
        changed = core.leases.next_change()  # set at the next applied change or role change
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(changed.wait(), remaining)


__all__ = ["WATCH_BATCH", "read_range", "watch_events"]
