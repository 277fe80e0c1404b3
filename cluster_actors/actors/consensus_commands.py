"""The consensus core's client commands: submit (batched, exactly once per
``(client_id, seq)``), the configuration and internal commands proposed
through a validated ``prepare``, and the linearizable reads (ReadIndex
confirmed by a quorum), ranges and watches on the replicated KV store.

A mixin of :class:`~.consensus_core.ConsensusCore`: it uses the core's Raft
node (``raft``), state machine (``sm``), waiters and Ready loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ..core.cluster_state import refuse_config_commands
from ..core.config import ConfigVersion
from ..core.kv import Command, InvalidCommand, check_key, shown
from ..core.limits import MAX_BATCH, check_callable, check_command, check_keys, check_timeout
from ..core.raft import ProposalDropped
from ..core.raft_types import Role
from ..errors import CoordinationTimeout, NotLeader, ValidationFailed
from ..runtime import kv_watch


class ClientCommands:
    """Client-facing commands of :class:`~.consensus_core.ConsensusCore`."""

    async def submit_config(self, prepare: Callable[[Any], Any], client_id: str, seq: int,
                            timeout: float = 5.0) -> tuple[int, Any]:
        """Leader only: ``prepare(config_store)`` here (a ValidationFailed leaves
        nothing proposed), then commit the record as the session command
        ``(client_id, seq)``: ``(the record's version, the apply result)``. One
        call instead of a prepare and a submit; a retry with the same ``seq`` is
        applied at most once, whatever it prepares."""
        check_callable(prepare, "prepare")
        timeout = check_timeout(timeout)
        self.require_started()
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, self.raft.lead)
        record = prepare(self.sm.config)
        if not isinstance(record, ConfigVersion):
            raise InvalidCommand(f"prepare returns the config store's record, got "
                                 f"{shown(record)}")
        command = Command(client_id, seq, ("config", record.model_dump(mode="json")), seq)
        # the only way configuration is proposed
        [result] = await self._propose_checked([self._check_proposable(command)],
                                               check_timeout(timeout))
        return record.version, result

    async def submit_internal(self, prepare: Callable[[Any], Any], client_id: str, seq: int,
                              timeout: float = 5.0) -> Any:
        """Leader only: ``prepare(state_machine)`` here returns an op that only
        the cluster's components propose (an ``("approval", ...)``; a raise
        leaves nothing proposed), committed as the session command
        ``(client_id, seq)``; returns its apply result."""
        check_callable(prepare, "prepare")
        timeout = check_timeout(timeout)
        self.require_started()
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, self.raft.lead)
        command = Command(client_id, seq, prepare(self.sm), seq)
        [result] = await self._propose_checked([self._check_proposable(command)],
                                               check_timeout(timeout))
        return result

    def check_command(self, command: Any) -> Command:
        """``command`` if a client may propose it, else raises InvalidCommand (a
        ValidationFailed): a well-formed op whose values survive the log's plain
        pickle within ``max_value_bytes``, a lease TTL of at least the election
        timeout (see :mod:`~cluster_actors.core.limits`), and no ``("config",
        ...)`` op (configuration enters the log only through
        :meth:`submit_config`). Changes nothing."""
        checked = self._check_proposable(command)
        refuse_config_commands([checked])
        return checked

    def _check_proposable(self, command: Any) -> Command:
        return check_command(command, extra_ops=self.sm.EXTRA_OPS,
                             max_value_bytes=self.options.max_value_bytes,
                             min_lease_ttl_ms=self.options.election_timeout)

    async def submit(self, commands: list[Command], timeout: float = 5.0) -> list[Any]:
        """Propose a batch of commands; results in the same order once applied.
        Each command is checked first (:meth:`check_command`): a refused one
        (a ``("config", ...)`` op among them: configuration changes go through
        :meth:`submit_config`) gets its ValidationFailed as its result and is
        not proposed, the others are. A batch that is not a list of at most
        ``MAX_BATCH`` commands, or a bad ``timeout``, is refused whole; nothing
        is proposed."""
        self.require_started()
        if not isinstance(commands, (list, tuple)) or len(commands) > MAX_BATCH:
            raise InvalidCommand(f"submit takes a list of at most {MAX_BATCH} commands, got "
                                 f"{type(commands).__name__} {shown(commands)}")
        timeout = check_timeout(timeout)
        results: list[Any] = [None] * len(commands)
        accepted: list[Command] = []
        positions: list[int] = []
        for position, command in enumerate(commands):
            try:
                checked = self.check_command(command)
            except ValidationFailed as error:
                results[position] = error
            else:
                accepted.append(checked)
                positions.append(position)
        if len(accepted) < len(commands):
            self.stats["refused"] += len(commands) - len(accepted)
        if accepted and self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, self.raft.lead)
        if accepted:
            for position, result in zip(positions, await self._propose_checked(
                    accepted, timeout), strict=True):
                results[position] = result
        return results

    async def _propose_checked(self, commands: list[Command], timeout: float) -> list[Any]:
        """Propose checked commands; their results in order once applied."""
        loop = asyncio.get_running_loop()
        futures = []
        now = time.perf_counter()
        for command in commands:
            key = (command.client_id, command.seq)
            future = self._waiters.get(key)
            if future is None or future.done():
                future = self._waiters[key] = loop.create_future()
            futures.append(future)
            self._propose_times.setdefault(key, now)
        try:
            self.raft.propose_batch(commands)
        except ProposalDropped:
            for command in commands:
                self._waiters.pop((command.client_id, command.seq), None)
            raise
        self.stats["proposed"] += len(commands)
        self._schedule_process()
        try:
            return await asyncio.wait_for(asyncio.gather(*futures), timeout)
        except asyncio.TimeoutError:
            raise CoordinationTimeout(
                f"{len(commands)} command(s) not applied within {timeout} s on leader "
                f"{self.node_id}: the outcome is unknown; retry with the same sequence "
                f"numbers (they are applied at most once)") from None
        finally:
            for command in commands:
                key = (command.client_id, command.seq)
                if self._waiters.get(key) is not None and self._waiters[key].done():
                    del self._waiters[key]

    async def read(self, keys: list[str], timeout: float = 5.0) -> list[Any]:
        """Linearizable reads (ReadIndex): the values of ``keys`` as KeyValue or None."""
        keys = check_keys(keys)
        await self._confirm_read(timeout)
        return [self.sm.get(key) for key in keys]

    async def read_prefix(self, prefix: str, timeout: float = 5.0) -> list[Any]:
        """A linearizable read (ReadIndex) of every record whose key starts with
        ``prefix``, in key order, answered by this leader once confirmed."""
        check_key(prefix, "prefix")
        await self._confirm_read(timeout)
        return self.sm.range(prefix)

    async def read_state(self, query: Callable[[Any], Any], timeout: float = 5.0) -> Any:
        """``query(state machine)`` as a linearizable read (ReadIndex): answered
        by this leader once confirmed, so it reflects every write acknowledged
        before the call. NotLeader on a follower."""
        check_callable(query, "query")
        await self._confirm_read(timeout)
        return query(self.sm)

    async def read_range(self, start: str, end: str | None = None, limit: int | None = None,
                         revision: int | None = None, timeout: float = 5.0) -> Any:
        """etcd's Range, linearizable (ReadIndex): a RangeResult of the keys in
        ``[start, end)`` (``end=None``: the key alone) as of ``revision``."""
        return await kv_watch.read_range(self, start, end, limit, revision, timeout)

    async def watch_events(self, start: str, end: str | None, after_revision: int | None,
                           timeout: float = 5.0, limit: int | None = None) -> dict[str, Any]:
        """Long poll on the history: the changes in the range after
        ``after_revision`` (see :func:`~cluster_actors.runtime.kv_watch.watch_events`)."""
        return await kv_watch.watch_events(self, start, end, after_revision, timeout, limit)

    async def _confirm_read(self, timeout: float) -> None:
        """Return once a quorum confirmed this node still leads and it applied
        everything committed when the read arrived (Raft's ReadIndex); raises
        NotLeader on a follower and CoordinationTimeout when not confirmed in time."""
        self.require_started()
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, self.raft.lead)
        timeout = check_timeout(timeout)
        context = next(self._read_ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[context] = (future, time.monotonic() + timeout)
        self.raft.read_index(context)
        self._schedule_process()
        try:
            await future
        finally:
            self._reads.pop(context, None)

    def _expire_reads(self) -> None:
        now = time.monotonic()
        for context, (future, deadline) in list(self._reads.items()):
            if now > deadline and not future.done():
                future.set_exception(CoordinationTimeout(
                    f"read not confirmed by a quorum within its timeout on {self.node_id}"))
                del self._reads[context]
