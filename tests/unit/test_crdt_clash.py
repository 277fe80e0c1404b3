"""A key of an ORMap that concurrent puts gave values of two CRDT types keeps
both: the map lists the clash, the replica store reports the map as a
conflict, and resolving it with a value clears it on every replica."""

from __future__ import annotations

import pytest

from cluster_actors.core.crdt import GCounter, LWWRegister, ORMap
from cluster_actors.core.store import ReplicaStore
from cluster_actors.errors import ValidationFailed


def _clashing_maps() -> tuple[ORMap, ORMap]:
    base = ORMap().put("a", "shared", GCounter({"a": 1}))
    left = base.put("a", "k", GCounter({"a": 3}))
    right = base.put("b", "k", LWWRegister("text", (1.0, "b")))
    return left, right


def test_a_map_key_with_two_crdt_types_keeps_both_and_lists_the_clash() -> None:
    left, right = _clashing_maps()
    merged = left.merge(right)
    assert merged == right.merge(left)
    [(key, values)] = merged.clashes().items()
    assert key == "k" and [v.type_name for v in values] == ["gcounter", "lwwregister"]
    assert values[0].value() == 3 and values[1].value() == "text"  # neither side dropped
    assert merged.has_clash() and not left.has_clash()
    assert merged.get("k") == values[0]  # the one shown sorts first


def test_a_map_holding_a_clash_inside_another_map_is_reported_too() -> None:
    left, right = _clashing_maps()
    outer = ORMap().put("a", "inner", left.merge(right))
    assert outer.clashes() == {} and outer.has_clash()


def test_the_store_lists_a_clashing_map_as_a_conflict_until_resolved_by_a_value() -> None:
    left, right = _clashing_maps()
    a, b = ReplicaStore("a"), ReplicaStore("b")
    a.update("m", left)
    b.update("m", right)
    b.merge_entry("m", a.entry("m"))
    assert b.conflicts() == ["m"]
    assert "m" in ReplicaStore.restore("c", {"m": b.entry("m")}).conflicts()
    with pytest.raises(ValidationFailed, match="'value'"):
        b.resolve_conflict("m", "merge")
    assert b.resolve_conflict("m", "value", {"shared": 1, "k": 7})
    assert b.conflicts() == [] and b.value("m") == {"shared": 1, "k": 7}
    a.merge_entry("m", b.entry("m"))
    assert a.conflicts() == [] and a.value("m") == {"shared": 1, "k": 7}
