"""The contract of a sync strategy: one sync round as a pure message protocol.

A sync strategy makes the per-node CRDT stores
(:class:`~cluster_actors.core.store.ReplicaStore`) of a cluster converge. It
decides and never acts: it reads and merges into the store it is handed and
returns the messages to send; whoever carries it (the node's sync actor on
Ray, or :class:`strategies.sync.SyncSimulation` in one process) delivers them.

Protocol, per replica (one strategy instance serves exactly one replica, so
any state it keeps, such as gossip rumours or a causal delivery buffer, is
that replica's; :meth:`SyncStrategy.fresh` makes a sibling instance with the
same options for another replica):

1. :meth:`SyncStrategy.on_local_update` right after every local write to the
   store (it may return messages to send at once, e.g. a causal broadcast).
2. :meth:`SyncStrategy.start_round` once per sync period, with the peers this
   replica can currently reach; returns the round's opening messages.
3. :meth:`SyncStrategy.on_message` for every message addressed to this
   replica; returns the replies. A round is over when no message is left.

Messages may be delayed, reordered, duplicated or dropped by the carrier; a
strategy must stay correct (converge once messages flow again, never corrupt
the store) under all of these. Nothing here reads a clock: time arrives as
``now`` (float seconds) and randomness as an injected :class:`random.Random`.

Cost is measured honestly: ``SyncMessage.size_bytes`` is the length of the
pickled ``(kind, payload)`` (:func:`encoded_size`), the same encoding Ray uses
to carry it, so strategies compare on bytes and message counts
(:class:`SyncStats`).
"""

from __future__ import annotations

import pickle
import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from cluster_actors.errors import ValidationFailed

if TYPE_CHECKING:
    from cluster_actors.core.store import ReplicaStore

__all__ = ["SyncMessage", "SyncStats", "SyncStrategy", "encoded_size"]


def encoded_size(kind: str, payload: Any) -> int:
    """Bytes on the wire for a message: ``len(pickle.dumps((kind, payload)))``."""
    return len(pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL))


@dataclass(frozen=True)
class SyncMessage:
    """One message of a sync protocol, from replica ``src`` to replica ``dst``.

    ``kind`` names the protocol step (each strategy documents its kinds);
    ``payload`` is plain picklable data (no live objects); ``size_bytes`` is
    its encoded size and ``entries`` the number of store entries (key states)
    it carries. Build messages with :meth:`make`, which measures the size.
    """

    src: str
    dst: str
    kind: str
    payload: Any
    size_bytes: int
    entries: int = 0

    @classmethod
    def make(cls, src: str, dst: str, kind: str, payload: Any, *, entries: int = 0
             ) -> SyncMessage:
        """A message whose ``size_bytes`` is :func:`encoded_size` of ``(kind, payload)``."""
        return cls(src, dst, kind, payload, encoded_size(kind, payload), entries)


@dataclass
class SyncStats:
    """What synchronisation cost: bytes and messages sent, rounds run, entries shipped."""

    bytes_sent: int = 0
    messages: int = 0
    rounds: int = 0
    keys_transferred: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def count(self, message: SyncMessage) -> None:
        """Account for one message put on the wire."""
        self.bytes_sent += message.size_bytes
        self.messages += 1
        self.keys_transferred += message.entries
        self.by_kind[message.kind] = self.by_kind.get(message.kind, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {"bytes_sent": self.bytes_sent, "messages": self.messages,
                "rounds": self.rounds, "keys_transferred": self.keys_transferred,
                "by_kind": dict(self.by_kind)}


class SyncStrategy(ABC):
    """A sync strategy plug-in (entry point group ``cluster_actors.sync``).

    Subclasses set ``name`` and ``option_defaults`` (option name -> default);
    ``__init__(**options)`` rejects unknown options and bad values with
    :class:`~cluster_actors.errors.ValidationFailed`, naming the valid ones.
    ``_validate`` may be overridden to check values (return errors as
    ``(option, message)`` pairs).
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "sync"
    option_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        errors = [(f"sync.{key}", f"unknown option for sync strategy {self.name!r}; valid: "
                   + (", ".join(sorted(self.option_defaults)) or "none")) for key in unknown]
        if not errors:
            merged = {**self.option_defaults, **options}
            errors = [(f"sync.{key}", msg) for key, msg in self._validate(merged)]
        if errors:
            raise ValidationFailed(errors)
        self.options: dict[str, Any] = {**self.option_defaults, **options}

    def _validate(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Errors in option values as ``(option, message)``; none by default."""
        return []

    def fresh(self) -> SyncStrategy:
        """A new instance with the same options, for another replica."""
        return type(self)(**self.options)

    def describe(self) -> dict[str, Any]:
        """Name, kind, options and a one-line summary, for status pages and logs."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        return {"name": self.name, "kind": self.kind, "options": dict(self.options),
                "summary": doc[0] if doc else ""}

    def on_local_update(self, local: ReplicaStore, key: str, rng: random.Random
                        ) -> list[SyncMessage]:
        """Called after every local write of ``key``; messages to send now (none by default)."""
        return []

    @abstractmethod
    def start_round(self, local: ReplicaStore, peers: Sequence[str], rng: random.Random
                    ) -> list[SyncMessage]:
        """Open one sync round with some of ``peers`` (the reachable ones); its messages."""

    @abstractmethod
    def on_message(self, local: ReplicaStore, message: SyncMessage, rng: random.Random
                   ) -> list[SyncMessage]:
        """Handle a message addressed to ``local``; the replies to send.

        A malformed payload raises :class:`~cluster_actors.errors.ValidationFailed`
        before the store is changed; the carrier drops the message and counts it.
        """

    def status(self) -> dict[str, Any]:
        """Strategy-specific state for ``sync_status()`` (e.g. buffered updates)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.options.items())})"
