"""Local write operations on a replica's CRDT store: checked, then applied.

The sync component's ``data_update`` (and the ``DataStore`` client, before it
sends) calls :func:`check_data_op`; the component then applies the checked
op with :func:`apply_data_op`. Both raise
:class:`~cluster_actors.errors.ValidationFailed` for anything they refuse and
leave the store unchanged then: wrong types, unknown ops, values JSON cannot
carry (NaN, infinities, unpicklable objects, nesting too deep), keys and
values beyond the bounds below, counts beyond :data:`~.vclock.MAX_COUNT`.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ValidationFailed
from .crdt import CRDT, LWWRegister, MVRegister, ORMap, ORSet, PNCounter
from .store import ReplicaStore
from .vclock import MAX_COUNT

__all__ = ["DATA_OPS", "MAX_DATA_KEY_LENGTH", "MAX_DATA_VALUE_BYTES", "apply_data_op",
           "check_data_op"]

DATA_OPS: dict[str, tuple[str, ...]] = {
    "counter_add": ("key", "amount"),        # PN-counter; a negative amount decrements
    "set_add": ("key", "element"),           # add-wins observed-remove set
    "set_remove": ("key", "element"),
    "register_set": ("key", "value"),        # last-write-wins register (HLC stamps)
    "mv_set": ("key", "value"),              # multi-value register: concurrent writes kept
    "map_put": ("key", "field", "value"),    # observed-remove map of LWW registers
    "map_remove": ("key", "field"),
    "delete": ("key",),                      # the type's empty state (not for counters)
}
"""Local write operations, ``(name, *arguments)``, accepted by ``data_update``."""

#: Bounds of a local data operation's key and of each value, as JSON.
MAX_DATA_KEY_LENGTH = 4096
MAX_DATA_VALUE_BYTES = 1_572_864  # 1.5 MiB, as etcd's request limit


def _short(value: Any) -> str:
    """A bounded repr for error messages (of anything, however deep)."""
    try:
        text = repr(value)
    except Exception:  # e.g. RecursionError, or a broken __repr__
        return f"<a {type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def check_data_op(op: Any) -> tuple[Any, ...]:
    """``op`` as a tuple if it names a known operation with the right arity and a
    str key; ValidationFailed listing the valid operations otherwise."""
    valid = "; ".join(f"({name}, {', '.join(args)})" for name, args in DATA_OPS.items())
    if (not isinstance(op, (tuple, list)) or not op or not isinstance(op[0], str)
            or op[0] not in DATA_OPS):
        raise ValidationFailed([("op", f"unknown data operation {_short(op)}; valid: {valid}")])
    args = DATA_OPS[op[0]]
    if len(op) != 1 + len(args):
        raise ValidationFailed([("op", f"{op[0]} takes ({', '.join(args)}), got "
                                 f"{len(op) - 1} argument(s)")])
    if not isinstance(op[1], str) or not 0 < len(op[1]) <= MAX_DATA_KEY_LENGTH:
        raise ValidationFailed([("op.key", f"keys are non-empty strings of at most "
                                 f"{MAX_DATA_KEY_LENGTH} characters, got {_short(op[1])}")])
    if op[0] == "counter_add" and (isinstance(op[2], bool) or not isinstance(op[2], int)
                                   or abs(op[2]) > MAX_COUNT):
        raise ValidationFailed([("op.amount", f"must be an integer within ±(2**63-1), "
                                 f"got {_short(op[2])}")])
    for name, arg in zip(args[1:], op[2:], strict=True):
        try:
            size = len(json.dumps(arg, allow_nan=False))
        except (TypeError, ValueError, RecursionError) as error:
            raise ValidationFailed([(f"op.{name}", (
                f"must be JSON data (no NaN or infinity, not nested too deep): "
                f"{type(error).__name__}: {error}"[:300]))]) from None
        if size > MAX_DATA_VALUE_BYTES:
            raise ValidationFailed([(f"op.{name}", (
                f"is {size} bytes as JSON, more than the {MAX_DATA_VALUE_BYTES} allowed"))])
    return tuple(op)


def _typed(store: ReplicaStore, key: str, cls: type[CRDT]) -> CRDT | None:
    current = store.get(key)
    if current is not None and not isinstance(current, cls):
        raise ValidationFailed([(f"op.{key}", f"key holds a {type(current).__name__}, "
                                 f"not a {cls.__name__}")])
    return current


def apply_data_op(store: ReplicaStore, op: tuple[Any, ...], now: float) -> None:
    """Apply a checked operation to ``store`` as a local write at wall time ``now``.

    ValidationFailed (nothing changed) when the key holds another type or a
    value cannot be stored (not JSON-able, a counter cannot be deleted ...).
    """
    name, key, *args = op
    rid = store.replica_id
    try:
        if name == "counter_add":
            _typed(store, key, PNCounter)
            store.update(key, lambda c: (c or PNCounter()).increment(rid, args[0]))
        elif name == "set_add":
            _typed(store, key, ORSet)
            store.update(key, lambda s: (s or ORSet()).add(rid, args[0]))
        elif name == "set_remove":
            if _typed(store, key, ORSet) is not None:
                store.update(key, lambda s: s.remove(args[0]))
        elif name == "register_set":
            store.put_register(key, args[0], now)
        elif name == "mv_set":
            _typed(store, key, MVRegister)
            store.update(key, lambda r: (r or MVRegister()).assign(rid, args[0]))
        elif name == "map_put":
            _typed(store, key, ORMap)
            field = LWWRegister(args[1], store.timestamp(now))
            store.update(key, lambda m: (m or ORMap()).put(rid, args[0], field))
        elif name == "map_remove":
            if _typed(store, key, ORMap) is not None:
                store.update(key, lambda m: m.remove(args[0]))
        else:  # delete
            store.delete(key, now)
    except ValidationFailed:
        raise
    except (TypeError, ValueError, RecursionError) as error:
        raise ValidationFailed([(f"op.{key}", f"{name}: {error}"[:300])]) from error
