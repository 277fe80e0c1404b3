"""The lease manager a consensus node runs: the leader's expiry clock, the
keepalive and revoke calls, and a long-poll watch on leased keys.

Expiry is decided by the leader alone (etcd's rule): it keeps a deadline per
lease in memory (:class:`~cluster_actors.core.leases.LeaseDeadlines`), resets
every deadline to a full TTL when it becomes leader, extends one on each
keepalive, and proposes ``("lease_revoke", id)`` through the log when one
passes. Keepalives are answered by the leader without a log entry, after a
ReadIndex round has confirmed that it still leads, so a deposed leader cannot
extend a lease its successor is about to expire.

The manager knows the consensus core only through a few attributes (``raft``,
``sm``, ``submit``, ``read``, ``node_id``); it imports no actor.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import os
import time
import uuid
from typing import Any

from ..core.kv import Command, InvalidCommand, KeyValue, check_key, shown
from ..core.leases import LeaseDeadlines, LeaseResult, check_lease_op
from ..core.limits import MAX_BATCH, check_timeout
from ..core.raft_types import Role
from ..errors import NotLeader

logger = logging.getLogger(__name__)

#: a revoke proposed for an expired lease is proposed again after this long
REVOKE_RETRY_S = 1.0

#: what a watch answers: (key, value, create_revision, mod_revision, lease_id)
WatchItem = tuple[str, Any, int, int, int]


class LeaseManager:
    """Leases on one consensus node (see the module doc)."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.deadlines = LeaseDeadlines()
        self._leading = False
        self._synced: tuple[int, int] = (0, -1)  # (table id, epoch) the deadlines matched
        self._seen: tuple[int, int] = (-1, -1)
        self._changed: asyncio.Event | None = None
        self._client_id = f"leases-{core.node_id}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._seq = itertools.count(1)
        self._outstanding: set[int] = set()  # proposed sequence numbers awaiting results
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ driven by the core
    def tick(self, now: float) -> None:
        """Called on every Raft tick: keeps the clock in step with the role and
        the lease table, and proposes the revoke of every expired lease."""
        leading = self.core.raft.role is Role.LEADER
        if leading != self._leading:
            self._leading = leading
            if leading:
                self.deadlines.reset_all(self.core.sm.leases.ttls(), now)
                table = self.core.sm.leases
                self._synced = (id(table), table.epoch)
            else:
                self.deadlines.clear()
            self._notify()  # watchers re-check, and learn NotLeader if we stepped down
        if not leading:
            return
        table = self.core.sm.leases
        if (id(table), table.epoch) != self._synced:  # a lease granted or revoked
            self.deadlines.sync(table.ttls(), now)
            self._synced = (id(table), table.epoch)
        for lease_id in self.deadlines.expired(now, REVOKE_RETRY_S):
            self._spawn(self._propose([("lease_revoke", lease_id)]))

    def after_apply(self) -> None:
        """Called after each applied batch: wakes the watchers if any key or
        lease changed."""
        sm = self.core.sm
        seen = (sm.revision, sm.leases.epoch)
        if seen != self._seen:
            self._seen = seen
            self._notify()

    def next_change(self) -> asyncio.Event:
        """An event set at the next applied change of a key or a lease, or when
        this node's role changes (what long polls wait on)."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("lease revoke not applied: %s", task.exception())

    async def _propose(self, ops: list[tuple[Any, ...]], timeout: float = 5.0) -> list[Any]:
        """Propose ops in this node's own session; ``ack_below`` lets the
        replicas forget the results of every command no longer awaited."""
        seqs = [next(self._seq) for _ in ops]
        self._outstanding.update(seqs)
        ack_below = min(self._outstanding)
        commands = [Command(self._client_id, seq, op, ack_below) for seq, op in zip(
            seqs, ops, strict=True)]
        try:
            results = await self.core.submit(commands, timeout)
        finally:
            self._outstanding.difference_update(seqs)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    # ------------------------------------------------------------ client calls
    def _require_leader(self) -> None:
        self.core.require_started()
        if self.core.raft.role is not Role.LEADER:
            raise NotLeader(self.core.node_id, self.core.raft.lead)

    async def grant(self, ttl_ms: int, lease_id: int | None = None) -> LeaseResult:
        """Grant a lease of ``ttl_ms`` (through the log); its clock starts now.
        A TTL that is not a finite number, or out of range (see
        :func:`~cluster_actors.core.leases.check_lease_op`), raises
        InvalidCommand (a ValidationFailed) and nothing is proposed."""
        self._require_leader()
        if isinstance(ttl_ms, bool) or not isinstance(ttl_ms, (int, float)) \
                or (isinstance(ttl_ms, float) and not math.isfinite(ttl_ms)):
            raise InvalidCommand(f"a lease TTL is a number of ms, got {shown(ttl_ms)}")
        op = ("lease_grant", lease_id, int(ttl_ms))
        check_lease_op(op)
        [result] = await self._propose([op])
        if result.ok:
            self.deadlines.renew(result.lease_id, result.ttl_ms, time.monotonic())
        return result

    async def revoke(self, lease_id: int) -> LeaseResult:
        """Revoke a lease (through the log): its keys are deleted."""
        self._require_leader()
        [result] = await self._propose([("lease_revoke", lease_id)])
        return result

    async def keepalive(self, lease_ids: list[int]) -> list[int | None]:
        """Extend each lease by its TTL from now; per lease its TTL in ms, or
        None if it was revoked or has expired (its holder lost it). No log
        entry; answered after a quorum confirms this node still leads."""
        self._require_leader()
        _check_ids(lease_ids)
        received = time.monotonic()
        await self.core.read([])  # this node still leads, and applied what it committed
        self._require_leader()
        table = self.core.sm.leases.leases
        out: list[int | None] = []
        for lease_id in lease_ids:
            lease = table.get(lease_id)
            out.append(None if lease is None
                       else self.deadlines.renew(lease_id, lease.ttl_ms, received))
        return out

    async def time_to_live(self, lease_id: int) -> dict[str, Any] | None:
        """The lease's TTL, remaining seconds on the leader's clock and keys, or None."""
        self._require_leader()
        _check_ids([lease_id])
        await self.core.read([])
        lease = self.core.sm.leases.leases.get(lease_id)
        if lease is None:
            return None
        return {"lease_id": lease_id, "ttl_ms": lease.ttl_ms,
                "remaining_s": self.deadlines.remaining(lease_id, time.monotonic()),
                "keys": self.core.sm.leases.live_keys(lease_id, self.core.sm.data)}

    async def watch(self, prefix: str, known: list[tuple[str, int]] | None,
                    timeout: float) -> list[WatchItem]:
        """Long poll: the leased keys under ``prefix`` as ``(key, value,
        create_revision, mod_revision, lease_id)`` sorted by key, once they
        differ from ``known`` (a list of ``(key, mod_revision)``; None answers
        at once) or ``timeout`` seconds passed. Linearizable: answered after a
        ReadIndex round. Keys removed by a plain delete are noticed at the
        next change or at the timeout."""
        check_key(prefix, "prefix")
        if known is not None and (not isinstance(known, (list, tuple)) or len(known) > MAX_BATCH
                                  or not all(isinstance(k, (list, tuple)) and len(k) == 2
                                             for k in known)):
            raise InvalidCommand(f"known is None or a list of (key, mod_revision), got "
                                 f"{shown(known)}")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= 0:
            timeout = 0.0  # answer at once
        else:
            timeout = check_timeout(timeout)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._require_leader()
            await self.core.read([])
            items = self._items(prefix)
            if known is None or [(i[0], i[3]) for i in items] != [tuple(k) for k in known] \
                    or time.monotonic() >= deadline:
                return items
            while [(i[0], i[3]) for i in self._items(prefix)] == [tuple(k) for k in known]:
                if self._changed is None:
                    self._changed = asyncio.Event()
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.core.raft.role is not Role.LEADER:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    break

    def _items(self, prefix: str) -> list[WatchItem]:
        pairs: list[tuple[KeyValue, int]] = self.core.sm.leased_items(prefix)
        return [(kv.key, kv.value, kv.create_revision, kv.mod_revision, lease_id)
                for kv, lease_id in pairs]

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._notify()


def _check_ids(lease_ids: Any) -> None:
    """Raise InvalidCommand unless ``lease_ids`` is a list of at most MAX_BATCH integers."""
    if not isinstance(lease_ids, (list, tuple)) or len(lease_ids) > MAX_BATCH or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in lease_ids):
        raise InvalidCommand(f"expected a list of lease ids (integers), got {shown(lease_ids)}")


__all__ = ["REVOKE_RETRY_S", "LeaseManager", "WatchItem"]
