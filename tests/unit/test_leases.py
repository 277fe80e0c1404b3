"""Leases: the replicated lease table and its ops in the cluster state
machine, the leader's expiry clock, snapshots, and the election rule (lowest
create revision leads) giving strictly increasing fencing tokens."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.cluster_state import ClusterStateMachine
from cluster_actors.core.kv import Command, InvalidCommand, KVResult
from cluster_actors.core.leases import LeaseDeadlines, LeaseResult
from cluster_actors.core.raft_types import Entry, EntryKind


class Replica:
    """A cluster state machine fed one command per log index."""

    def __init__(self) -> None:
        self.sm = ClusterStateMachine()
        self.index = 0

    def run(self, *op: Any) -> Any:
        self.index += 1
        result, duplicate = self.sm.apply(
            Entry(self.index, 1, EntryKind.NORMAL, Command("c", self.index, tuple(op))))
        assert not duplicate
        return result

    def grant(self, ttl_ms: int = 1000, lease_id: int | None = None) -> int:
        result = self.run("lease_grant", lease_id, ttl_ms)
        assert isinstance(result, LeaseResult) and result.ok
        return result.lease_id

    def lease_of(self, key: str) -> int | None:
        return self.sm.leases.lease_of(key, self.sm.data.get(key))


# ------------------------------------------------------------------ grant / revoke
def test_grant_picks_ids_deterministically_and_refuses_a_taken_id() -> None:
    a, b = Replica(), Replica()
    ids_a = [a.grant(), a.grant(500), a.grant(lease_id=10), a.grant()]
    ids_b = [b.grant(), b.grant(500), b.grant(lease_id=10), b.grant()]
    assert ids_a == ids_b == [1, 2, 10, 11]
    taken = a.run("lease_grant", 10, 1000)
    assert isinstance(taken, LeaseResult) and not taken.ok
    assert a.sm.leases.ttls() == {1: 1000, 2: 500, 10: 1000, 11: 1000}
    assert a.sm.revision == 0, "a grant changes no key, so it must not bump the revision"


def test_revoke_deletes_exactly_the_keys_still_attached() -> None:
    r = Replica()
    lease, other = r.grant(), r.grant()
    for key in ("a", "b", "c", "moved", "overwritten", "deleted"):
        assert r.run("put_lease", key, key.upper(), lease).ok
    r.run("put", "plain", 1)
    r.run("put_lease", "moved", "M", other)  # moved to another lease
    r.run("put", "overwritten", "plain now")  # a plain put detaches (etcd's rule)
    r.run("delete", "deleted")
    r.run("put", "deleted", "recreated without lease")
    before = r.sm.revision
    result = r.run("lease_revoke", lease)
    assert isinstance(result, LeaseResult) and result.ok
    assert result.deleted == ("a", "b", "c")
    assert sorted(r.sm.data) == ["deleted", "moved", "overwritten", "plain"]
    assert r.sm.revision == before + 3
    assert r.lease_of("moved") == other and r.lease_of("overwritten") is None
    assert lease not in r.sm.leases.leases
    again = r.run("lease_revoke", lease)
    assert not again.ok and again.deleted == () and r.sm.revision == before + 3


def test_put_lease_on_a_missing_lease_is_refused_and_changes_nothing() -> None:
    r = Replica()
    r.run("put", "k", "v")
    state = r.sm.state_hash()
    result = r.run("put_lease", "k", "new", 99)
    assert isinstance(result, KVResult) and not result.ok
    assert result.kv is not None and result.kv.value == "v"
    assert r.sm.state_hash() == state and r.sm.get("k").value == "v"


def test_put_lease_keeps_create_revision_and_attachment_across_updates() -> None:
    r = Replica()
    lease = r.grant()
    first = r.run("put_lease", "e/1", "x", lease)
    second = r.run("put_lease", "e/1", "y", lease)
    assert second.kv.create_revision == first.kv.create_revision
    assert second.kv.version == 2 and r.lease_of("e/1") == lease
    assert r.sm.leased_items("e/") == [(second.kv, lease)]
    assert r.sm.leased_items("f/") == []


# ---------------------------------------------------------------- guarded / fence
def test_guarded_applies_put_lease_only_while_the_compares_hold() -> None:
    r = Replica()
    lease = r.grant()
    token = r.run("put_lease", "e/me", "v1", lease).kv.create_revision
    ok = r.run("guarded", (("e/me", "create_revision", token), ("e/me", "lease", lease)),
               (("put_lease", "e/me", "v2", lease), ("put", "data", 1)))
    assert ok.ok and r.sm.get("e/me").value == "v2" and r.lease_of("e/me") == lease
    assert r.sm.get("data").value == 1
    r.run("lease_revoke", lease)
    state = r.sm.state_hash()
    stale = r.run("guarded", (("e/me", "create_revision", token),), (("put", "data", 2),))
    assert not stale.ok and r.sm.state_hash() == state


def test_guarded_with_a_put_lease_on_a_missing_lease_applies_nothing() -> None:
    r = Replica()
    state = r.sm.state_hash()
    result = r.run("guarded", (), (("put", "a", 1), ("put_lease", "b", 2, 42)))
    assert not result.ok and r.sm.state_hash() == state and "a" not in r.sm.data


def test_fence_accepts_tokens_at_least_the_highest_seen_and_reports_the_newer_one() -> None:
    r = Replica()
    first = r.run("fence", "fence/res", 5, (("put", "res", "by 5"),))
    assert first.ok and r.sm.get("fence/res").value == 5
    same = r.run("fence", "fence/res", 5, (("put", "res", "by 5 again"),))
    assert same.ok and r.sm.get("fence/res").version == 1, "an equal token must not re-write"
    newer = r.run("fence", "fence/res", 9, (("put", "res", "by 9"),))
    assert newer.ok and r.sm.get("fence/res").value == 9
    state = r.sm.state_hash()
    stale = r.run("fence", "fence/res", 5, (("put", "res", "late write by 5"),))
    assert not stale.ok and stale.prev is not None and stale.prev.value == 9
    assert r.sm.state_hash() == state and r.sm.get("res").value == "by 9"


@pytest.mark.parametrize("op", [
    ("lease_grant", None, 0),
    ("lease_grant", None, "1000"),
    ("lease_grant", -3, 1000),
    ("lease_revoke", "1"),
    ("put_lease", 7, "v", 1),
    ("put_lease", "k", "v", "1"),
    ("guarded", (("k", "colour", 1),), ()),
    ("guarded", ((["unhashable"], "value", 1),), ()),
    ("guarded", (), (("get", "k"),)),
    ("guarded", (), 5),
    ("fence", "fence/x", "5", ()),
    ("fence", "fence/x", 5, (("put", "k"),)),
    ("lease_grant", 1000),
    ("lease_grant", None, 10**400),             # every leader's next tick overflowed
    ("lease_grant", None, 86_400_001),          # longer than a day
    ("lease_grant", 2**63, 1000),
    ("lease_grant", None, True),
    ("lease_grant", None, 1000.0),
    ("fence", "fence/x", 2**64, ()),
    ("put_lease", "k" * 4097, "v", 1),
    ("guarded", (), tuple(("put", f"k{i}", i) for i in range(129))),
])
def test_malformed_lease_ops_are_rejected_and_change_nothing(op: tuple[Any, ...]) -> None:
    r = Replica()
    lease = r.grant()
    r.run("put_lease", "k", "v", lease)
    state = r.sm.state_hash()
    result = r.run(*op)
    assert isinstance(result, InvalidCommand)
    assert r.sm.state_hash() == state


def test_config_ops_still_apply_beside_the_lease_ops() -> None:
    r = Replica()
    result = r.run("config", {"bogus": True})
    assert not isinstance(result, InvalidCommand)  # dispatched to the config store
    assert r.grant() == 1


# ---------------------------------------------------------------------- snapshots
def test_snapshot_round_trip_keeps_leases_attachments_and_the_next_id() -> None:
    r = Replica()
    a, b = r.grant(700), r.grant(900)
    r.run("put_lease", "x/1", 1, a)
    r.run("put_lease", "x/2", 2, b)
    r.run("put", "x/3", 3)
    restored = ClusterStateMachine()
    restored.restore(r.sm.snapshot())
    assert restored.state_hash() == r.sm.state_hash()
    assert restored.leases.ttls() == {a: 700, b: 900}
    assert restored.leased_items("x/") == r.sm.leased_items("x/")
    twin = Replica()
    twin.sm, twin.index = restored, r.index
    for replica in (r, twin):
        assert replica.run("lease_revoke", a).deleted == ("x/1",)
        assert replica.grant() == 3
    assert twin.sm.state_hash() == r.sm.state_hash()
    empty = ClusterStateMachine()
    restored.restore(None)
    assert restored.state_hash() == empty.state_hash() and restored.leases.leases == {}


def test_state_hash_sees_the_lease_table() -> None:
    a, b = Replica(), Replica()
    a.grant(1000)
    b.grant(2000)
    assert a.sm.state_hash() != b.sm.state_hash()


# ------------------------------------------------------------ a reference model
OPS = st.one_of(
    st.tuples(st.just("grant"), st.integers(1, 3)),
    st.tuples(st.just("revoke"), st.integers(1, 4)),
    st.tuples(st.just("put_lease"), st.sampled_from("abcd"), st.integers(1, 4)),
    st.tuples(st.just("put"), st.sampled_from("abcd")),
    st.tuples(st.just("delete"), st.sampled_from("abcd")),
)


@settings(max_examples=300)
@given(st.lists(OPS, max_size=40), st.integers(0, 40))
def test_leases_match_a_reference_model_and_survive_a_snapshot(
        ops: list[tuple[Any, ...]], snapshot_at: int) -> None:
    replica = Replica()
    leases: set[int] = set()
    keys: dict[str, int | None] = {}  # key -> lease (None: plain)
    for step, op in enumerate(ops):
        if step == snapshot_at:
            restored = ClusterStateMachine()
            restored.restore(replica.sm.snapshot())
            replica.sm = restored
        kind = op[0]
        if kind == "grant":
            lease_id = replica.grant(op[1] * 100)
            leases.add(lease_id)
        elif kind == "revoke":
            result = replica.run("lease_revoke", op[1])
            assert result.ok == (op[1] in leases)
            doomed = sorted(k for k, lease in keys.items() if lease == op[1])
            assert list(result.deleted) == doomed
            for key in doomed:
                del keys[key]
            leases.discard(op[1])
        elif kind == "put_lease":
            result = replica.run("put_lease", op[1], step, op[2])
            assert result.ok == (op[2] in leases)
            if result.ok:
                keys[op[1]] = op[2]
        elif kind == "put":
            replica.run("put", op[1], step)
            keys[op[1]] = None
        else:
            replica.run("delete", op[1])
            keys.pop(op[1], None)
        assert sorted(replica.sm.data) == sorted(keys)
        assert {k: replica.lease_of(k) for k in keys} == keys
        assert set(replica.sm.leases.leases) == leases


@settings(max_examples=300)
@given(st.lists(st.one_of(st.just(("join",)), st.tuples(st.just("leave"), st.integers(0, 9)),
                          st.tuples(st.just("noise"), st.integers(0, 3))), max_size=60))
def test_the_lowest_create_revision_rule_gives_strictly_increasing_tokens(
        steps: list[tuple[Any, ...]]) -> None:
    """Contenders join (lease + key) and leave (revoke) in any order, other
    writes interleave; each new leader's token exceeds every earlier one."""
    r = Replica()
    contenders: list[int] = []
    leaders: list[tuple[str, int]] = []
    for step in steps:
        if step[0] == "join":
            lease = r.grant()
            assert r.run("put_lease", f"election/e/{lease:016x}", "me", lease).ok
            contenders.append(lease)
        elif step[0] == "leave" and contenders:
            r.run("lease_revoke", contenders.pop(step[1] % len(contenders)))
        else:
            r.run("put", f"election/e/noise{step[1]}", "not leased")
        items = r.sm.leased_items("election/e/")
        if items:
            head = min(items, key=lambda item: item[0].create_revision)[0]
            if not leaders or leaders[-1][0] != head.key:
                leaders.append((head.key, head.create_revision))
    tokens = [token for _, token in leaders]
    assert tokens == sorted(set(tokens)), f"tokens not strictly increasing: {tokens}"


# ------------------------------------------------------------ the leader's clock
def test_a_new_lease_expires_after_its_ttl_and_its_revoke_is_retried_not_repeated() -> None:
    clock = LeaseDeadlines()
    clock.sync({1: 1000, 2: 3000}, now=10.0)
    assert clock.expired(now=10.999, retry_after=1.0) == []
    assert clock.expired(now=11.0, retry_after=1.0) == [1]
    assert clock.expired(now=11.5, retry_after=1.0) == [], "revoke already in flight"
    assert clock.renew(1, 1000, now=11.5) is None, "an expiring lease cannot be saved"
    assert clock.expired(now=12.0, retry_after=1.0) == [1], "revoke proposed again"
    clock.sync({2: 3000}, now=12.1)  # the revoke applied
    assert clock.deadlines == {2: 13.0} and clock.expiring == {}


def test_keepalives_extend_and_never_shorten_a_deadline() -> None:
    clock = LeaseDeadlines()
    clock.sync({1: 1000}, now=0.0)
    assert clock.renew(1, 1000, now=0.9) == 1000
    assert clock.expired(now=1.5, retry_after=1.0) == []
    assert clock.remaining(1, now=1.5) == pytest.approx(0.4)
    clock.renew(1, 1000, now=0.2)  # a late-arriving older keepalive
    assert clock.remaining(1, now=1.5) == pytest.approx(0.4)
    assert clock.expired(now=1.9, retry_after=1.0) == [1]


def test_a_new_leader_gives_every_lease_a_full_ttl_and_a_follower_forgets_them() -> None:
    clock = LeaseDeadlines()
    clock.sync({1: 1000, 2: 2000}, now=0.0)
    assert clock.expired(now=1.2, retry_after=1.0) == [1]
    clock.reset_all({1: 1000, 2: 2000}, now=1.5)  # this node became leader again
    assert clock.expiring == {}
    assert clock.remaining(1, now=1.5) == pytest.approx(1.0)
    assert clock.remaining(2, now=1.5) == pytest.approx(2.0)
    clock.clear()
    assert clock.expired(now=100.0, retry_after=1.0) == [] and clock.remaining(1, 0) is None


def test_a_lease_of_a_day_applies_and_the_leaders_clock_handles_it() -> None:
    r = Replica()
    lease = r.grant(86_400_000)
    deadlines = LeaseDeadlines()
    deadlines.reset_all(r.sm.leases.ttls(), now=100.0)
    assert deadlines.remaining(lease, 100.0) == 86_400.0
    assert deadlines.expired(now=1e9, retry_after=1.0) == [lease]
