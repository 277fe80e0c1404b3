"""``DataStore``: blocking access to one node's eventually consistent CRDT store.

``cluster.data("n1")`` returns one. Writes apply on that node at once and
reach the other nodes through its sync strategy (within a few sync
intervals, or now with :meth:`DataStore.sync_now`); reads see that node's
replica, which may lag behind writes made elsewhere. Every key holds one CRDT
type, fixed by its first write:

================  =====================================  ======================
type              writes                                 ``get`` returns
================  =====================================  ======================
PN-counter        increment, decrement                   int
OR-set            add, remove (add wins over a           frozenset
                  concurrent remove)
LWW register      set (the newest hybrid-clock stamp     the value
                  wins)
MV register       set_value (concurrent writes are all   tuple of the values
                  kept until one is written over)
OR-map            put_field, remove_field                dict
================  =====================================  ======================

Writing a key with an operation of another type raises ValidationFailed and
changes nothing. With the ``vector_clock`` sync strategy, concurrent writes
of any type are kept side by side as siblings (:meth:`DataStore.conflicts`)
until :meth:`DataStore.resolve_conflict` or a later write settles them.
"""

from __future__ import annotations

from typing import Any

from ..core.data_ops import check_data_op
from ..core.limits import check_timeout
from ..errors import SyncFailed, ValidationFailed
from .components import DEFAULT_TIMEOUT, ComponentClient


class DataStore:
    """One node's replica of the cluster's CRDT store (see the module doc).

    Calls block; errors are the package's (``ValidationFailed`` for a bad
    write, ``SyncFailed`` when no peer is reachable for a sync,
    ``ClusterError`` when the node is not running).
    """

    def __init__(self, cluster_name: str, node_id: str, timeout: float = DEFAULT_TIMEOUT
                 ) -> None:
        self.cluster_name = cluster_name
        self.node_id = node_id
        self._sync = ComponentClient(cluster_name, node_id, "sync", timeout)

    # ------------------------------------------------------------ writes
    def update(self, op: tuple[Any, ...]) -> Any:
        """Apply one raw operation (:data:`~cluster_actors.core.data_ops.DATA_OPS`); the
        key's value after it. Checked here first (ValidationFailed, nothing sent)
        and again on the node."""
        return self._sync.data_update(check_data_op(op))

    def increment(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to the counter ``key`` (created at 0); its new value here."""
        return self.update(("counter_add", key, amount))

    def decrement(self, key: str, amount: int = 1) -> int:
        """Subtract ``amount`` from the counter ``key``; its new value here."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValidationFailed([("amount", f"must be an integer, got {amount!r}")])
        return self.update(("counter_add", key, -amount))

    def add(self, key: str, element: Any) -> frozenset[Any]:
        """Add ``element`` (a JSON scalar or a tuple of them) to the set ``key``."""
        return self.update(("set_add", key, element))

    def remove(self, key: str, element: Any) -> frozenset[Any]:
        """Remove ``element`` from the set ``key`` as seen here (a concurrent add wins)."""
        return self.update(("set_remove", key, element))

    def set(self, key: str, value: Any) -> Any:
        """Write the last-write-wins register ``key`` (``value`` must be JSON-able)."""
        return self.update(("register_set", key, value))

    def set_value(self, key: str, value: Any) -> tuple[Any, ...]:
        """Write the multi-value register ``key``: supersedes every value seen here;
        writes concurrent with this one stay as further values."""
        return self.update(("mv_set", key, value))

    def put_field(self, key: str, field: Any, value: Any) -> dict[Any, Any]:
        """Set ``field`` of the map ``key`` (each field a last-write-wins register)."""
        return self.update(("map_put", key, field, value))

    def remove_field(self, key: str, field: Any) -> dict[Any, Any]:
        """Remove ``field`` from the map ``key`` as seen here (a concurrent put wins)."""
        return self.update(("map_remove", key, field))

    def delete(self, key: str) -> None:
        """Empty ``key`` the CRDT way (registers to None, sets and maps emptied);
        counters cannot be deleted (ValidationFailed)."""
        self.update(("delete", key))

    # ------------------------------------------------------------- reads
    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` on this node, ``default`` if absent or deleted."""
        return self._sync.data_get(key, default)

    def items(self) -> dict[str, Any]:
        """Every ``key: value`` on this node."""
        return self._sync.data_items()

    def entry(self, key: str) -> dict[str, Any]:
        """``key``'s CRDT state: type, value, version vector and siblings."""
        return self._sync.data_entry(key)

    def conflicts(self) -> list[str]:
        """Keys holding concurrent siblings, pending :meth:`resolve_conflict`."""
        return self._sync.conflicts()

    def resolve_conflict(self, key: str, resolution: str, value: Any = None) -> bool:
        """Settle ``key``: ``"merge"``, ``"local_wins"`` (this node's sibling),
        ``"remote_wins"`` or ``"value"`` (``value``). The decision spreads to every
        node. True if the store changed."""
        return self._sync.resolve_conflict(key, resolution, value)

    def state_hash(self) -> str:
        """This replica's Merkle root: equal on nodes holding equal data."""
        return self._sync.state_hash()

    def vector_clock(self, key: str | None = None) -> dict[str, int]:
        """Writes seen here per replica (or ``key``'s version vector)."""
        return self._sync.get_vector_clock(key)

    # -------------------------------------------------------------- sync
    def sync_now(self, wait: bool = True, timeout: float = 10.0) -> dict[str, Any]:
        """A full anti-entropy exchange with every reachable peer. With ``wait``,
        returns the sync record (``id``, ``outcome == "completed"``, ``peers`` ...)
        once each has answered (``"nothing_to_do"`` on a node without peers), and
        raises :class:`~cluster_actors.errors.SyncFailed` (``sync_failed``, its
        ``record`` attached) if one did not within ``timeout``; no peer reachable
        raises it at once."""
        sync_id = self._sync.sync_all()
        if not wait:
            return {"id": sync_id, "outcome": "in_progress"}
        record: dict[str, Any] = self._sync.call("wait_sync", sync_id, timeout,
                                                 timeout=check_timeout(timeout) + 5.0)
        if record["outcome"] not in ("completed", "nothing_to_do"):  # the latter: no peers
            error = SyncFailed(
                f"sync {sync_id} of {self.node_id} is {record['outcome']} after {timeout} s: "
                f"no answer from {', '.join(record['awaiting']) or 'a peer'}; check that they "
                "run and are reachable, then retry (or pass a larger timeout)")
            error.record = record
            raise error
        return record

    def status(self) -> dict[str, Any]:
        """The node's sync status: strategy, cost per strategy, recent syncs, conflicts."""
        return self._sync.get_sync_status()

    def __repr__(self) -> str:
        return f"<DataStore {self.cluster_name}:{self.node_id}>"


__all__ = ["DataStore"]
