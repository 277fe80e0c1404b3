"""The election, lock and lease clients against the real lease manager and
state machine, in one process: a stand-in for the consensus leader applies
each command at once and runs the manager's tick on an event loop thread.
Fast checks of the client logic (handover, expiry, partition, fencing,
observe) without Ray; tests/ray/test_election.py runs them for real."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest

from cluster_actors.client.session import LeaderSession
from cluster_actors.core.cluster_state import ClusterStateMachine
from cluster_actors.core.kv import Command
from cluster_actors.core.raft_types import Entry, EntryKind, Role
from cluster_actors.errors import NoQuorum, NotLeader
from cluster_actors.recipes.election import Cancelled, LeaderElection, StaleToken
from cluster_actors.recipes.lock import Lock
from cluster_actors.runtime.leases import LeaseManager
from tests.waiting import wait_until

HANG = 30.0  # seconds; only catches hangs


class LeaderStandIn:
    """What the lease manager needs of a consensus core, on one node that
    always leads and applies each command when it is submitted."""

    def __init__(self) -> None:
        self.node_id = "n1"
        self.raft = SimpleNamespace(role=Role.LEADER, lead="n1")
        self.sm = ClusterStateMachine()
        self.index = 0
        self.leases = LeaseManager(self)

    def require_started(self) -> None:
        pass

    async def submit(self, commands: list[Command], timeout: float = 5.0) -> list[Any]:
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, None)
        results = []
        for command in commands:
            self.index += 1
            result, _ = self.sm.apply(Entry(self.index, 1, EntryKind.NORMAL, command))
            results.append(result)
        self.leases.after_apply()
        return results

    async def read(self, keys: list[str], timeout: float = 5.0) -> list[Any]:
        if self.raft.role is not Role.LEADER:
            raise NotLeader(self.node_id, None)
        return [self.sm.get(key) for key in keys]

    async def read_prefix(self, prefix: str) -> list[Any]:
        return self.sm.range(prefix)


class InProcessSession(LeaderSession):
    """A session whose leader is the stand-in: commands and calls reach it on
    a loop thread that also runs its lease clock."""

    def __init__(self) -> None:
        super().__init__("inprocess", lambda: ["n1"], timeout=5.0)
        self.core = LeaderStandIn()
        self.partitioned: set[int] = set()  # lease ids whose keepalives cannot get through
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._running = True
        self._ticker = self.on_loop(self._tick())

    def submit(self, op: tuple[Any, ...]) -> Future[Any]:
        if not self._running:
            raise NoQuorum()  # closed: lease threads left over from a test give up
        command = Command(self.client_id, next(self._seq), op)
        inner = self.on_loop(self.core.submit([command]))
        outer: Future[Any] = Future()
        inner.add_done_callback(lambda f: outer.set_result(
            f.exception() if f.exception() else f.result()[0]))
        return outer

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        if not self._running:
            raise NoQuorum()
        if method == "lease_keepalive" and set(args[0]) & self.partitioned:
            raise NoQuorum()
        manager = self.core.leases
        call = {"lease_keepalive": manager.keepalive, "lease_watch": manager.watch,
                "read": self.core.read, "read_prefix": self.core.read_prefix}[method]
        return self.on_loop(call(*args)).result(timeout)

    def value(self, key: str) -> Any:
        kv = self.core.sm.get(key)
        return None if kv is None else kv.value

    async def _tick(self) -> None:
        while self._running:
            self.core.leases.tick(time.monotonic())
            await asyncio.sleep(0.01)

    def on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        self._running = False
        self._ticker.result(HANG)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        super().close()


@pytest.fixture
def session() -> Iterator[InProcessSession]:
    s = InProcessSession()
    yield s
    s.close()


def test_contenders_lead_one_at_a_time_with_increasing_tokens(session: InProcessSession) -> None:
    intervals: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def contender(name: str) -> None:
        election = LeaderElection(session, "e")
        for round_ in range(3):
            leadership = election.campaign(name, ttl=0.3, timeout=HANG)
            start = time.monotonic()
            leadership.guarded_put("owner", name)
            end = min(time.monotonic(), leadership.lease.deadline)
            with lock:
                intervals.append((start, end, leadership.token))
            if round_ % 2:
                leadership.lease.let_expire()
            else:
                leadership.resign()

    threads = [threading.Thread(target=contender, args=(f"c{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    intervals.sort()
    assert len(intervals) == 12
    for (_, end, token), (start, _, next_token) in itertools.pairwise(intervals):
        assert end <= start and token < next_token


def test_a_partitioned_leader_loses_after_its_ttl_and_its_writes_are_fenced(
        session: InProcessSession) -> None:
    election = LeaderElection(session, "p")
    lost: list[str] = []
    old = election.campaign("old", ttl=0.3, on_lost=lambda lead: lost.append(lead.lost_reason))
    waiter: list[Any] = []
    thread = threading.Thread(target=lambda: waiter.append(
        LeaderElection(session, "p").campaign("new", ttl=0.3)))
    thread.start()
    wait_until(lambda: len(election.candidates()) == 2)
    assert election.leader().candidate_id == "old"
    session.partitioned.add(old.lease.lease_id)
    thread.join(HANG)
    new = waiter[0]
    assert new.token > old.token and old.lost.is_set() and not old.is_held()
    assert lost and "no keepalive" in lost[0]
    new.fenced_put("res", "res", "new")
    with pytest.raises(StaleToken):
        old.guarded_put("res", "old")
    with pytest.raises(StaleToken) as caught:
        old.fenced_put("res", "res", "old")
    assert caught.value.newer == new.token
    with pytest.raises(StaleToken):
        old.proclaim("still me?")
    assert session.value("res") == "new"
    new.proclaim("v2")
    assert election.leader().value == "v2"


def test_keepalives_hold_a_lease_well_past_its_ttl(session: InProcessSession) -> None:
    election = LeaderElection(session, "k")
    leadership = election.campaign("me", ttl=0.2)
    wait_until(lambda: leadership.lease.keepalives >= 10)  # 10 keepalives: >= 0.6 s
    assert leadership.is_held() and election.leader().token == leadership.token


def test_lock_context_manager_excludes_and_non_blocking_acquire_fails_while_held(
        session: InProcessSession) -> None:
    holder = Lock(session, "m", ttl=0.3)
    other = Lock(session, "m", ttl=0.3)
    with holder:
        assert holder.locked() and holder.token is not None
        assert other.acquire(blocking=False) is False
        assert other.acquire(timeout=0.05) is False
        assert holder.holder().token == holder.token
    assert not holder.locked()
    assert other.acquire(timeout=HANG) and other.token > 0
    with pytest.raises(Exception, match="not reentrant"):
        other.acquire()
    other.release()
    assert holder.holder() is None


def test_cancel_ends_a_campaign_and_leaves_no_key(session: InProcessSession) -> None:
    election = LeaderElection(session, "c")
    election.campaign("first", ttl=0.3)
    cancel = threading.Event()
    errors: list[BaseException] = []

    def campaign() -> None:
        try:
            LeaderElection(session, "c").campaign(
                "second", ttl=0.3, cancel=cancel)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=campaign)
    thread.start()
    wait_until(lambda: len(election.candidates()) == 2)
    cancel.set()
    thread.join(HANG)
    assert len(errors) == 1 and isinstance(errors[0], Cancelled)
    assert [c.candidate_id for c in election.candidates()] == ["first"]


def test_observe_yields_each_change_in_order(session: InProcessSession) -> None:
    election = LeaderElection(session, "o")
    observation = election.observe(poll=0.2)
    assert next(observation) is None
    first = election.campaign("a", value=1, ttl=0.3)
    change = next(observation)
    assert (change.candidate_id, change.value, change.token) == ("a", 1, first.token)
    first.proclaim(2)
    assert next(observation).value == 2
    first.resign()
    assert next(observation) is None
    observation.close()
    assert list(observation) == []


@pytest.mark.parametrize("ttl", [float("inf"), float("nan"), -1, 0, 10**400, "2", None])
def test_a_bad_ttl_raises_validation_failed_before_anything_is_granted(
        session: InProcessSession, ttl: Any) -> None:
    from cluster_actors.errors import ValidationFailed
    from cluster_actors.recipes.lease import Lease

    election = LeaderElection(session, "bad-ttl")
    with pytest.raises(ValidationFailed, match="ttl"):
        election.campaign("me", ttl=ttl, timeout=HANG)
    with pytest.raises(ValidationFailed, match="ttl"):
        Lock(session, "bad-ttl", ttl=ttl)
    with pytest.raises(ValidationFailed, match="ttl"):
        Lease.grant(session, ttl)
    assert session.core.sm.leases.leases == {} and session.core.sm.data == {}


def test_a_ttl_shorter_than_the_election_timeout_is_refused(session: InProcessSession) -> None:
    from cluster_actors.errors import ValidationFailed
    from cluster_actors.options import ClusterOptions

    session.options = ClusterOptions.parse({"election_timeout": 500})
    with pytest.raises(ValidationFailed, match=r"election timeout \(0.5 s\)"):
        LeaderElection(session, "short").campaign("me", ttl=0.3)
    with pytest.raises(ValidationFailed):
        LeaderElection(session, "")
    assert session.core.sm.leases.leases == {}
