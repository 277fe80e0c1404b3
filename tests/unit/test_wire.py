"""What crosses Ray calls between nodes: fast pickles of the protocol's
dataclasses, and the transport's one-pickle batches."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from ray import cloudpickle

from cluster_actors.core.kv import Command, KeyValue, KVResult
from cluster_actors.core.leases import LeaseResult
from cluster_actors.core.pickling import pickled_by_fields
from cluster_actors.core.raft_types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
)
from cluster_actors.runtime.transport import Transport, _encode

CONF = ConfState(frozenset({"n1", "n2"}), frozenset({"n3"}), frozenset({"n4"}))
ENTRY = Entry(7, 2, EntryKind.NORMAL, Command("c1", 3, ("put", "k", [1, 2]), 2))
SAMPLES = [
    ENTRY,
    Message(MessageType.APPEND, "n1", "n2", 2, index=6, log_term=2, entries=(ENTRY,), commit=5),
    HardState(2, "n1", 5), CONF,
    ConfChange(((ConfChangeType.ADD_VOTER, "n4"),)),
    Snapshot(5, 2, CONF, b"state"), ReadState(("c1", 9), 6),
    KVResult(True, 8, KeyValue("k", 1, 2, 8, 3), None),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("pickler", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
def test_protocol_values_survive_a_pickle_round_trip(sample: object, pickler: object) -> None:
    copy = pickler.loads(pickler.dumps(sample))  # type: ignore[attr-defined]
    assert copy == sample and type(copy) is type(sample)


def test_pickles_carry_field_values_not_a_state_dict() -> None:
    assert ENTRY.__reduce__() == (Entry, (7, 2, EntryKind.NORMAL, ENTRY.data))
    assert b"index" not in pickle.dumps(ENTRY)  # no field names in the pickle
    assert LeaseResult.__reduce__ is not object.__reduce__


def test_a_one_field_dataclass_pickles_too() -> None:
    @pickled_by_fields
    @dataclasses.dataclass(frozen=True)
    class One:
        a: int

    assert One.__reduce__(One(3)) == (One, (3,))


def test_a_dataclass_with_a_non_init_field_is_refused() -> None:
    @dataclasses.dataclass
    class Derived:
        a: int
        b: int = dataclasses.field(init=False, default=0)

    with pytest.raises(TypeError, match="__init__ parameter"):
        pickled_by_fields(Derived)


def test_the_transport_accepts_one_pickle_batches_and_counts_bad_ones() -> None:
    transport = Transport("c", "n2", "consensus", peers=[])
    batch = [SAMPLES[1], SAMPLES[1]]
    encoded = _encode(batch)
    assert isinstance(encoded, bytes)
    accept = lambda payload: transport.accept("c", "n1", payload, lambda m: None)  # noqa: E731
    assert accept(encoded) == batch
    assert accept(batch) == batch  # a batch plain pickle refused travels as a list
    assert accept(b"not a pickle") == [] and accept(pickle.dumps("not a list")) == []
    assert transport.stats["dropped_malformed"] == 2
    assert transport.accept("other", "n1", encoded, lambda m: None) == []
    assert transport.stats["dropped_foreign"] == 1


def test_a_batch_plain_pickle_refuses_travels_as_a_list() -> None:
    batch = [lambda: None]
    assert _encode(batch) is batch
