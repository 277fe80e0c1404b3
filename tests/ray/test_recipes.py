"""The coordination recipes on a real local Ray, as a user would use them:
one 3-node cluster for the module; contenders are threads of this driver,
and, where a process must die, Ray actors of their own."""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import ray

from cluster_actors.cluster import Cluster
from cluster_actors.errors import CoordinationTimeout, ValidationFailed
from cluster_actors.recipes.queue import Empty
from tests.ray import LIGHT
from tests.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

HANG = 60.0  # seconds; only catches hangs, asserts nothing about speed


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start(f"recipes-{uuid.uuid4().hex[:6]}", nodes=3, options=LIGHT)
    yield c
    c.shutdown()


def in_threads(target: Callable[[int], Any], count: int) -> list[Any]:
    """Run ``target(i)`` in ``count`` threads; their results (errors re-raised)."""
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = target(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG * 2)
    assert not errors, errors
    assert len(results) == count, "a thread hung"
    return [results[i] for i in range(count)]


class Occupancy:
    """Who is inside a critical section, and the most seen at once."""

    def __init__(self) -> None:
        self.inside: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.overlaps: list[tuple[str, dict[str, int]]] = []
        self._lock = threading.Lock()

    def enter(self, kind: str, exclusive_of: tuple[str, ...] = ()) -> None:
        with self._lock:
            if any(self.inside[k] for k in exclusive_of):
                self.overlaps.append((kind, dict(self.inside)))
            self.inside[kind] += 1
            self.peak[kind] = max(self.peak[kind], self.inside[kind])

    def leave(self, kind: str) -> None:
        with self._lock:
            self.inside[kind] -= 1


@ray.remote(num_cpus=0)
class Echo:
    """The singleton under test: says which instance answered."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.instance = uuid.uuid4().hex[:8]

    def whoami(self) -> tuple[str, str, int]:
        return self.label, self.instance, os.getpid()


@ray.remote(num_cpus=0, max_concurrency=4)
class Process:
    """A user's process: runs a singleton manager or registers a service."""

    def __init__(self, cluster_name: str) -> None:
        self.cluster = Cluster.attach(cluster_name)
        self.kept: list[Any] = []

    def run_singleton(self, name: str, label: str) -> None:
        self.kept.append(self.cluster.singleton(name, Echo, label, lease_ttl=1.0))

    def register(self, service: str, address: str, ttl: float) -> str:
        registration = self.cluster.register(service, address, ttl=ttl)
        self.kept.append(registration)
        return registration.instance_id


def test_a_semaphore_never_has_more_holders_than_its_limit(cluster: Cluster) -> None:
    seen = Occupancy()
    tokens: list[int] = []

    def worker(i: int) -> None:
        for _ in range(2):
            with cluster.semaphore("slots", limit=2, ttl=2.0, timeout=HANG) as slot:
                seen.enter("holder")
                tokens.append(slot.token)
                slot.guarded_put(f"slots/last/{i}", slot.token)
                time.sleep(0.05)
                seen.leave("holder")

    in_threads(worker, 5)
    assert seen.peak["holder"] == 2  # reached the limit, never above it
    assert len(set(tokens)) == 10
    assert cluster.semaphore("slots", limit=2).holders() == []


def test_rwlock_readers_share_it_and_a_writer_holds_it_alone(cluster: Cluster) -> None:
    rw = cluster.rwlock("catalog", ttl=2.0, timeout=HANG)
    seen = Occupancy()
    all_readers_in = threading.Barrier(3)

    def reader(_: int) -> None:
        with rw.read():
            seen.enter("reader", exclusive_of=("writer",))
            all_readers_in.wait(HANG)  # only passes if the 3 readers hold it at once
            seen.leave("reader")

    in_threads(reader, 3)

    def mixed(i: int) -> None:
        for _ in range(2):
            if i % 2:
                with rw.write() as hold:
                    seen.enter("writer", exclusive_of=("writer", "reader"))
                    hold.guarded_put("catalog/version", i)
                    time.sleep(0.02)
                    seen.leave("writer")
            else:
                with rw.read():
                    seen.enter("reader", exclusive_of=("writer",))
                    time.sleep(0.02)
                    seen.leave("reader")

    in_threads(mixed, 4)
    assert seen.peak["reader"] == 3 and seen.peak["writer"] == 1
    assert seen.overlaps == []


def test_a_barrier_releases_all_parties_together_and_times_out_without_one(
        cluster: Cluster) -> None:
    arrived: list[float] = []

    def party(i: int) -> tuple[int, float]:
        time.sleep(0.2 * i)  # arrive one after the other
        arrived.append(time.time())
        generation = cluster.barrier("start", parties=3).wait(timeout=HANG)
        return generation, time.time()

    passed = in_threads(party, 3)
    assert {generation for generation, _ in passed} == {0}
    assert min(at for _, at in passed) >= max(arrived)  # nobody passed before the last came

    def too_few(_: int) -> str:
        try:
            cluster.barrier("quorum", parties=3).wait(timeout=1.0)
        except CoordinationTimeout as error:
            return str(error)
        return "passed"

    assert all("fewer than 3 parties" in out for out in in_threads(too_few, 2))
    assert cluster.barrier("quorum", parties=3).arrived() == 0  # both withdrew


def test_the_double_barrier_lets_parties_leave_only_together(cluster: Cluster) -> None:
    left: list[tuple[float, float]] = []

    def party(i: int) -> None:
        barrier = cluster.barrier("phases", parties=2)
        barrier.enter(timeout=HANG)
        time.sleep(0.5 * i)  # the second party works longer
        finished = time.time()
        barrier.leave(timeout=HANG)
        left.append((finished, time.time()))

    in_threads(party, 2)
    last_finished = max(f for f, _ in left)
    assert all(at >= last_finished for _, at in left)


def test_a_queue_delivers_every_item_once_to_concurrent_consumers_across_a_leader_kill(
        cluster: Cluster) -> None:
    queue = cluster.queue("jobs")
    for i in range(20):
        queue.put(i)
    first = in_threads(lambda _: [queue.get(timeout=0.5) for _ in range(5)], 4)
    assert sorted(itertools.chain(*first)) == list(range(20))
    assert all(batch == sorted(batch) for batch in first)  # FIFO for each consumer

    total, taken = 40, []
    stop = threading.Event()

    def consumer(_: int) -> list[int]:
        mine = []
        while not stop.is_set():
            try:
                mine.append(queue.get(timeout=0.2))
            except Empty:
                continue
        return mine

    def producer() -> None:
        for i in range(total):
            queue.put(100 + i)
            if i == total // 2:
                cluster.chaos.kill_leader()

    consumers = threading.Thread(target=lambda: taken.extend(in_threads(consumer, 3)))
    consumers.start()
    producer()
    wait_until(lambda: queue.qsize() == 0, timeout=HANG)
    stop.set()
    consumers.join(HANG)
    delivered = list(itertools.chain(*taken))
    assert sorted(delivered) == [100 + i for i in range(total)]  # each once, none lost


def test_a_registered_service_appears_and_disappears_with_its_lease(cluster: Cluster) -> None:
    process = Process.remote(cluster.name)
    watch = cluster.watch_services("api", poll=0.5)
    assert next(watch).members == []
    instance = ray.get(process.register.remote("api", "10.0.0.7:8080", 2.0))
    change = next(watch)
    assert [(m.instance_id, m.address) for m in change.joined] == [(instance, "10.0.0.7:8080")]
    assert [m.instance_id for m in cluster.services("api")] == [instance]
    with cluster.register("api", "10.0.0.8:8080", ttl=2.0) as mine:
        assert [m.instance_id for m in next(watch).joined] == [mine.instance_id]
    assert [m.instance_id for m in next(watch).left] == [mine.instance_id]
    ray.kill(process)  # its lease is no longer kept alive: the cluster expires it
    change = next(watch)
    assert change.members == [] and [m.instance_id for m in change.left] == [instance]
    watch.close()


def test_a_singleton_answers_again_after_its_actor_is_killed_and_its_holder_dies(
        cluster: Cluster) -> None:
    processes = [Process.remote(cluster.name) for _ in range(2)]
    ray.get(processes[0].run_singleton.remote("echo", "p0"))
    proxy = cluster.singleton_proxy("echo")
    label, first, _ = proxy.call("whoami", timeout=HANG)
    assert label == "p0"
    first_token = proxy.token()
    assert first_token is not None
    ray.get(processes[1].run_singleton.remote("echo", "p1"))  # stands by
    wait_until(lambda: len(cluster.election("singleton/echo").candidates()) == 2)
    assert ray.get(proxy.whoami.remote())[1] == first

    ray.kill(proxy.handle())  # the instance dies; its holder starts another
    label, second, _ = wait_until(  # (a call sent as the kill lands may still be answered)
        lambda: (a := proxy.call("whoami", timeout=HANG))[1] != first and a)
    assert label == "p0"

    ray.kill(processes[0])  # the holder dies: its lease expires, p1 takes over
    label, third, _ = wait_until(lambda: (a := proxy.call("whoami", timeout=HANG))[0] == "p1"
                                 and a)
    assert third not in (first, second)
    holder = proxy.holder()
    assert holder is not None and holder.value["actor"].startswith("singleton.echo.")
    assert holder.token == proxy.token() > first_token  # the successor fences the old holder out
    ray.kill(processes[1])


def test_bad_input_to_the_recipes_says_what_to_pass(cluster: Cluster) -> None:
    for call in (lambda: cluster.semaphore("s", 0), lambda: cluster.barrier("b", 0),
                 lambda: cluster.rwlock(""), lambda: cluster.queue(""),
                 lambda: cluster.register("svc", "a:1", ttl=float("inf")),
                 lambda: cluster.singleton("", Echo)):
        with pytest.raises(ValidationFailed, match="give"):
            call()
