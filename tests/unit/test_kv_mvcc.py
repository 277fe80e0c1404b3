"""The key-value store's bounded MVCC history: per-revision changes, ranges
(now and at a past revision), the changes a watch delivers, compaction, and
the history in snapshots and the state hash."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.client.kv import KVClient
from cluster_actors.client.watch import Watch
from cluster_actors.core.cluster_state import ClusterStateMachine
from cluster_actors.core.kv import Command, InvalidCommand, KeyValue, KVStateMachine
from cluster_actors.core.mvcc import ALL_KEYS, Change, in_range, prefix_end
from cluster_actors.core.raft_types import Entry, EntryKind, Role
from cluster_actors.errors import ClusterError, Compacted, NoQuorum, NotLeader, ValidationFailed
from cluster_actors.runtime import kv_watch
from cluster_actors.runtime.leases import LeaseManager

HANG_S = 30.0  # seconds; only catches hangs


class Replica:
    """A state machine fed one command per log index."""

    def __init__(self, sm: KVStateMachine | None = None) -> None:
        self.sm = sm if sm is not None else ClusterStateMachine()
        self.index = 0

    def do(self, *op: Any) -> Any:
        self.index += 1
        entry = Entry(self.index, 1, EntryKind.NORMAL, Command("c", self.index, tuple(op)))
        result, duplicate = self.sm.apply(entry)
        assert not duplicate
        return result


def keys_of(result: Any) -> list[str]:
    return [kv.key for kv in result]


def test_every_put_and_delete_is_kept_as_a_change_of_its_own_revision() -> None:
    r = Replica()
    r.do("put", "a", 1)
    r.do("put", "a", 2)
    r.do("delete", "a")
    r.do("delete", "a")  # absent: no revision, no change
    changes, upto = r.sm.changes_since(0, "a")
    assert [(c.type, c.revision, c.value) for c in changes] == [
        ("put", 1, 1), ("put", 2, 2), ("delete", 3, None)]
    assert changes[1].prev.value == 1 and changes[2].prev.value == 2
    assert upto == 3


def test_a_range_is_ordered_by_key_within_start_and_end_and_cut_at_limit() -> None:
    r = Replica()
    for key in ["jobs/b", "jobs/a", "jobsz", "jobs/c", "other"]:
        r.do("put", key, key.upper())
    assert keys_of(r.sm.range_view("jobs/", "jobs0")) == ["jobs/a", "jobs/b", "jobs/c"]
    assert keys_of(r.sm.range_view("jobs/", prefix_end("jobs/"))) == [
        "jobs/a", "jobs/b", "jobs/c"]
    assert keys_of(r.sm.range_view("jobs/b")) == ["jobs/b"]  # end None: the key alone
    assert keys_of(r.sm.range_view("jobsz", ALL_KEYS)) == ["jobsz", "other"]
    limited = r.sm.range_view("jobs/", "jobs0", limit=2)
    assert keys_of(limited) == ["jobs/a", "jobs/b"] and limited.more
    assert not r.sm.range_view("jobs/", "jobs0", limit=3).more
    assert limited.revision == 5


def test_a_range_at_a_past_revision_shows_the_keyspace_as_it_was() -> None:
    r = Replica()
    r.do("put", "k/1", "a")      # 1
    r.do("put", "k/2", "b")      # 2
    r.do("put", "k/1", "c")      # 3
    r.do("delete", "k/2")        # 4
    r.do("put", "k/3", "d")      # 5
    past = r.sm.range_view("k/", "k0", revision=2)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in past] == [("k/1", "a", 1),
                                                                     ("k/2", "b", 2)]
    assert past.revision == 2
    assert [kv.value for kv in r.sm.range_view("k/", "k0", revision=4)] == ["c"]
    assert list(r.sm.range_view("k/", "k0", revision=0)) == []


def test_a_future_revision_is_refused_and_a_compacted_one_raises_compacted() -> None:
    r = Replica()
    for i in range(5):
        r.do("put", "k", i)
    with pytest.raises(ValidationFailed, match="future"):
        r.sm.range_view("k", revision=6)
    assert r.do("compact", 3) == 3
    assert r.sm.compacted_revision == 3
    with pytest.raises(Compacted) as caught:
        r.sm.range_view("k", revision=2)
    assert caught.value.code == "compacted"
    assert r.sm.range_view("k", revision=3)[0].value == 2  # the compacted revision itself stays
    with pytest.raises(Compacted):
        r.sm.changes_since(2, "k")  # a watch from revision 3 needs the change of revision 3
    assert [c.revision for c in r.sm.changes_since(3, "k")[0]] == [4, 5]


def test_compacting_past_the_current_revision_is_rejected_and_changes_nothing() -> None:
    r = Replica()
    r.do("put", "k", 1)
    before = r.sm.state_hash()
    assert isinstance(r.do("compact", 2), InvalidCommand)
    assert isinstance(r.do("compact", "1"), InvalidCommand)
    assert r.sm.compacted_revision == 0 and r.sm.state_hash() == before


def test_the_history_is_bounded_by_mvcc_history_and_compacts_the_oldest() -> None:
    r = Replica(ClusterStateMachine())
    r.sm.history.limit = 3
    for i in range(10):
        r.do("put", f"k{i % 2}", i)
    assert r.sm.compacted_revision == 7
    assert [c.revision for c in r.sm.changes_since(7, "", ALL_KEYS)[0]] == [8, 9, 10]


def test_changes_since_follow_a_prefix_and_stop_at_the_limit() -> None:
    r = Replica()
    for key in ["a/1", "b/1", "a/2", "a/1"]:
        r.do("put", key, 0)
    changes, upto = r.sm.changes_since(0, "a/", prefix_end("a/"), limit=2)
    assert [(c.key, c.revision) for c in changes] == [("a/1", 1), ("a/2", 3)]
    assert upto == 3  # continue after the last one returned
    changes, upto = r.sm.changes_since(upto, "a/", prefix_end("a/"))
    assert [(c.key, c.revision) for c in changes] == [("a/1", 4)] and upto == 4
    assert r.sm.changes_since(4, "a/", prefix_end("a/")) == ([], 4)


def test_a_revoked_lease_deletes_its_keys_as_changes_a_watch_sees() -> None:
    r = Replica()
    lease = r.do("lease_grant", None, 1000).lease_id
    assert r.do("put_lease", "eph/x", "v", lease).ok
    r.do("lease_revoke", lease)
    changes, _ = r.sm.changes_since(0, "eph/", prefix_end("eph/"))
    assert [(c.type, c.key) for c in changes] == [("put", "eph/x"), ("delete", "eph/x")]


def test_the_history_travels_in_snapshots_and_changes_the_state_hash() -> None:
    a, b = Replica(), Replica()
    for r in (a, b):
        r.do("put", "k", 1)
        r.do("put", "k", 2)
    assert a.sm.state_hash() == b.sm.state_hash()
    b.do("compact", 1)
    a.do("get", "k")  # same index, no compaction
    assert a.sm.state_hash() != b.sm.state_hash()
    restored = ClusterStateMachine()
    restored.restore(b.sm.snapshot())
    assert restored.state_hash() == b.sm.state_hash()
    assert restored.compacted_revision == 1
    assert [c.revision for c in restored.changes_since(1, "k")[0]] == [2]


def test_a_snapshot_without_history_restores_with_everything_compacted() -> None:
    import pickle

    r = Replica(KVStateMachine())
    r.do("put", "k", 1)
    data, revision, applied, sessions, _history = pickle.loads(r.sm.snapshot())
    old = pickle.dumps((data, revision, applied, sessions))
    restored = KVStateMachine()
    restored.restore(old)
    assert restored.compacted_revision == 1 and restored.get("k").value == 1


def test_prefix_end_covers_exactly_the_prefix() -> None:
    assert prefix_end("jobs/") == "jobs0"
    assert prefix_end("") == ALL_KEYS
    assert in_range("jobs/x", "jobs/", prefix_end("jobs/"))
    assert not in_range("jobs0", "jobs/", prefix_end("jobs/"))
    assert prefix_end("a\U0010ffff") == "b"


def test_bad_range_arguments_are_refused() -> None:
    sm = KVStateMachine()
    for kwargs in ({"start": 1}, {"start": "a", "end": 2}, {"start": "a", "limit": 0},
                   {"start": "a", "revision": -1}, {"start": "a", "limit": True}):
        with pytest.raises(ValidationFailed):
            sm.range_view(**kwargs)


KEYS = st.sampled_from(["a", "a/1", "a/2", "b", "b/1", "c"])
OPS = st.one_of(
    st.tuples(st.just("put"), KEYS, st.integers(0, 5)),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("cas"), KEYS, st.one_of(st.none(), st.integers(0, 5)),
              st.one_of(st.none(), st.integers(0, 5))),
)
RANGES = st.sampled_from([("a", None), ("a/", "a0"), ("a", "b/1"), ("", ALL_KEYS), ("b", "c")])


@settings(max_examples=200, deadline=None)
@given(st.lists(OPS, max_size=30), RANGES, st.data())
def test_a_range_at_revision_r_equals_the_state_replayed_up_to_r(
        ops: list[tuple[Any, ...]], bounds: tuple[str, str | None], data: st.DataObject) -> None:
    live = Replica()
    states: dict[int, list[tuple[Any, ...]]] = {}
    replay = Replica()
    states[0] = []
    for op in ops:
        live.do(*op)
        replay.do(*op)
        states[replay.sm.revision] = [(kv.key, kv.value, kv.mod_revision, kv.version)
                                      for kv in replay.sm.range_view(*bounds)]
    revision = data.draw(st.integers(0, live.sm.revision))
    past = live.sm.range_view(*bounds, revision=revision)
    assert [(kv.key, kv.value, kv.mod_revision, kv.version) for kv in past] == states[revision]
    # and the changes after r, applied to the view at r, give the current view
    view = {kv.key: kv for kv in past}
    for change in live.sm.changes_since(revision, *bounds)[0]:
        if change.kv is None:
            view.pop(change.key, None)
        else:
            view[change.key] = change.kv
    assert sorted(view.items()) == [(kv.key, kv) for kv in live.sm.range_view(*bounds)]


class FakeRaft:
    role = Role.LEADER
    lead = "n1"


class FakeCore:
    """What the watch long poll uses of a consensus node, without Ray."""

    node_id = "n1"

    def __init__(self) -> None:
        self.sm = ClusterStateMachine()
        self.raft = FakeRaft()
        self.leases = LeaseManager(self)
        self.replica = Replica(self.sm)

    def require_started(self) -> None:
        pass

    async def _confirm_read(self, timeout: float) -> None:
        pass

    def apply(self, *op: Any) -> None:
        self.replica.do(*op)
        self.leases.after_apply()


def test_a_watch_long_poll_waits_for_the_next_applied_change_and_returns_it() -> None:
    async def scenario() -> None:
        core = FakeCore()
        core.apply("put", "w/a", 1)
        start = await kv_watch.watch_events(core, "w/", "w0", None, 1.0)
        assert start == {"changes": [], "revision": 1}  # a watch from now
        poll = asyncio.ensure_future(kv_watch.watch_events(core, "w/", "w0", 1, 30.0))
        await asyncio.sleep(0.01)
        core.apply("put", "other", 0)  # outside the range: the poll keeps waiting
        await asyncio.sleep(0.01)
        assert not poll.done()
        core.apply("put", "w/b", 2)
        answer = await asyncio.wait_for(poll, 5.0)
        assert [(c.key, c.revision) for c in answer["changes"]] == [("w/b", 3)]
        assert answer["revision"] == 3
        quiet = await kv_watch.watch_events(core, "w/", "w0", 3, 0.01)
        assert quiet == {"changes": [], "revision": 3}
        core.raft.role = Role.FOLLOWER
        with pytest.raises(NotLeader):
            await kv_watch.watch_events(core, "w/", "w0", 3, 0.01)

    asyncio.run(scenario())


def test_a_watch_long_poll_from_a_compacted_revision_raises_compacted() -> None:
    async def scenario() -> None:
        core = FakeCore()
        for i in range(3):
            core.apply("put", "w/a", i)
        core.apply("compact", 2)
        with pytest.raises(Compacted):
            await kv_watch.watch_events(core, "w/", "w0", 1, 0.01)
        answer = await kv_watch.watch_events(core, "w/", "w0", 2, 0.01)
        assert [c.revision for c in answer["changes"]] == [3]

    asyncio.run(scenario())


class ScriptedLeader:
    """A stand-in for the session: answers each leader call from a script of
    ``(expected method, expected args, answer or error)``, recording the calls."""

    def __init__(self, script: list[tuple[str, tuple[Any, ...], Any]]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        self.calls.append((method, args))
        expected_method, expected_args, answer = self.script.pop(0)
        assert (method, args[:len(expected_args)]) == (expected_method, expected_args)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def put_change(revision: int, key: str, value: Any) -> Change:
    return Change(revision, key, KeyValue(key, value, revision, revision, 1), None)


def test_items_is_one_linearizable_read_prefix_call_on_the_leader() -> None:
    records = [KeyValue("p/a", 1, 2, 2, 1), KeyValue("p/b", 2, 3, 3, 1)]
    leader = ScriptedLeader([("read_prefix", ("p/",), records)])
    assert KVClient(leader).items("p/") == records  # type: ignore[arg-type]
    assert leader.calls == [("read_prefix", ("p/",))]  # no second, local call


def test_a_client_watch_resumes_after_its_last_revision_through_a_leader_change() -> None:
    leader = ScriptedLeader([
        ("watch_events", ("w/", "w0", None), {"changes": [], "revision": 5}),
        ("watch_events", ("w/", "w0", 5), {"changes": [put_change(6, "w/a", 1)], "revision": 6}),
        ("watch_events", ("w/", "w0", 6), NoQuorum("the leader died")),  # a failover
        ("watch_events", ("w/", "w0", 6), {"changes": [put_change(7, "w/b", 2)], "revision": 7}),
    ])
    watch = Watch(leader, "w/", "w0")  # type: ignore[arg-type]
    first, second = watch.get(timeout=HANG_S), watch.get(timeout=HANG_S)
    assert [(e.type, e.key, e.value, e.revision) for e in (first, second)] == [
        ("put", "w/a", 1, 6), ("put", "w/b", 2, 7)]  # none lost, none repeated
    assert watch.revision == 7 and leader.script == []


def test_a_client_watch_from_a_compacted_revision_raises_compacted_a_cluster_error() -> None:
    leader = ScriptedLeader([("watch_events", ("w/", "w0", 2), Compacted(3, 4))])
    with pytest.raises(ClusterError) as caught:
        Watch(leader, "w/", "w0", start_revision=3)  # type: ignore[arg-type]
    assert isinstance(caught.value, Compacted) and caught.value.code == "compacted"
    compacted_later = ScriptedLeader([
        ("watch_events", ("w/", "w0", None), {"changes": [], "revision": 5}),
        ("watch_events", ("w/", "w0", 5), Compacted(6, 9)),
    ])
    watch = Watch(compacted_later, "w/", "w0")  # type: ignore[arg-type]
    with pytest.raises(Compacted):
        watch.get(timeout=HANG_S)
