"""Leader election, leases and locks with fencing tokens on a real local Ray.

Contenders run in their own Ray actors (processes), as users' code would.
Leadership and critical-section intervals are recorded with wall-clock
times taken on this one machine, and checked afterwards: a holder's interval
ends when it stops believing it holds (before resigning, or at its lease's
local deadline); a killed holder's ends at the kill.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import cloudpickle

from cluster_actors.cluster import Cluster
from cluster_actors.recipes.election import Leadership, StaleToken
from cluster_actors.recipes.lease import Lease
from cluster_actors.recipes.lock import Lock
from tests.ray import LIGHT
from tests.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_local")]

HANG = 60.0  # seconds; only catches hangs, asserts nothing about speed
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "leader_scheduler.py"




def wall_deadline(lease: Lease) -> float:
    """The lease's local deadline as a wall-clock time."""
    return time.time() + (lease.deadline - time.monotonic())


def assert_no_overlap(intervals: list[tuple[float, float, Any]]) -> None:
    ordered = sorted(intervals)
    for (s1, e1, who1), (s2, e2, who2) in itertools.pairwise(ordered):
        assert s1 <= e1 and s2 <= e2
        assert e1 <= s2, f"{who1} held until {e1:.4f} but {who2} from {s2:.4f}"


@ray.remote(num_cpus=0, max_concurrency=4)
class Contender:
    """One contender process: campaigns, locks, writes with its token."""

    def __init__(self, cluster_name: str, name: str) -> None:
        self.cluster = Cluster.attach(cluster_name)
        self.name = name
        self.leadership: Leadership | None = None
        self.won_at: float | None = None
        self.losses: list[str] = []

    def pid(self) -> int:
        return os.getpid()

    def elect_rounds(self, election: str, rounds: int, ttl: float
                     ) -> list[tuple[float, float, int, str, int]]:
        """Lead ``rounds`` times; in each, increment a counter twice with
        guarded writes, then resign (even rounds) or let the lease expire
        (odd). Per round: (start, end, token, name, increments made)."""
        out = []
        handle = self.cluster.election(election)
        for round_ in range(rounds):
            leadership = handle.campaign(self.name, value=round_, ttl=ttl)
            start = time.time()
            increments = 0
            try:
                for _ in range(2):
                    count = self.cluster.kv.get(f"{election}/count", 0)
                    leadership.guarded_put(f"{election}/count", count + 1)
                    increments += 1
            except StaleToken:
                pass  # lost it (a slow machine): the interval ends at the deadline
            end = min(time.time(), wall_deadline(leadership.lease))
            if round_ % 2 == 0:
                leadership.resign()
            else:
                leadership.lease.let_expire()
            out.append((start, end, leadership.token, self.name, increments))
        return out

    def lock_rounds(self, name: str, rounds: int, ttl: float, recorder: Any) -> int:
        """Take the lock ``rounds`` times; record each critical section."""
        for _ in range(rounds):
            with Lock(self.cluster.session, name, ttl=ttl, holder_id=self.name) as lock:
                start = time.time()
                ray.get(recorder.enter.remote(self.name, start, lock.token))
                count = self.cluster.kv.get(f"{name}/count", 0)
                lock.guarded_put(f"{name}/count", count + 1)
                end = min(time.time(), wall_deadline(lock.hold.lease))
                ray.get(recorder.exit.remote(self.name, end, lock.token))
        return rounds

    def campaign(self, election: str, ttl: float) -> int:
        leadership = self.cluster.election(election).campaign(
            self.name, ttl=ttl, on_lost=lambda lost: self.losses.append(lost.lost_reason))
        self.leadership, self.won_at = leadership, time.time()
        return leadership.token

    def campaign_in_background(self, election: str, ttl: float) -> None:
        threading.Thread(target=self.campaign, args=(election, ttl), daemon=True).start()

    def state(self) -> dict[str, Any]:
        leadership = self.leadership
        return {"leading": leadership is not None and leadership.is_held(),
                "token": leadership.token if leadership else None,
                "lost": leadership is not None and leadership.lost.is_set(),
                "lost_reason": leadership.lost_reason if leadership else None,
                "losses": list(self.losses), "won_at": self.won_at}

    def stale_writes(self) -> dict[str, Any]:
        """Write with the (old) token both ways; what the store answered."""
        assert self.leadership is not None
        out: dict[str, Any] = {}
        for kind, write in (("guarded", lambda: self.leadership.guarded_put("res", self.name)),
                            ("fenced", lambda: self.leadership.fenced_put(
                                "res", "res", self.name))):
            try:
                write()
                out[kind] = "accepted"
            except StaleToken as error:
                out[kind] = ("rejected", error.newer)
        return out

    def fenced_writes(self) -> None:
        assert self.leadership is not None
        self.leadership.guarded_put("res", self.name)
        self.leadership.fenced_put("res", "res", self.name)

    def resign(self) -> float:
        assert self.leadership is not None
        started = time.time()
        self.leadership.resign()
        return started


@ray.remote(num_cpus=0)
class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, float, int]] = []

    def enter(self, who: str, at: float, token: int) -> None:
        self.events.append(("enter", who, at, token))

    def exit(self, who: str, at: float, token: int) -> None:
        self.events.append(("exit", who, at, token))

    def all(self) -> list[tuple[str, str, float, int]]:
        return list(self.events)


@pytest.fixture(scope="module")
def cluster(ray_local: None) -> Iterator[Cluster]:
    c = Cluster.start(f"elect-{uuid.uuid4().hex[:6]}", nodes=3, options=LIGHT)
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def contenders(cluster: Cluster) -> Iterator[list[Any]]:
    actors = [Contender.remote(cluster.name, f"c{i}") for i in range(5)]
    ray.get([a.pid.remote() for a in actors])
    yield actors
    for actor in actors:
        ray.kill(actor)


def test_one_leader_at_a_time_among_five_contenders_with_increasing_tokens(
        cluster: Cluster, contenders: list[Any]) -> None:
    """Five processes lead 5 times each (25 leaderships, 24 leader changes,
    half by resign, half by lease expiry) while an observer watches."""
    name = "five"
    seen: list[Any] = []
    observation = cluster.election(name).observe(poll=0.5)
    watcher = threading.Thread(target=lambda: seen.extend(observation), daemon=True)
    watcher.start()
    rounds = ray.get([c.elect_rounds.remote(name, 5, 0.6) for c in contenders],
                     timeout=HANG * 2)
    observation.close()
    watcher.join(HANG)
    intervals = sorted(i for per_contender in rounds for i in per_contender)
    assert len(intervals) == 25
    assert {i[3] for i in intervals} == {f"c{i}" for i in range(5)}
    assert_no_overlap([(start, end, who) for start, end, _, who, _ in intervals])
    tokens = [i[2] for i in intervals]
    assert all(a < b for a, b in itertools.pairwise(tokens)), tokens
    increments = sum(i[4] for i in intervals)
    assert increments >= 40
    assert cluster.kv.get(f"{name}/count") == increments  # no lost update: one writer at a time
    observed = [info.token for info in seen if info is not None]
    assert observed and all(a < b for a, b in itertools.pairwise(observed))
    # The observer may also see a key that became first just as its candidate's
    # lease lapsed (a loaded machine): that candidate revokes it and rejoins without
    # ever leading, so such a token is newer than a recorded one and never used.
    unused = set(observed) - set(tokens)
    assert len(unused) <= len(tokens) // 5, (unused, tokens)


def test_a_paused_leader_loses_after_its_ttl_learns_it_and_its_writes_are_rejected(
        cluster: Cluster, contenders: list[Any]) -> None:
    paused, successor = contenders[0], contenders[1]
    name = "pause"
    old_token = ray.get(paused.campaign.remote(name, 1.0))
    ray.get(successor.campaign_in_background.remote(name, 1.0))
    election = cluster.election(name)
    wait_until(lambda: len(election.candidates()) == 2)
    pid = ray.get(paused.pid.remote())
    os.kill(pid, signal.SIGSTOP)
    try:
        state = wait_until(lambda: (s := ray.get(successor.state.remote()))["leading"] and s)
        assert state["token"] > old_token
        ray.get(successor.fenced_writes.remote())
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = wait_until(lambda: (s := ray.get(paused.state.remote()))["losses"] and s)
    assert not resumed["leading"] and resumed["lost"]
    assert "no keepalive" in resumed["lost_reason"]
    writes = ray.get(paused.stale_writes.remote())
    assert writes == {"guarded": ("rejected", None), "fenced": ("rejected", state["token"])}
    assert cluster.kv.get("res") == "c1"
    assert election.leader().token == state["token"]
    ray.get(successor.resign.remote())


def test_the_lock_excludes_concurrent_contenders_through_kills(cluster: Cluster) -> None:
    name = "mutex"
    recorder = Recorder.remote()
    workers = [Contender.remote(cluster.name, f"l{i}") for i in range(5)]
    pids = ray.get([w.pid.remote() for w in workers])
    runs = {f"l{i}": w.lock_rounds.remote(name, 6, 1.0, recorder)
            for i, w in enumerate(workers)}
    lock = cluster.lock(name)
    killed: dict[str, float] = {}
    for _ in range(2):  # kill the holder (in its critical section, or just out of it)
        holder = wait_until(lambda: (h := lock.holder()) and h.candidate_id not in killed and h)
        os.kill(pids[int(holder.candidate_id[1:])], signal.SIGKILL)
        killed[holder.candidate_id] = time.time()
    survivors = [ref for who, ref in runs.items() if who not in killed]
    assert ray.get(survivors, timeout=HANG * 2) == [6] * 3
    events = ray.get(recorder.all.remote())
    open_sections: dict[tuple[str, int], float] = {}
    intervals = []
    for kind, who, at, token in events:
        if kind == "enter":
            open_sections[(who, token)] = at
        else:
            intervals.append((open_sections.pop((who, token)), at, who))
    for (who, _token), start in open_sections.items():
        assert who in killed, f"{who} entered and never left, yet was not killed"
        intervals.append((start, killed[who], who))
    assert_no_overlap(intervals)
    completed = sum(1 for e in events if e[0] == "exit")
    assert completed >= 18
    assert completed <= cluster.kv.get(f"{name}/count") <= completed + len(killed)
    enters = [e[3] for e in events if e[0] == "enter"]
    assert all(a < b for a, b in itertools.pairwise(enters)), "lock tokens must increase"
    for w in workers:
        ray.kill(w)


def test_after_resign_a_waiting_contender_takes_over_within_a_heartbeat_and_a_round_trip(
        cluster: Cluster, contenders: list[Any]) -> None:
    ttl = 3.0  # keepalive (heartbeat) interval: ttl / 3 = 1 s
    leader, waiting = contenders[2], contenders[3]
    name = "handover"
    ray.get(leader.campaign.remote(name, ttl))
    ray.get(waiting.campaign_in_background.remote(name, ttl))
    election = cluster.election(name)
    wait_until(lambda: len(election.candidates()) == 2)
    round_trips = []
    for _ in range(5):
        started = time.perf_counter()
        ray.get(waiting.pid.remote())
        round_trips.append(time.perf_counter() - started)
    resigned_at = ray.get(leader.resign.remote())
    state = wait_until(lambda: (s := ray.get(waiting.state.remote()))["leading"] and s)
    takeover = state["won_at"] - resigned_at
    assert 0 < takeover < ttl / 3 + max(round_trips), (takeover, round_trips)
    ray.get(waiting.resign.remote())


def test_async_campaign_and_observe(cluster: Cluster) -> None:
    election = cluster.election("async")

    async def scenario() -> list[Any]:
        observation = election.async_observe(poll=0.5)
        first = await observation.__anext__()
        leadership = await election.acampaign("a1", value="v1", ttl=1.0)
        seen = [first]
        async for info in observation:
            seen.append(info)
            if info is not None and info.value == "v2":
                break
            if info is not None:
                await election.aproclaim("v2")
        await election.aresign()
        observation.close()
        assert leadership.lost.is_set() and await election.aleader() is None
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] is None
    assert [(i.candidate_id, i.value) for i in seen[1:]] == [("a1", "v1"), ("a1", "v2")]
    assert seen[1].token == seen[2].token


def test_the_example_scheduler_hands_over_and_rejects_late_writes(cluster: Cluster) -> None:
    spec = importlib.util.spec_from_file_location("leader_scheduler", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["leader_scheduler"] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)  # the workers cannot import it by name
    summary = module.main(workers=3, events=4, ttl=1.0, cluster=cluster)
    assert summary["tokens_strictly_increase"]
    assert [e["kind"] for e in summary["chaos"]] == ["pause", "kill", "pause", "kill"]
    assert len({name for name, _ in summary["leaders"]}) >= 2
    late = summary["late_writes_rejected"]
    assert len(late) == 2 and all(newer is not None and newer > stale for stale, newer in late)
    assert summary["accepted_writes_in_token_order"]
    final_token = summary["leaders"][-1][1]
    assert summary["fence"] == final_token == summary["schedule"]["token"]
    assert summary["followers_refused_jobs"] == 2
