"""Errors raised by cluster_actors.

Every error the seed names (``not_leader``, ``no_quorum``, ``timeout``,
``validation_failed``, ``sync_failed``, ``not_found``) is an exception class with a ``code``
attribute equal to the seed's atom, and a message that says what to do next.
All of them derive from :class:`ClusterError`, so ``except ClusterError``
catches everything this package raises on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class ClusterError(Exception):
    """Base class of every error raised by cluster_actors on purpose."""

    code: str = "cluster_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:  # survive pickling through Ray
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[ClusterError], state: dict[str, Any]) -> ClusterError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class NotLeader(ClusterError):
    """The operation needs the leader and this node is not it.

    ``leader_id`` names the current leader when this node knows it, else None.
    """

    code = "not_leader"

    def __init__(self, node_id: str | None = None, leader_id: str | None = None,
                 message: str | None = None) -> None:
        self.node_id = node_id
        self.leader_id = leader_id
        if message is None:
            where = f"node {node_id!r} is not the leader" if node_id else "not the leader"
            if leader_id:
                message = f"{where}; the leader is {leader_id!r}: send the request there"
            else:
                message = f"{where} and no leader is known yet: wait for an election and retry"
        super().__init__(message)


class NoQuorum(ClusterError):
    """Too few voting members are reachable for the operation."""

    code = "no_quorum"

    def __init__(self, message: str = "no quorum: too few voting members are reachable; "
                 "restore failed nodes or heal the partition, then retry") -> None:
        super().__init__(message)


class CoordinationTimeout(ClusterError, TimeoutError):
    """The operation did not finish in time; its outcome may be unknown."""

    code = "timeout"

    def __init__(self, message: str = "operation timed out: check that the cluster has a "
                 "leader and a quorum, or pass a larger timeout") -> None:
        super().__init__(message)


class ValidationFailed(ClusterError, ValueError):
    """Input (a config, an option, a strategy name) is invalid; nothing was changed.

    ``errors`` lists ``(field_path, message)`` pairs.
    """

    code = "validation_failed"

    def __init__(self, errors: Sequence[tuple[str, str]] | str,
                 message: str | None = None) -> None:
        if isinstance(errors, str):
            errors = [("", errors)]
        self.errors: list[tuple[str, str]] = [(str(p), str(m)) for p, m in errors]
        if message is None:
            lines = [f"{path}: {msg}" if path else msg for path, msg in self.errors]
            message = "validation failed, nothing was changed: " + "; ".join(lines)
        super().__init__(message)


class IllegalTransition(ValidationFailed):
    """A step that a state machine's current state does not allow: a node's
    lifecycle event, a member's status change. Nothing changed.

    ``current`` is the state, ``requested`` the refused step (an event or a
    target state) and ``allowed`` the steps the current state allows;
    ``subject`` names whose state it is (a member), if anyone's. ``message``
    replaces the default ``validation failed, nothing was changed: ...``.
    """

    code = "illegal_transition"

    def __init__(self, current: Any, requested: Any, allowed: Iterable[Any], reason: str, *,
                 subject: str | None = None, message: str | None = None) -> None:
        self.current, self.requested, self.allowed = current, requested, list(allowed)
        self.subject = subject
        super().__init__([("state" if subject is None else "status", reason)], message)


class NotFound(ClusterError, KeyError):
    """The seed's ``{error, not_found}``: no such node, member, key, config key or
    version. The components' own not-found errors derive from it."""

    code = "not_found"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class Compacted(ClusterError):
    """The key-value history no longer holds the revision asked for (a past
    read or a watch's start): read the current state and continue from its
    revision. ``revision`` is the one asked for, ``compacted_revision`` the
    last one dropped."""

    code = "compacted"

    def __init__(self, revision: int, compacted_revision: int) -> None:
        self.revision = revision
        self.compacted_revision = compacted_revision
        super().__init__(
            f"revision {revision} was compacted (the history starts after revision "
            f"{compacted_revision}): read the current state and continue from its revision")


class SyncFailed(ClusterError):
    """A data synchronisation round failed; retry it or resolve the conflicts."""

    code = "sync_failed"

    def __init__(self, message: str = "sync failed: retry, or resolve pending conflicts "
                 "with resolve_conflict(key, resolution)") -> None:
        super().__init__(message)


class UnknownStrategy(ValidationFailed):
    """A strategy name that is not installed; the message lists the available ones."""

    def __init__(self, kind: str, name: str, available: Sequence[str]) -> None:
        self.kind = kind
        self.name = name
        self.available = list(available)
        super().__init__(
            [(f"{kind}_strategy", f"unknown {kind} strategy {name!r}; available: "
              + ", ".join(sorted(self.available)))])


__all__ = [
    "ClusterError",
    "Compacted",
    "CoordinationTimeout",
    "IllegalTransition",
    "NoQuorum",
    "NotLeader",
    "SyncFailed",
    "UnknownStrategy",
    "ValidationFailed",
]
