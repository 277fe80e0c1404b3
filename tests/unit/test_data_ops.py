"""The sync component's local data operations: every refused op is a
ClusterError and changes nothing (Hypothesis fuzz of the pure checks), and a
write that cannot be saved is rolled back before anyone sees it."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_actors.actors.sync import SyncActor
from cluster_actors.core.crdt import LWWRegister, PNCounter
from cluster_actors.core.data_ops import (
    DATA_OPS,
    MAX_DATA_KEY_LENGTH,
    MAX_DATA_VALUE_BYTES,
    apply_data_op,
    check_data_op,
)
from cluster_actors.core.store import ReplicaStore
from cluster_actors.errors import ClusterError, SyncFailed, ValidationFailed


def _store() -> ReplicaStore:
    store = ReplicaStore("n1@x")
    store.update("count", PNCounter({"n1@x": 2}))
    store.update("reg", LWWRegister("v", (1.0, "n1@x")))
    return store


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not picklable")


_deep: list[Any] = []
for _ in range(5000):
    _deep = [_deep]

_nasty = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.binary(max_size=20), st.sampled_from([math.nan, math.inf, -math.inf, 10**400,
                                             lambda: 1, _Unpicklable(), object(), _deep,
                                             {1, 2}, {"a": math.nan}, "x" * 5000,
                                             b"x" * 10, ("a", math.nan)]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                         st.integers(), max_size=3),
)
_ops = st.one_of(
    _nasty,
    st.tuples(st.sampled_from(sorted(DATA_OPS)), _nasty),
    st.tuples(st.sampled_from(sorted(DATA_OPS)), _nasty, _nasty),
    st.tuples(st.sampled_from(sorted(DATA_OPS)), _nasty, _nasty, _nasty),
    st.tuples(st.sampled_from(sorted(DATA_OPS)), st.sampled_from(["count", "reg", "new"]),
              _nasty),
    st.tuples(st.sampled_from(sorted(DATA_OPS)), st.sampled_from(["count", "reg", "new"]),
              _nasty, _nasty),
    st.lists(_nasty, max_size=4),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=_ops)
def test_a_refused_data_op_is_a_cluster_error_and_changes_nothing(op: Any) -> None:
    store = _store()
    before = (store.state_hash(), store.change_seq)
    try:
        checked = check_data_op(op)
        apply_data_op(store, checked, 100.0)
    except ClusterError:
        assert (store.state_hash(), store.change_seq) == before
        return
    # accepted: a well-formed op on a key of its type, applied as a local write
    assert isinstance(checked, tuple) and checked[0] in DATA_OPS


@pytest.mark.parametrize("op", [
    ("counter_add", "count", 10**30), ("counter_add", "count", -(10**30)),
    ("register_set", "reg", math.nan), ("register_set", "reg", lambda: 1),
    ("register_set", "reg", _deep), ("set_add", "k" * (MAX_DATA_KEY_LENGTH + 1), 1),
    ("register_set", "reg", "x" * (MAX_DATA_VALUE_BYTES + 1)), ([1], "k", 1),
    ("counter_add", "count", 1.5), ("map_put", "m", math.inf, 1),
])
def test_an_out_of_bounds_op_is_refused_before_it_is_applied(op: Any) -> None:
    with pytest.raises(ValidationFailed):
        check_data_op(op)


def test_a_counter_add_overflowing_the_bound_is_refused_and_changes_nothing() -> None:
    store = _store()
    apply_data_op(store, check_data_op(("counter_add", "c", 2**63 - 1)), 1.0)
    before = store.state_hash()
    with pytest.raises(ValidationFailed, match="exceed"):
        apply_data_op(store, check_data_op(("counter_add", "c", 1)), 1.0)
    assert store.state_hash() == before


class _FullDisk:
    def save(self, entries: dict[str, bytes]) -> None:
        raise OSError(28, "No space left on device")


def _sync_actor(store: ReplicaStore) -> Any:
    actor = object.__new__(SyncActor.__ray_actor_class__)
    actor.node_id, actor.started, actor.mode = "n1", True, "serve"
    actor.store, actor.storage, actor._saved_seq = store, _FullDisk(), store.change_seq
    return actor


@pytest.mark.parametrize("op", [("counter_add", "count", 5), ("set_add", "new", "x"),
                                ("register_set", "reg", "w")])
def test_data_update_whose_save_fails_leaves_memory_unchanged(op: tuple[Any, ...]) -> None:
    store = _store()
    actor = _sync_actor(store)
    before = (store.state_hash(), store.keys(), store.value("count"), store.value("reg"))
    with pytest.raises(SyncFailed, match="not saved") as raised:
        asyncio.run(actor.data_update(op))
    assert "No space left" in str(raised.value)
    assert (store.state_hash(), store.keys(), store.value("count"),
            store.value("reg")) == before
