"""The coordination recipes against the real lease manager and state machine
in one process (the stand-in leader of test_election_inprocess): fast checks
of their rules without Ray; tests/ray/test_recipes.py runs them for real."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cluster_actors.errors import ClusterError, CoordinationTimeout, ValidationFailed
from cluster_actors.recipes.barrier import Barrier
from cluster_actors.recipes.election import StaleToken
from cluster_actors.recipes.queue import Empty, Queue
from cluster_actors.recipes.registry import Registration, ServiceWatch, services
from cluster_actors.recipes.rwlock import RWLock
from cluster_actors.recipes.semaphore import Semaphore
from tests.unit.test_election_inprocess import HANG, InProcessSession, wait_until


@pytest.fixture
def session() -> Iterator[InProcessSession]:
    s = InProcessSession()
    yield s
    s.close()


def run_threads(target: Any, count: int) -> list[Any]:
    out: list[Any] = []
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            out.append(target(i))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG)
    assert not errors, errors
    return out


def test_a_semaphore_never_has_more_holders_than_its_limit(session: InProcessSession) -> None:
    inside, peak, lock = [0], [0], threading.Lock()

    def worker(_: int) -> None:
        for _ in range(3):
            with Semaphore(session, "s", 2, ttl=0.5, timeout=HANG):
                with lock:
                    inside[0] += 1
                    peak[0] = max(peak[0], inside[0])
                time.sleep(0.01)
                with lock:
                    inside[0] -= 1

    run_threads(worker, 5)
    assert peak[0] == 2


def test_a_semaphore_holder_whose_lease_expires_frees_its_slot(session: InProcessSession) -> None:
    first = Semaphore(session, "slot", 1, ttl=0.3)
    assert first.acquire()
    assert not Semaphore(session, "slot", 1, ttl=0.3).acquire(timeout=0.1)
    first.hold.lease.let_expire()  # as if its process died
    second = Semaphore(session, "slot", 1, ttl=0.3)
    assert second.acquire(timeout=HANG) and second.token > first.token


def test_a_semaphore_used_with_another_limit_is_refused(session: InProcessSession) -> None:
    other = Semaphore(session, "mixed", 3, ttl=0.5)
    with Semaphore(session, "mixed", 2, ttl=0.5), \
            pytest.raises(ValidationFailed, match="same limit"):
        other.acquire(timeout=HANG)


def test_readers_share_the_rwlock_and_a_writer_waits_for_readers_ahead_of_it(
        session: InProcessSession) -> None:
    rw = RWLock(session, "rw", ttl=0.5)
    r1, r2 = rw.read(), rw.read()
    assert r1.acquire(timeout=0) and r2.acquire(timeout=0)
    reader_token = r2.token
    writer = rw.write()
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(writer.acquire(timeout=HANG)))
    thread.start()
    wait_until(lambda: len(rw.line.line()) == 3)
    late_reader = rw.read()
    assert not late_reader.acquire(timeout=0.1)  # behind a waiting writer
    assert {h.key for h in rw.holders()} == {r1.hold.key, r2.hold.key}
    r1.release()
    assert not got
    r2.release()
    thread.join(HANG)
    assert got == [True] and writer.token > reader_token
    assert [h.extra["mode"] for h in rw.holders()] == ["write"]
    writer.guarded_put("catalog", 1)
    writer.release()


def test_a_rwlock_writer_whose_lease_expires_lets_a_reader_in_and_its_late_writes_are_fenced(
        session: InProcessSession) -> None:
    rw = RWLock(session, "rwx", ttl=0.3)
    writer = rw.write()
    assert writer.acquire(timeout=0)
    writer.fenced_put("catalog", "catalog", "by the writer")
    reader = rw.read()
    assert not reader.acquire(timeout=0.1)  # the writer holds it alone
    writer.hold.lease.let_expire()  # as if its process died
    assert reader.acquire(timeout=HANG) and reader.token > writer.token
    reader.fenced_put("catalog", "catalog", "after the writer")
    with pytest.raises(StaleToken):
        writer.guarded_put("catalog", "late write")
    with pytest.raises(StaleToken) as caught:
        writer.fenced_put("catalog", "catalog", "late write")
    assert caught.value.newer == reader.token
    assert session.value("catalog") == "after the writer"
    reader.release()


def test_a_semaphore_holder_whose_lease_expired_cannot_write_past_the_next_holder(
        session: InProcessSession) -> None:
    first = Semaphore(session, "gpu", 1, ttl=0.3)
    assert first.acquire()
    first.hold.lease.let_expire()
    second = Semaphore(session, "gpu", 1, ttl=0.3)
    assert second.acquire(timeout=HANG)
    second.guarded_put("gpu/job", "second")
    with pytest.raises(StaleToken):
        first.guarded_put("gpu/job", "first, too late")
    assert session.value("gpu/job") == "second"
    second.release()


def test_a_barrier_releases_all_parties_together_and_is_cyclic(session: InProcessSession) -> None:
    gens = run_threads(lambda i: Barrier(session, "b", 3, ttl=0.5).wait(timeout=HANG), 3)
    assert gens == [0, 0, 0]
    gens = run_threads(lambda i: Barrier(session, "b", 3, ttl=0.5).wait(timeout=HANG), 3)
    assert gens == [1, 1, 1]


def test_a_barrier_times_out_when_a_party_is_missing_and_withdraws(session: InProcessSession) -> None:
    with pytest.raises(CoordinationTimeout, match="fewer than 2 parties"):
        Barrier(session, "lonely", 2, ttl=0.5).wait(timeout=0.2)
    assert Barrier(session, "lonely", 2).arrived() == 0


def test_the_double_barrier_leaves_only_when_every_party_left(session: InProcessSession) -> None:
    parties = [Barrier(session, "double", 2, ttl=0.5) for _ in range(2)]
    run_threads(lambda i: parties[i].enter(timeout=HANG), 2)
    left: list[float] = []
    thread = threading.Thread(target=lambda: (parties[0].leave(timeout=HANG),
                                              left.append(time.monotonic())))
    thread.start()
    time.sleep(0.1)
    assert not left
    released_at = time.monotonic()
    parties[1].leave(timeout=HANG)
    thread.join(HANG)
    assert left and left[0] >= released_at


def test_a_queue_delivers_every_item_once_in_order_to_concurrent_consumers(
        session: InProcessSession) -> None:
    queue = Queue(session, "jobs")
    for i in range(30):
        queue.put(i)
    taken = run_threads(lambda i: [queue.get(timeout=0.2) for _ in range(10)], 3)
    assert sorted(x for batch in taken for x in batch) == list(range(30))
    assert all(batch == sorted(batch) for batch in taken)  # each consumer sees FIFO order
    with pytest.raises(Empty):
        queue.get(timeout=0.05)


def test_a_registered_service_appears_and_disappears_with_its_lease(session: InProcessSession) -> None:
    watch = ServiceWatch(session, "api", poll=0.2)
    assert next(watch).members == []
    reg = Registration(session, "api", "10.0.0.1:80", ttl=0.3,
                       metadata={"zone": "a"})
    change = next(watch)
    assert [(m.address, m.metadata) for m in change.joined] == [("10.0.0.1:80", {"zone": "a"})]
    assert [m.instance_id for m in services(session, "api")] == [reg.instance_id]
    reg._closed.set()  # no re-registration: as if the process died
    reg.lease.let_expire()
    change = next(watch)
    assert change.members == [] and [m.instance_id for m in change.left] == [reg.instance_id]
    watch.close()


def test_a_registration_whose_lease_was_lost_registers_again(session: InProcessSession) -> None:
    reg = Registration(session, "web", "h:1", ttl=0.3)
    session.partitioned.add(reg.lease.lease_id)
    wait_until(lambda: reg.registrations == 2 and reg.registered)
    assert len(services(session, "web")) == 1
    reg.deregister()
    assert services(session, "web") == []


@pytest.mark.parametrize(("make", "field"), [
    (lambda c: Semaphore(c, "", 1), "name"),
    (lambda c: Semaphore(c, "s", 0), "limit"),
    (lambda c: Semaphore(c, "s", 1, ttl=math.inf), "ttl"),
    (lambda c: RWLock(c, None), "name"),  # type: ignore[arg-type]
    (lambda c: RWLock(c, "r", ttl=0), "ttl"),
    (lambda c: Barrier(c, "b", 0), "parties"),
    (lambda c: Barrier(c, "b", True), "parties"),
    (lambda c: Queue(c, ""), "name"),
    (lambda c: Registration(c, "svc", "a:1", ttl=math.nan), "ttl"),
    (lambda c: Registration(c, "svc", "a:1", ttl=-1), "ttl"),
    (lambda c: Registration(c, "", "a:1"), "service"),
])
def test_bad_input_is_refused_with_what_to_pass_and_changes_nothing(
        session: InProcessSession, make: Any, field: str) -> None:
    revision = session.core.sm.revision
    with pytest.raises(ValidationFailed) as caught:
        make(session)
    assert caught.value.errors[0][0] == field and "give" in str(caught.value)
    assert isinstance(caught.value, ClusterError)
    assert session.core.sm.revision == revision and not session.core.sm.leases.leases


def test_the_line_moved_out_of_election_stays_importable_under_its_old_names() -> None:
    from cluster_actors.recipes import election
    from cluster_actors.recipes.line import Cancelled, LeaderInfo, LeaseLine

    assert election._Queue is LeaseLine and election.LeaderInfo is LeaderInfo
    assert election.Cancelled is Cancelled and election.POLL_S > 0
