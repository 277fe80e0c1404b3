"""The etcd-style key-value API on a real local Ray, as a user would use it:
ranges (with an end, a limit, a past revision), ephemeral keys on leases,
and prefix watches that survive a leader kill, resume from a revision and
refuse a compacted one. One 3-node cluster for the module; the compaction
test runs last, as it drops the history the others read."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from cluster_actors.client.watch import WatchEvent
from cluster_actors.cluster import Cluster
from cluster_actors.errors import Compacted, NotFound, ValidationFailed
from cluster_actors.recipes.lease import Lease
from tests.ray import LIGHT
from tests.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

HANG = 60.0  # seconds; only catches hangs, asserts nothing about speed


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start(f"kvwatch-{uuid.uuid4().hex[:6]}", nodes=3, options=LIGHT)
    yield c
    c.shutdown()


class Collector:
    """Takes a watch's events in a thread of its own until it is closed."""

    def __init__(self, watch: object) -> None:
        self.watch = watch
        self.events: list[WatchEvent] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.watch:  # type: ignore[attr-defined]
                self.events.append(event)
        except BaseException as error:
            self.error = error

    def stop(self) -> None:
        self.watch.close()  # type: ignore[attr-defined]
        self.thread.join(HANG)
        assert not self.thread.is_alive(), "the watch did not end when closed"
        assert self.error is None, self.error


def test_a_prefix_watch_sees_every_change_once_in_revision_order_across_a_leader_kill(
        cluster: Cluster) -> None:
    kv = cluster.kv
    collector = Collector(kv.watch("jobs/"))
    written: list[tuple[str, str, int]] = []  # (type, key, revision) of every change made
    lock = threading.Lock()

    def write(writer: int) -> None:
        for i in range(25):
            key = f"jobs/{writer}-{i % 7}"
            kv.put(f"other/{writer}-{i}", i)  # outside the prefix: never delivered
            changes = [("put", key, kv.put(key, i).revision)]
            if i % 5 == 4:
                changes.append(("delete", key, kv.txn([], [("delete", key)]).revision))
            with lock:
                written.extend(changes)

    writers = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(2)]
    for thread in writers:
        thread.start()
    wait_until(lambda: len(written) >= 15, timeout=HANG)
    cluster.chaos.kill_leader()
    for thread in writers:
        thread.join(HANG)
    assert len(written) == 60
    last = max(rev for _, _, rev in written)
    wait_until(lambda: collector.events and collector.events[-1].revision >= last, timeout=HANG)
    collector.stop()
    assert [(e.type, e.key, e.revision) for e in collector.events] == sorted(
        written, key=lambda change: change[2])
    assert all(e.value is None for e in collector.events if e.type == "delete")


def test_a_watch_resumed_from_a_revision_replays_the_changes_since(cluster: Cluster) -> None:
    kv = cluster.kv
    first = kv.put("resume/a", 1).revision
    second = kv.put("resume/b", 2).revision
    kv.delete("resume/a")
    with kv.watch("resume/", start_revision=second) as watch:
        got = [watch.get(timeout=HANG) for _ in range(2)]
        assert [(e.type, e.key, e.value) for e in got] == [("put", "resume/b", 2),
                                                          ("delete", "resume/a", None)]
        assert got[0].revision == second and watch.revision == got[1].revision
        resumed = kv.watch("resume/", start_revision=watch.revision + 1)
    assert watch.closed and watch.get(timeout=0.1) is None
    kv.put("resume/c", 3)
    event = resumed.get(timeout=HANG)
    assert (event.key, event.value) == ("resume/c", 3)
    resumed.close()
    single = kv.watch("resume/a", start_revision=first, prefix=False)
    assert [single.get(timeout=HANG).type for _ in range(2)] == ["put", "delete"]
    single.close()


def test_range_takes_an_end_a_limit_and_a_past_revision(cluster: Cluster) -> None:
    kv = cluster.kv
    for key in ["rng/c", "rng/a", "rng/b", "rng0", "rnh"]:
        kv.put(key, key.upper())
    before = kv.put("rng/a", "A2").revision - 1
    assert [r.key for r in kv.range("rng/", "rng0")] == ["rng/a", "rng/b", "rng/c"]
    limited = kv.range("rng/", "rng0", limit=2)
    assert [r.key for r in limited] == ["rng/a", "rng/b"] and limited.more
    assert kv.range("rng/a")[0].value == "A2"
    assert kv.range("rng/a", revision=before)[0].value == "RNG/A"
    with pytest.raises(ValidationFailed, match="future"):
        kv.range("rng/", "rng0", revision=kv.range("rng/a").revision + 1000)


def test_an_ephemeral_key_disappears_when_its_lease_is_revoked_or_expires(
        cluster: Cluster) -> None:
    kv = cluster.kv
    revoked = Lease.grant(cluster.session, ttl=5.0)
    expiring = Lease.grant(cluster.session, ttl=1.0)
    kv.put("eph/revoked", "r", lease=revoked)
    kv.put("eph/expiring", "e", lease=expiring.lease_id)
    assert [r.key for r in kv.range("eph/", "eph0")] == ["eph/expiring", "eph/revoked"]
    with kv.watch("eph/") as watch:
        assert revoked.revoke()
        event = watch.get(timeout=HANG)
        assert (event.type, event.key) == ("delete", "eph/revoked")
        expiring.let_expire()
        event = watch.get(timeout=HANG)
        assert (event.type, event.key) == ("delete", "eph/expiring")
    assert list(kv.range("eph/", "eph0")) == []
    with pytest.raises(NotFound):
        kv.put("eph/orphan", 1, lease=revoked)
    assert kv.get("eph/orphan") is None


def test_a_watch_or_range_from_a_compacted_revision_raises_compacted(cluster: Cluster) -> None:
    kv = cluster.kv
    old = kv.put("cmp/k", 1).revision
    current = kv.put("cmp/k", 2).revision
    assert kv.compact(current) == current
    with pytest.raises(Compacted) as caught:
        kv.watch("cmp/", start_revision=old)
    assert caught.value.code == "compacted"
    with pytest.raises(Compacted):
        kv.range("cmp/k", revision=old)
    with pytest.raises(ValidationFailed):
        kv.compact(current + 1000)
    with kv.watch("cmp/", start_revision=current + 1) as watch:
        kv.put("cmp/k", 3)
        assert watch.get(timeout=HANG).value == 3
