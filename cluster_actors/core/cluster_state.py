"""The state machine a cluster replicates: the key-value store (with leases,
see :mod:`.leases`) plus the versioned cluster configuration, all changed only
by committed log entries, so every node sees the same keys and leases and
switches config (strategies included) at the same log index."""

from __future__ import annotations

import pickle
from typing import Any, ClassVar

from ..errors import ClusterError, ValidationFailed
from .config import ConfigChange, ConfigStore
from .leases import LeasedKV


def refuse_config_commands(commands: Any) -> None:
    """Raise :class:`ValidationFailed` if a client batch holds a ``("config", ...)``
    op: configuration enters the log only through the validated (and, with
    ``require_approval``, approved) config path, never as a raw command."""
    for command in commands if isinstance(commands, (list, tuple)) else ():
        op = getattr(command, "op", None)
        if isinstance(op, tuple) and op and isinstance(op[0], str) and op[0] == "config":
            raise ValidationFailed([("op", "configuration changes are not KV commands: "
                                     "use cluster.config (set/update), which validates "
                                     "and approves them; nothing was proposed")])


class ClusterStateMachine(LeasedKV):
    """The lease ops of :class:`~.leases.LeasedKV`, and ``("config", record)``:
    applies a :class:`~.config.ConfigVersion` record (as a dict) prepared by
    the leader; its result is the
    :class:`~.config.ConfigChange`, or the error if the record does not fit
    (a concurrent change took its version), identically on every replica."""

    EXTRA_OPS: ClassVar[dict[str, int]] = {**LeasedKV.EXTRA_OPS, "config": 2}

    def __init__(self, initial_config: dict[str, Any] | None = None,
                 max_sessions: int = 10_000,
                 known_strategies: dict[str, list[str]] | None = None,
                 min_election_timeout: int = 10) -> None:
        """``known_strategies``: the strategy names config entries may use, per
        kind (default: the built-ins); every replica must be given the same, as
        ``min_election_timeout`` (ms, see :class:`~.config.ConfigStore`)."""
        super().__init__(max_sessions)
        self.initial_config = initial_config
        self.known_strategies = known_strategies
        self.min_election_timeout = min_election_timeout
        self.config = ConfigStore(initial_config, known_strategies=known_strategies,
                                  min_election_timeout=min_election_timeout)
        self.config_changes: list[ConfigChange] = []

    def execute_extra(self, op: tuple[Any, ...]) -> Any:
        if op[0] != "config":
            return super().execute_extra(op)
        try:
            change = self.config.apply(op[1])
        except ClusterError as error:
            return error
        if change is not None:
            self.config_changes.append(change)
        return change

    def take_config_changes(self) -> list[ConfigChange]:
        """Changes applied since the last call (for hot-reload announcements)."""
        changes, self.config_changes = self.config_changes, []
        return changes

    def snapshot(self) -> bytes:
        return pickle.dumps((super().snapshot(), self.config), protocol=pickle.HIGHEST_PROTOCOL)

    def snapshot_problem(self, blob: Any) -> str | None:
        """Why ``blob`` is not a snapshot :meth:`restore` can load, or None: a
        peer's malformed snapshot is dropped on arrival instead of failing in
        the apply loop. (It is restored into a scratch machine: snapshots are
        rare, and this node is about to load it anyway.)"""
        if blob is None:
            return None
        if not isinstance(blob, bytes):
            return f"snapshot data must be bytes, got {type(blob).__name__}"
        scratch = ClusterStateMachine(self.initial_config, self.max_sessions,
                                      known_strategies=self.known_strategies,
                                      min_election_timeout=self.min_election_timeout)
        try:
            scratch.restore(blob)
        except Exception as error:
            return f"snapshot data does not load: {type(error).__name__}: {error}"[:300]
        if not isinstance(scratch.config, ConfigStore):
            return f"snapshot config must be a ConfigStore, got {type(scratch.config).__name__}"
        if not isinstance(scratch.data, dict) or not isinstance(scratch.revision, int):
            return "snapshot state must hold a dict of keys and an integer revision"
        return None

    def restore(self, blob: bytes | None) -> None:
        if blob is None:
            limit = self.history.limit
            self.__init__(self.initial_config, self.max_sessions,  # type: ignore[misc]
                          known_strategies=self.known_strategies,
                          min_election_timeout=self.min_election_timeout)
            self.history.limit = limit
            return
        before = self.config.config
        kv_blob, self.config = pickle.loads(blob)
        super().restore(kv_blob)
        change = self.config.change_from(before)  # announced like an applied entry
        if change is not None:
            self.config_changes.append(change)
