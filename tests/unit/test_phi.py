"""Phi accrual failure detector: formulas, window statistics, health bands,
the adaptive interval policy, monitor assignment, and a simulated-time run of
a million heartbeats with jitter and loss."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist, pstdev

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.phi import (
    AdaptiveIntervalPolicy,
    DetectorConfig,
    FailureDetectorRegistry,
    HealthBand,
    PhiAccrualDetector,
    assign_monitors,
    health_band,
    health_score,
    monitor_ring,
    phi_exponential,
    phi_normal,
    phi_normal_akka,
    watched_peers,
)
from cluster_actors.errors import ValidationFailed


def reference_phi(elapsed: float, mean: float, std: float) -> float:
    """-log10(1 - F(elapsed)) for a normal F, independently of erf/erfc: the
    survival function is the density integrated by Simpson's rule from y to far
    beyond it, which keeps full relative precision deep in the tail."""
    y = (elapsed - mean) / std
    upper = max(y, 0.0) + 15.0
    steps = 20_000
    h = (upper - y) / steps
    total = 0.0
    for i in range(steps + 1):
        weight = 1 if i in (0, steps) else (4 if i % 2 else 2)
        t = y + i * h
        total += weight * math.exp(-0.5 * t * t)
    survival = total * h / 3.0 / math.sqrt(2.0 * math.pi)
    return -math.log10(survival)


def test_reference_phi_agrees_with_the_standard_library_where_that_is_precise() -> None:
    for y in (-2.0, -0.5, 0.0, 0.7, 2.0, 4.0):
        expected = -math.log10(1.0 - NormalDist().cdf(y))
        assert reference_phi(y, 0.0, 1.0) == pytest.approx(expected, rel=1e-9)


def akka_reference_phi(elapsed: float, mean: float, std: float) -> float:
    """Akka's formula, written as in PhiAccrualFailureDetector.phi."""
    y = (elapsed - mean) / std
    e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    if elapsed > mean:
        return -math.log10(e / (1.0 + e))
    return -math.log10(1.0 - 1.0 / (1.0 + e))


def feed(detector: PhiAccrualDetector, intervals: list[float], start: float = 100.0) -> float:
    """Heartbeat at ``start`` and then after each interval; return the last time."""
    now = start
    detector.heartbeat(now)
    for interval in intervals:
        now += interval
        detector.heartbeat(now)
    return now


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize("elapsed,mean,std", [
    (0.0, 4.0, 0.2), (3.5, 4.0, 0.2), (4.0, 4.0, 0.2), (4.3, 4.0, 0.2),
    (4.9, 4.0, 0.25), (5.0, 4.0, 0.2), (1.7, 1.0, 0.1), (2.0, 1.5, 0.5),
])
def test_phi_normal_matches_reference_cdf(elapsed: float, mean: float, std: float) -> None:
    assert phi_normal(elapsed, mean, std) == pytest.approx(
        reference_phi(elapsed, mean, std), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("elapsed,mean,std", [
    (0.5, 1.0, 0.2), (1.0, 1.0, 0.2), (1.3, 1.0, 0.2), (2.0, 1.0, 0.2), (4.5, 4.0, 0.1),
])
def test_akka_cdf_option_matches_akka_formula(elapsed: float, mean: float, std: float) -> None:
    assert phi_normal_akka(elapsed, mean, std) == pytest.approx(
        akka_reference_phi(elapsed, mean, std), rel=1e-9, abs=1e-12)


def test_akka_approximation_is_close_to_exact_in_the_working_range() -> None:
    for y in np.linspace(-3.0, 3.0, 61):
        assert abs(phi_normal_akka(y, 0.0, 1.0) - phi_normal(y, 0.0, 1.0)) < 0.05


def test_phi_is_monotone_and_finite_far_into_the_tail() -> None:
    ys = np.linspace(-50.0, 200.0, 20001)  # crosses the erfc / asymptotic switch at y≈35.4
    for fn in (phi_normal, phi_normal_akka):
        values = [fn(float(y), 0.0, 1.0) for y in ys]
        assert all(math.isfinite(v) and v >= 0.0 for v in values)
        assert all(b >= a for a, b in itertools.pairwise(values))
    # continuity where the exact formula switches to the asymptotic series
    switch = 25.0 * math.sqrt(2.0)
    assert phi_normal(switch + 1e-9, 0.0, 1.0) == pytest.approx(
        phi_normal(switch - 1e-9, 0.0, 1.0), rel=1e-9)


@settings(max_examples=200)
@given(st.lists(st.floats(0.2, 3.0), min_size=1, max_size=30),
       st.floats(0.0, 30.0), st.floats(0.0, 30.0),
       st.sampled_from([("normal", "exact"), ("normal", "akka"), ("exponential", "exact")]))
def test_detector_phi_is_monotone_in_elapsed_time(
        intervals: list[float], a: float, b: float, model: tuple[str, str]) -> None:
    detector = PhiAccrualDetector(distribution=model[0], normal_cdf=model[1])
    last = feed(detector, intervals)
    early, late = sorted((a, b))
    assert detector.phi(last + early) <= detector.phi(last + late)


# --------------------------------------------------------------------------- detector


def test_detector_phi_matches_reference_from_plain_statistics() -> None:
    intervals = [1.0, 1.2, 0.8, 1.1, 0.95, 1.05, 0.9, 1.3]
    detector = PhiAccrualDetector(threshold=8.0, acceptable_heartbeat_pause=3.0,
                                  min_std_deviation=0.1, first_heartbeat_estimate=1.0)
    last = feed(detector, intervals)
    window = [0.75, 1.25, *intervals]  # the first heartbeat seeds estimate ± estimate/4
    mean, std = sum(window) / len(window), pstdev(window)
    assert detector.sample_count == len(window)
    assert detector.mean == pytest.approx(mean, rel=1e-12)
    assert detector.std_deviation == pytest.approx(std, rel=1e-9)
    for elapsed in (0.5, 3.0, 4.0, 4.5, 5.0, 5.5):
        assert detector.phi(last + elapsed) == pytest.approx(
            reference_phi(elapsed, mean + 3.0, max(std, 0.1)), rel=1e-6, abs=1e-9)


def test_min_std_deviation_is_applied() -> None:
    steady = PhiAccrualDetector(max_sample_size=10, min_std_deviation=0.1,
                                acceptable_heartbeat_pause=0.0)
    last = feed(steady, [1.0] * 20)  # the seeded samples are evicted: std is 0
    assert steady.std_deviation == pytest.approx(0.0, abs=1e-12)
    assert steady.effective_std == 0.1
    assert steady.phi(last + 1.3) == pytest.approx(reference_phi(1.3, 1.0, 0.1), rel=1e-6)
    wider = PhiAccrualDetector(max_sample_size=10, min_std_deviation=0.5,
                               acceptable_heartbeat_pause=0.0)
    feed(wider, [1.0] * 20, start=100.0)
    assert wider.phi(last + 1.3) < steady.phi(last + 1.3)


def test_exponential_model_is_cassandras_formula() -> None:
    intervals = [1.0, 2.0, 0.5, 1.5]
    detector = PhiAccrualDetector(distribution="exponential", acceptable_heartbeat_pause=3.0)
    last = feed(detector, intervals)
    mean = sum([0.75, 1.25, *intervals]) / 6
    for elapsed in (0.0, 1.0, 5.0, 20.0):
        assert detector.phi(last + elapsed) == pytest.approx(elapsed / (mean * math.log(10)))
    assert phi_exponential(2.0, 1.0) == pytest.approx(2.0 / math.log(10))
    deadline = detector.failure_deadline()
    assert deadline == pytest.approx(last + 8.0 * mean * math.log(10))


def test_first_heartbeat_seeds_the_window_and_unknown_peer_is_available() -> None:
    detector = PhiAccrualDetector(first_heartbeat_estimate=2.0)
    assert detector.phi(50.0) == 0.0 and detector.is_available(50.0)
    assert detector.failure_deadline() is None and detector.sample_count == 0
    assert detector.heartbeat(10.0) == 0.0
    assert detector.sample_count == 2
    assert detector.mean == pytest.approx(2.0)
    assert detector.std_deviation == pytest.approx(0.5)
    assert list(detector.intervals()) == [1.5, 2.5]


def test_interval_after_an_outage_is_not_recorded() -> None:
    detector = PhiAccrualDetector(threshold=8.0)
    last = feed(detector, [1.0] * 50)
    count, mean = detector.sample_count, detector.mean
    phi_before = detector.heartbeat(last + 60.0)  # came back after a minute
    assert phi_before >= 8.0
    assert detector.sample_count == count and detector.mean == pytest.approx(mean)
    assert detector.last_heartbeat == last + 60.0
    assert detector.phi(last + 60.5) < 1.0  # the clock restarts from the new heartbeat


def test_ring_buffer_keeps_the_last_samples_and_exact_statistics() -> None:
    rng = np.random.default_rng(7)
    detector = PhiAccrualDetector(max_sample_size=100, threshold=300.0)
    intervals = list(rng.uniform(0.5, 1.5, 5000))
    feed(detector, intervals)
    window = detector.intervals()
    assert detector.sample_count == 100
    assert np.allclose(window, intervals[-100:])
    assert detector.mean == pytest.approx(float(np.mean(window)), rel=1e-12)
    assert detector.std_deviation == pytest.approx(float(np.std(window)), rel=1e-9)


def test_time_going_backwards_is_rejected_and_changes_nothing() -> None:
    detector = PhiAccrualDetector()
    last = feed(detector, [1.0, 1.0])
    before = (detector.sample_count, detector.mean, detector.last_heartbeat)
    for bad in (last - 0.5, math.nan, math.inf):
        with pytest.raises(ValidationFailed) as caught:
            detector.heartbeat(bad)
        assert caught.value.errors[0][0] == "now"
    assert (detector.sample_count, detector.mean, detector.last_heartbeat) == before


def test_invalid_configuration_lists_every_bad_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        PhiAccrualDetector(threshold=-1, max_sample_size=0, distribution="weibull",
                           acceptable_heartbeat_pause=-2.0)
    fields = {path for path, _ in caught.value.errors}
    assert fields == {"threshold", "max_sample_size", "distribution",
                      "acceptable_heartbeat_pause"}


@pytest.mark.parametrize("model", [("normal", "exact"), ("normal", "akka"),
                                   ("exponential", "exact")])
def test_failure_deadline_is_where_phi_crosses_the_threshold(model: tuple[str, str]) -> None:
    detector = PhiAccrualDetector(threshold=8.0, distribution=model[0], normal_cdf=model[1])
    feed(detector, [1.0, 1.1, 0.9, 1.05, 0.95] * 10)
    deadline = detector.failure_deadline()
    assert deadline is not None
    assert detector.phi(deadline) == pytest.approx(8.0, rel=1e-6)
    assert detector.is_available(deadline - 1e-6)
    assert not detector.is_available(deadline + 1e-6)


# --------------------------------------------------------------------------- health


def test_seed_bands_are_reproduced_at_threshold_two() -> None:
    assert health_band(0.0, 2.0) is HealthBand.HEALTHY
    assert health_band(0.999, 2.0) is HealthBand.HEALTHY
    assert health_band(1.0, 2.0) is HealthBand.SUSPICIOUS
    assert health_band(1.999, 2.0) is HealthBand.SUSPICIOUS
    assert health_band(2.0, 2.0) is HealthBand.FAILED


def test_bands_and_score_scale_with_the_threshold() -> None:
    assert health_band(3.9, 8.0) is HealthBand.HEALTHY
    assert health_band(4.0, 8.0) is HealthBand.SUSPICIOUS
    assert health_band(8.0, 8.0) is HealthBand.FAILED
    assert health_score(0.0, 8.0) == 1.0
    assert health_score(2.0, 8.0) == pytest.approx(0.75)
    assert health_score(50.0, 8.0) == 0.0
    for phi in np.linspace(0.0, 20.0, 401):
        score, band = health_score(float(phi), 8.0), health_band(float(phi), 8.0)
        assert (band is HealthBand.FAILED) == (score == 0.0)
        assert (band is HealthBand.HEALTHY) == (score > 0.5)


def test_registry_tracks_peers_and_reports_not_found_as_none() -> None:
    registry = FailureDetectorRegistry(DetectorConfig(threshold=8.0,
                                                      acceptable_heartbeat_pause=0.0))
    assert registry.phi("ghost", 5.0) == 0.0 and registry.is_available("ghost", 5.0)
    assert registry.health("ghost", 5.0) is None and "ghost" not in registry
    for t in range(10):
        registry.heartbeat("n2", float(t))
        registry.heartbeat("n1", float(t) + 0.5)
    snapshot = registry.snapshot(10.2)
    assert list(snapshot) == ["n1", "n2"]
    assert snapshot["n2"].phi > snapshot["n1"].phi  # n2 has been silent longer
    assert snapshot["n2"].to_dict()["band"] in {"healthy", "suspicious", "failed"}
    assert registry.max_phi(10.2) == snapshot["n2"].phi
    n2_deadline = snapshot["n2"].failure_deadline
    assert n2_deadline is not None and registry.next_deadline(10.2) == n2_deadline
    health = registry.health("n2", n2_deadline + 0.01)
    assert health is not None and health.band is HealthBand.FAILED and not health.available
    assert registry.next_deadline(n2_deadline + 0.01) == snapshot["n1"].failure_deadline
    registry.remove("n2")
    assert registry.peers() == ["n1"] and len(registry) == 1


# --------------------------------------------------------------------------- adaptive interval


def test_adaptive_interval_shrinks_on_trouble_and_returns_to_base() -> None:
    policy = AdaptiveIntervalPolicy.for_threshold(8.0, base=1.0, min_interval=0.25,
                                                  max_interval=4.0)
    interval = 1.0
    interval = policy.next_interval(interval, max_phi=4.5)  # suspicious peer
    assert interval == 0.5
    for _ in range(5):
        interval = policy.next_interval(interval, max_phi=9.0)
    assert interval == 0.25  # bounded below
    assert policy.next_interval(1.0, max_phi=0.1, jitter=0.9) == 0.5  # jitter alone
    steps = []
    for _ in range(20):
        interval = policy.next_interval(interval, max_phi=0.1)
        steps.append(interval)
    assert all(b >= a for a, b in itertools.pairwise(steps)) and steps[-1] == 1.0
    assert policy.next_interval(4.0, max_phi=0.0) == pytest.approx(3.2)  # down towards base
    assert policy.next_interval(9.0, max_phi=9.0) == 4.0  # clamped to max
    with pytest.raises(ValidationFailed):
        AdaptiveIntervalPolicy(base=0.1, min_interval=0.25)


# --------------------------------------------------------------------------- monitors


@settings(max_examples=150)
@given(st.integers(1, 40), st.integers(0, 12))
def test_every_node_gets_min_k_monitors_with_balanced_load(n: int, k: int) -> None:
    nodes = [f"n{i}" for i in range(n)]
    assignment = assign_monitors(nodes, k)
    expected = min(k, n - 1)
    assert set(assignment) == set(nodes)
    for node, monitors in assignment.items():
        assert len(monitors) == len(set(monitors)) == expected
        assert node not in monitors
    watched = watched_peers(assignment)
    assert all(len(peers) == expected for peers in watched.values())
    for monitor, peers in watched.items():
        assert all(monitor in assignment[peer] for peer in peers)
    assert assign_monitors(list(reversed(nodes)), k) == assignment  # order-independent


def test_default_is_nine_monitors_on_a_stable_ring() -> None:
    nodes = [f"node-{i}" for i in range(50)]
    assignment = assign_monitors(nodes)
    assert all(len(monitors) == 9 for monitors in assignment.values())
    ring = monitor_ring(nodes)
    assert ring == monitor_ring(set(nodes)) and sorted(ring) == sorted(nodes)
    position = {node: i for i, node in enumerate(ring)}
    for node, monitors in assignment.items():
        assert [(position[m] - position[node]) % 50 for m in monitors] == list(range(1, 10))


@settings(max_examples=150)
@given(st.integers(2, 30), st.integers(1, 10), st.data())
def test_unreachable_monitors_are_replaced(n: int, k: int, data: st.DataObject) -> None:
    nodes = [f"n{i}" for i in range(n)]
    down = data.draw(st.sets(st.sampled_from(nodes)))
    assignment = assign_monitors(nodes, k, unreachable=down)
    for node, monitors in assignment.items():
        reachable_others = len([p for p in nodes if p != node and p not in down])
        reachable = [m for m in monitors if m not in down]
        assert len(reachable) == min(k, reachable_others)
        assert node not in monitors and len(monitors) == len(set(monitors))


# --------------------------------------------------------------------------- simulated time


def jittered_arrivals(count: int, *, interval: float = 1.0, jitter: float = 0.1,
                      loss: float = 0.01, seed: int = 0) -> np.ndarray:
    """Arrival times of ``count`` heartbeats sent every ``interval`` s with normal
    jitter of sd ``jitter * interval``; each is lost with probability ``loss``."""
    rng = np.random.default_rng(seed)
    gaps = np.maximum(rng.normal(interval, jitter * interval, count), 0.01 * interval)
    delivered = rng.random(count) >= loss
    return np.cumsum(gaps)[delivered]


def test_million_heartbeats_with_jitter_and_loss_give_at_most_one_false_suspicion() -> None:
    """Threshold 8, 1 s ± 10 % jitter, 1 % loss: no more than 1 false suspicion per
    10^6 heartbeats, and a crashed peer is failed within interval + pause + 2
    intervals (p99 over 1,000 crashes, measured from its last heartbeat)."""
    sent = 1_000_000
    arrivals = jittered_arrivals(sent)
    gaps = np.diff(arrivals)
    assert (gaps > 3.5).sum() >= 1  # the run does contain triple losses
    detector = PhiAccrualDetector(threshold=8.0)
    heartbeat = detector.heartbeat
    crash_every = len(arrivals) // 1000
    latencies: list[float] = []
    false_suspicions = 0
    worst_phi = 0.0
    for i, now in enumerate(arrivals.tolist()):
        phi_before = heartbeat(now)  # the peak of phi over the gap this arrival closes
        if phi_before >= 8.0:
            false_suspicions += 1
        worst_phi = max(worst_phi, phi_before)
        if i % crash_every == crash_every - 1 and len(latencies) < 1000:
            # the peer crashes right after this heartbeat: when is it declared failed?
            deadline = detector.failure_deadline()
            assert deadline is not None
            if len(latencies) % 100 == 0:
                assert detector.is_available(deadline - 1e-6)
                assert detector.health_band(deadline + 1e-6) is HealthBand.FAILED
            latencies.append(deadline - now)
    assert false_suspicions <= 1, (false_suspicions, worst_phi)
    assert len(latencies) == 1000
    p99 = float(np.percentile(latencies, 99))
    assert min(latencies) >= 1.0 + 3.0  # the acceptable pause is honoured
    assert p99 <= 1.0 + 3.0 + 2.0, p99


def test_the_simulation_counts_suspicions_when_the_model_allows_them() -> None:
    """Without an acceptable pause every lost heartbeat is a suspicion at phi 8, so
    the counting in the million-heartbeat run above is able to see them."""
    arrivals = jittered_arrivals(50_000, seed=3)
    detector = PhiAccrualDetector(threshold=8.0, acceptable_heartbeat_pause=0.0)
    suspicions = sum(detector.heartbeat(t) >= 8.0 for t in arrivals.tolist())
    lost_gaps = int((np.diff(arrivals) > 1.5).sum())
    assert suspicions >= 0.8 * lost_gaps > 100
