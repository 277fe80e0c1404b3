"""Bounded input, checked before anything is proposed: the pure checks of
core/limits, the kv client's local check (no Ray: nothing may be sent), and
the consensus actor's remote ``submit``/``propose``/``lease_grant`` run
in-process on a one-node cluster, fuzzed with wrong types, huge numbers,
NaN, unpicklable and oversized values. Every refusal is a ClusterError with
a code, and the state machine's state hash does not move."""

from __future__ import annotations

import asyncio
import contextlib
import math
import pickle
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_actors.actors.consensus import ConsensusActor
from cluster_actors.client import KVClient
from cluster_actors.client.session import LeaderSession
from cluster_actors.core.cluster_state import ClusterStateMachine
from cluster_actors.core.kv import Command, InvalidCommand
from cluster_actors.core.leases import MAX_LEASE_TTL_MS
from cluster_actors.core.limits import (
    DEFAULT_MAX_VALUE_BYTES,
    MAX_TIMEOUT_S,
    check_command,
    check_op,
    check_timeout,
    check_value,
    lease_ttl_ms,
)
from cluster_actors.core.raft_types import Entry, EntryKind, Role
from cluster_actors.errors import ClusterError, CoordinationTimeout, ValidationFailed
from cluster_actors.options import ClusterOptions

HANG = 30.0  # seconds; only catches hangs
EXTRA = ClusterStateMachine.EXTRA_OPS
BIG = b"x" * (32 << 20)


def _explode() -> None:
    raise RuntimeError("this value cannot be loaded")


class Unloadable:
    """Pickles, but loading it raises (a restarted node could not read its log)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ())


def check(op: Any, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES, min_ttl: int = 200) -> None:
    check_op(op, extra_ops=EXTRA, max_value_bytes=max_value_bytes, min_lease_ttl_ms=min_ttl)


# ------------------------------------------------------------ the pure checks
@pytest.mark.parametrize(("op", "fragment"), [
    (("put", None, 1), "keys are strings"),
    (("put", ["a"], 1), "keys are strings"),
    (("put", "k", lambda: 1), "plain pickle of the log refuses it"),
    (("put", "k", BIG), "max_value_bytes = 1572864"),
    (("put", "k", threading.Lock()), "plain pickle"),
    (("put", "k", Unloadable()), "does not load back"),
    (("cas", "k", 1, BIG), "the new value of cas"),
    (("txn", (), (("put", "a", BIG[:1 << 20]), ("put", "b", BIG[:1 << 20])), ()),
     "together"),
    (("put_lease", "k", lambda: 1, 1), "plain pickle"),
    (("lease_grant", None, 10**400), "one day"),
    (("lease_grant", None, 100), "shorter than the election timeout (200 ms)"),
    (("lease_grant", None, math.inf), "whole number of ms"),
    (("config", lambda: 1), "plain pickle"),
])
def test_a_bad_op_is_refused_with_a_cluster_error_that_says_what_to_do(
        op: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        check(op)
    error = caught.value
    assert isinstance(error, ClusterError) and error.code == "validation_failed"
    assert fragment in error.message and len(error.message) < 600


def test_values_up_to_max_value_bytes_pass_and_one_byte_more_does_not() -> None:
    limit = 4096
    size = len(pickle.dumps(b"", protocol=5))
    fits = b"x" * (limit - size - 8)
    while len(pickle.dumps(fits, protocol=5)) < limit:
        fits += b"x"
    assert check_value(fits, limit) == limit
    check(("put", "k" * 4096, fits), max_value_bytes=limit)  # the key does not count
    with pytest.raises(InvalidCommand, match=f"takes {limit + 1} bytes"):
        check(("put", "k", fits + b"x"), max_value_bytes=limit)


def test_a_command_s_session_fields_are_bounded() -> None:
    def refused(command: Any) -> bool:
        try:
            check_command(command, extra_ops=EXTRA, max_value_bytes=1024)
        except InvalidCommand:
            return True
        return False

    assert not refused(Command("c", 1, ("put", "k", 1), 0))
    assert refused(("put", "k", 1))
    assert refused(Command("", 1, ("put", "k", 1)))
    assert refused(Command("c" * 257, 1, ("put", "k", 1)))
    assert refused(Command("c", 0, ("put", "k", 1)))
    assert refused(Command("c", 2**63, ("put", "k", 1)))
    assert refused(Command("c", True, ("put", "k", 1)))
    assert refused(Command("c", 1, ("put", "k", 1), -1))
    assert refused(Command("c", 1, ("put", "k", 1), "0"))


@pytest.mark.parametrize("ttl", [math.inf, -math.inf, math.nan, -1, 0, 0.05, 86_401, 10**400,
                                 True, "2", None])
def test_a_lease_ttl_outside_the_election_timeout_and_a_day_is_refused(ttl: Any) -> None:
    with pytest.raises(ValidationFailed, match="ttl"):
        lease_ttl_ms(ttl, min_ms=200)


def test_a_lease_ttl_within_bounds_becomes_whole_milliseconds() -> None:
    assert lease_ttl_ms(0.2, min_ms=200) == 200
    assert lease_ttl_ms(2, min_ms=200) == 2000
    assert lease_ttl_ms(86_400, min_ms=200) == MAX_LEASE_TTL_MS


@pytest.mark.parametrize("timeout", [math.nan, -1, 0, -math.inf, None, "5", True])
def test_a_remote_timeout_must_be_a_positive_number(timeout: Any) -> None:
    with pytest.raises(ValidationFailed, match="positive number of seconds"):
        check_timeout(timeout)


def test_a_remote_timeout_beyond_an_hour_is_cut_to_an_hour() -> None:
    assert check_timeout(math.inf) == check_timeout(10**400) == MAX_TIMEOUT_S
    assert check_timeout(2) == 2.0


# ------------------------------------------------- the kv client, offline
class WouldSend(Exception):
    """Raised where the client would talk to the cluster: the input passed."""


class OfflineSession(LeaderSession):
    def __init__(self) -> None:
        super().__init__("offline", list, ClusterOptions(), timeout=0.05)

    def _ensure_sender(self) -> None:
        raise WouldSend

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        raise WouldSend


class OfflineKV(KVClient):
    def __init__(self) -> None:
        super().__init__(OfflineSession())


@pytest.mark.parametrize("call", [
    lambda kv: kv.put(None, 1),
    lambda kv: kv.put(["a"], 1),
    lambda kv: kv.put("k", lambda: 1),
    lambda kv: kv.put("k", BIG),
    lambda kv: kv.cas("k", None, threading.Lock()),
    lambda kv: kv.delete(7),
    lambda kv: kv.txn([("k", "value", 1)], [("put", "k", BIG)]),
    lambda kv: kv.get(None),
    lambda kv: kv.get_many("abc"),
    lambda kv: kv.items(5),
    lambda kv: kv.put("k", 1, timeout=math.nan),
    lambda kv: kv.delete("k", timeout="1"),
], ids=["None key", "list key", "lambda", "32 MiB", "lock", "int key", "txn 32 MiB",
        "get None", "get_many str", "items int", "NaN timeout", "str timeout"])
def test_the_kv_client_refuses_bad_input_locally_and_sends_nothing(
        call: Callable[[KVClient], Any]) -> None:
    kv = OfflineKV()
    with pytest.raises(ValidationFailed) as caught:
        call(kv)
    assert isinstance(caught.value, ClusterError) and caught.value.code == "validation_failed"
    assert kv.session._queue == [] and kv.session._outstanding == set()
    assert kv.session._sender is None
    assert kv.session._ack_below() == 1  # no sequence number was used up


def test_a_refused_submit_resolves_its_future_at_once() -> None:
    future = OfflineKV().submit(("put", "k", lambda: 1))
    assert future.done() and isinstance(future.result(), InvalidCommand)


def test_a_session_run_raises_a_refused_op_and_names_an_unanswered_one() -> None:
    session = OfflineSession()
    with pytest.raises(ValidationFailed):
        session.run(("put", None, 1))
    with pytest.raises(CoordinationTimeout, match=r"lease_grant not acknowledged within 0\.01 s"):
        session.wait(Future(), timeout=0.01, what="lease_grant")
    assert session._queue == [] and session._ack_below() == 1


SPECIAL = st.sampled_from([10**400, -10**400, 2**63, 2**64, math.nan, math.inf, -math.inf,
                           -1, 0, BIG[:2 << 20], "k" * 5000, "\ud800", b"", (), [], {}, Ellipsis])
UNPICKLABLE = st.sampled_from([lambda: 1, threading.Lock(), Unloadable(), (x for x in ())])
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8) | SPECIAL | UNPICKLABLE,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=6)
OP_NAMES = st.sampled_from(["put", "get", "cas", "delete", "txn", "lease_grant",
                            "lease_revoke", "put_lease", "guarded", "fence", "config", "nope"])
OPS = st.one_of(JUNK, st.tuples(OP_NAMES).flatmap(
    lambda name: st.lists(JUNK, max_size=4).map(lambda rest: (*name, *rest))))

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=4))
def test_the_state_machine_turns_any_refused_op_into_a_cluster_error_result(
        ops: list[Any]) -> None:
    """The last line of defence: an entry that reached the log anyway."""
    sm = ClusterStateMachine()
    for index, op in enumerate(ops, start=1):
        before = sm.state_hash()
        result, _ = sm.apply(Entry(index, 1, EntryKind.NORMAL, Command("c", index, op)))
        refused = False
        try:
            check(op, min_ttl=1)
        except InvalidCommand:
            refused = True
        if isinstance(result, BaseException):
            assert isinstance(result, ClusterError), result
            assert sm.state_hash() == before
        if refused and isinstance(result, InvalidCommand):
            assert sm.state_hash() == before


CLIENT_CALLS = st.one_of(
    st.tuples(st.just("put"), JUNK, JUNK),
    st.tuples(st.just("cas"), JUNK, JUNK, JUNK),
    st.tuples(st.just("delete"), JUNK),
    st.tuples(st.just("txn"), st.lists(JUNK, max_size=2), st.lists(JUNK, max_size=2)),
    st.tuples(st.just("get"), JUNK),
    st.tuples(st.just("get_many"), JUNK),
    st.tuples(st.just("items"), JUNK),
    st.tuples(st.just("submit"), OPS),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CLIENT_CALLS)
def test_fuzzed_kv_client_calls_either_pass_the_leaders_checks_or_fail_locally(
        call: tuple[Any, ...]) -> None:
    kv = OfflineKV()
    method, *args = call
    try:
        outcome = getattr(kv, method)(*args)
        if isinstance(outcome, Future):  # submit: a refusal resolves the future at once
            assert outcome.done()
            raise outcome.result()
    except WouldSend:
        if method in ("put", "cas", "delete", "submit"):  # what was queued passes the leader
            command = kv.session._queue[-1][0]
            check_command(command, extra_ops=EXTRA, max_value_bytes=DEFAULT_MAX_VALUE_BYTES,
                          min_lease_ttl_ms=ClusterOptions().election_timeout)
        return
    except ValidationFailed as error:
        assert error.code == "validation_failed"
        assert kv.session._queue == [] and kv.session._ack_below() == 1
        return
    raise AssertionError(f"{method}{tuple(args)!r} neither refused nor sent")


# ------------------------------------- the consensus actor, in-process
class Node:
    """A one-node cluster's consensus actor (the Ray class, run in-process on
    an event loop thread): it elects itself and serves submit/propose/leases."""

    def __init__(self, data_dir: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        actor_class = ConsensusActor.__ray_actor_class__  # type: ignore[attr-defined]
        self.actor = actor_class("fuzz", "n1", ["n1"], {"data_dir": data_dir, "fsync": False,
                                                     "data_plane": False})
        self.run(self.actor.on_activate())
        self.run(self._until_leader())

    async def _until_leader(self) -> None:
        while self.actor.core.raft.role is not Role.LEADER:
            await asyncio.sleep(0.01)

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(HANG)

    def state(self) -> tuple[str, int]:
        sm = self.actor.core.sm
        return sm.state_hash(), len(sm.leases.leases)

    def settle(self) -> None:
        """Lead, with no lease left to expire: a fuzzed call's "before" and
        "after" differ only by what the call did."""
        self.run(self._until_leader())
        for lease_id in list(self.actor.core.sm.leases.leases):
            self.run(self.actor.lease_revoke(lease_id))

    def ticking(self) -> bool:
        task = self.actor.core._tick_task
        return task is not None and not task.done()

    def close(self) -> None:
        self.run(self.actor.on_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@contextlib.contextmanager
def founding_node(directory: str, cluster_id: str) -> Iterator[Node]:
    """A one-node cluster's node in this process, started as Cluster.start's
    registry starts the founding node of a fresh cluster; closed on exit."""
    async def start_info(cluster: str, node_id: str) -> dict[str, Any]:
        return {"cluster_id": cluster_id, "fresh": True, "founder": True}

    async def claim_founding(cluster: str, node_id: str) -> bool:
        return True

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cluster_actors.actors.consensus_core.start_info", start_info)
        patch.setattr("cluster_actors.actors.consensus_core.claim_founding", claim_founding)
        n = Node(directory)
        try:
            yield n
        finally:
            n.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    with founding_node(str(tmp_path_factory.mktemp("limits")), "limits-test") as n:
        yield n


def test_the_10_to_400_lease_is_refused_and_the_leader_keeps_ticking(node: Node) -> None:
    before = node.state()
    [refused] = node.run(node.actor.submit([Command("t", 1, ("lease_grant", None, 10**400))]))
    assert isinstance(refused, InvalidCommand) and "one day" in refused.message
    with pytest.raises(ValidationFailed):
        node.run(node.actor.lease_grant(10**400))
    assert node.state() == before
    # the leader's lease clock runs on its ticks: a lease of the shortest TTL expires
    granted = node.run(node.actor.lease_grant(200))
    assert granted.ok and node.ticking()
    node.run(_until(lambda: granted.lease_id not in node.actor.core.sm.leases.leases))
    assert node.run(node.actor.propose(("put", "after", 1)))["result"].ok


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_a_batch_keeps_its_good_commands_and_refuses_the_bad_ones_alone(node: Node) -> None:
    results = node.run(node.actor.submit([
        Command("batch", 1, ("put", "good1", 1)),
        Command("batch", 2, ("put", "bad", lambda: 1)),
        Command("batch", 3, ("put", "bad", BIG)),
        Command("batch", 4, ("put", None, 1)),
        Command("batch", 5, ("put", "good2", 2)),
    ]))
    assert [type(r).__name__ for r in results] == [
        "KVResult", "InvalidCommand", "InvalidCommand", "InvalidCommand", "KVResult"]
    sm = node.actor.core.sm
    assert sm.get("good1").value == 1 and sm.get("good2").value == 2 and sm.get("bad") is None


REMOTE_CALLS = st.one_of(
    st.tuples(st.just("submit"), st.one_of(
        JUNK, st.lists(st.builds(Command, JUNK, JUNK, OPS, JUNK), max_size=3),
        st.lists(st.builds(Command, st.just("fz"), st.integers(1, 2**62), OPS), max_size=3)),
        st.one_of(st.just(5.0), JUNK)),
    st.tuples(st.just("propose"), OPS, st.one_of(st.just(5.0), JUNK)),
    st.tuples(st.just("lease_grant"), JUNK, st.one_of(st.none(), JUNK)),
    st.tuples(st.just("lease_revoke"), JUNK),
    st.tuples(st.just("lease_keepalive"), JUNK),
    st.tuples(st.just("lease_time_to_live"), JUNK),
    st.tuples(st.just("lease_watch"), JUNK, st.one_of(st.none(), JUNK),
              st.one_of(st.just(0), JUNK.filter(lambda t: not isinstance(t, (int, float))
                                                or isinstance(t, bool) or not t > 0.01))),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(REMOTE_CALLS)
def test_fuzzed_remote_calls_raise_cluster_errors_and_leave_the_state_unchanged(
        node: Node, call: tuple[Any, ...]) -> None:
    method, *args = call
    node.settle()
    before = node.state()
    try:
        outcome = node.run(getattr(node.actor, method)(*args))
    except ClusterError as error:
        assert error.code == "validation_failed", error
        assert node.state() == before
        return
    results = outcome if method == "submit" else [
        outcome["result"] if method == "propose" else outcome]
    if method in ("lease_keepalive", "lease_watch", "lease_time_to_live"):
        results = []  # reads: answers, not results
    errors = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, ClusterError) for e in errors), errors
    if len(errors) == len(results):
        assert node.state() == before
    assert node.ticking()
