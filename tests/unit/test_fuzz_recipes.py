"""Hypothesis drives the public calls of the coordination recipes (lock,
semaphore, read-write lock, barrier, queue, election, lease, service
registry) with wrong types, huge numbers, NaN, unpicklable and oversized
values, against the real state machine and lease manager in one process (the
stand-in leader of ``test_election_inprocess``, behind a session that checks
each command as the real one does): every error is a ClusterError, and an
input refused with ValidationFailed changes nothing in the replicated state."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_actors.core.kv import InvalidCommand
from cluster_actors.errors import ClusterError, ValidationFailed
from cluster_actors.recipes import Barrier, Queue, Registration, RWLock, Semaphore
from cluster_actors.recipes.election import LeaderElection
from cluster_actors.recipes.lease import Lease
from cluster_actors.recipes.lock import Lock
from cluster_actors.recipes.registry import services
from tests.unit.test_election_inprocess import InProcessSession
from tests.unit.test_fuzz_components import BAD

#: a timeout that cannot keep a call waiting: bad ones, None, or short
TIMEOUT = st.one_of(st.none(), st.just(math.nan), st.just(-1), st.just("1"),
                    st.floats(min_value=0.001, max_value=0.05))
TTL = st.one_of(BAD, st.just(0.5))
NAME = st.one_of(BAD, st.just("r"))


class CheckingSession(InProcessSession):
    """The in-process session, refusing what the real session refuses
    locally (:meth:`LeaderSession.check`) before it reaches the stand-in."""

    def submit(self, op: tuple[Any, ...]) -> Future[Any]:
        try:
            self.check(op)
        except InvalidCommand as error:
            future: Future[Any] = Future()
            future.set_result(error)
            return future
        return super().submit(op)


def _lock(s: CheckingSession, name: Any, ttl: Any, holder: Any, timeout: Any) -> None:
    lock = Lock(s, name, ttl, holder, timeout)
    if lock.acquire(blocking=False):
        lock.release()


def _semaphore(s: CheckingSession, name: Any, limit: Any, ttl: Any) -> None:
    semaphore = Semaphore(s, name, limit, ttl)
    if semaphore.acquire(blocking=False):
        semaphore.release()


def _rwlock(s: CheckingSession, name: Any, ttl: Any, timeout: Any) -> None:
    RWLock(s, name, ttl).read(timeout).release()


def _barrier(s: CheckingSession, name: Any, parties: Any, ttl: Any, party: Any) -> None:
    Barrier(s, name, parties, ttl, party)


def _queue(s: CheckingSession, name: Any, item: Any, timeout: Any) -> None:
    queue = Queue(s, name)
    queue.put(item, timeout)
    queue.get(timeout)


def _election(s: CheckingSession, name: Any, candidate: Any, value: Any, ttl: Any,
              timeout: Any) -> None:
    LeaderElection(s, name).campaign(candidate, value, ttl, timeout).resign()


def _lease(s: CheckingSession, ttl: Any, timeout: Any) -> None:
    Lease.grant(s, ttl, timeout=timeout).revoke()


def _register(s: CheckingSession, service: Any, address: Any, ttl: Any, metadata: Any,
              instance: Any) -> None:
    Registration(s, service, address, ttl, metadata, instance).deregister()


def _services(s: CheckingSession, service: Any) -> None:
    services(s, service)


ACTIONS: dict[str, tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...]]] = {
    "lock": (_lock, (NAME, TTL, BAD, TIMEOUT)),
    "semaphore": (_semaphore, (NAME, st.one_of(BAD, st.just(2)), TTL)),
    "rwlock": (_rwlock, (NAME, TTL, TIMEOUT)),
    "barrier": (_barrier, (NAME, st.one_of(BAD, st.just(2)), TTL, BAD)),
    "queue": (_queue, (NAME, BAD, TIMEOUT)),
    "election": (_election, (NAME, st.one_of(BAD, st.just("c")), BAD, TTL, TIMEOUT)),
    "lease": (_lease, (TTL, TIMEOUT)),
    "register": (_register, (NAME, BAD, TTL, BAD, BAD)),
    "services": (_services, (NAME,)),
}
CALLS = st.sampled_from(sorted(ACTIONS)).flatmap(
    lambda name: st.tuples(st.just(name), st.tuples(*ACTIONS[name][1])))


@pytest.fixture(scope="module")
def session() -> Iterator[CheckingSession]:
    s = CheckingSession()
    yield s
    s.close()


def _state(s: CheckingSession) -> tuple[str, int]:
    sm = s.core.sm
    return sm.state_hash(), len(sm.leases.leases)


@settings(max_examples=400, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(call=CALLS)
def test_every_recipe_call_answers_or_raises_a_cluster_error(
        session: CheckingSession, call: tuple[str, tuple[Any, ...]]) -> None:
    action, args = call
    for lease_id in list(session.core.sm.leases.leases):  # none left to expire meanwhile
        session.run(("lease_revoke", lease_id))
    before = _state(session)
    try:
        ACTIONS[action][0](session, *args)
    except ValidationFailed:
        assert _state(session) == before, f"{action}{args!r:.200} changed the state"
    except ClusterError:
        pass
    except Exception as error:
        raise AssertionError(f"{action}{args!r:.200} raised "
                             f"{type(error).__name__}: {error}"[:600]) from error
