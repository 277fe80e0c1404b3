"""Phi accrual failure detection (Hayashibara et al. 2004), after Akka's
``PhiAccrualFailureDetector``.

A detector keeps the inter-arrival intervals of one peer's heartbeats in a
sliding window and turns the time since the last heartbeat into a suspicion
level ``phi = -log10(P(a heartbeat arrives later than now))``. ``phi = 1``
means a 10 % chance that the peer is merely late, ``phi = 8`` one in 10^8.

Models (``distribution``):

* ``"normal"`` (default, Akka): intervals ~ Normal(mean + acceptable pause,
  max(std, min_std_deviation)). The tail is computed with the exact
  complementary error function, ``P = erfc(y / sqrt 2) / 2``, evaluated in
  log space so that phi stays finite and monotone far into the tail.
  ``normal_cdf="akka"`` uses Akka's logistic approximation of the CDF instead,
  ``P = e / (1 + e)`` with ``e = exp(-y (1.5976 + 0.070566 y^2))``.
* ``"exponential"`` (Cassandra): ``phi = elapsed / (mean * ln 10)``; standard
  deviation, its floor and the acceptable pause are not used.

Health: ``score = clamp(1 - phi / threshold, 0, 1)`` and three bands that
scale with the threshold: healthy below ``threshold / 2``, suspicious below
``threshold``, failed at or above it. With ``threshold = 2`` these are exactly
the seed's bands (phi < 1 healthy, < 2 suspicious, >= 2 failed); since phi is
a log-probability, "half the threshold" means the peer is healthy while the
chance of it being merely late is above the square root of the conviction
probability.

Also here: :class:`FailureDetectorRegistry` (one detector per peer),
:class:`AdaptiveIntervalPolicy` (the seed's adaptive heartbeat frequency) and
:func:`assign_monitors` (each node watched by k peers on a hash ring, not by
everyone). Times are float seconds supplied by the caller; nothing here reads
a clock.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cluster_actors.errors import ValidationFailed

_LN10 = math.log(10.0)
_SQRT2 = math.sqrt(2.0)
_HALF_LN_PI = 0.5 * math.log(math.pi)

DISTRIBUTIONS = ("normal", "exponential")
NORMAL_CDFS = ("exact", "akka")


# --------------------------------------------------------------------------- formulas


def phi_normal(elapsed: float, mean: float, std: float) -> float:
    """``-log10(1 - F(elapsed))`` for F = Normal(mean, std), exact (via erfc).

    Finite and strictly increasing in ``elapsed`` for every float input; far in
    the tail it uses the asymptotic expansion of erfc instead of underflowing.
    """
    x = (elapsed - mean) / (std * _SQRT2)
    if x < 25.0:
        return max(0.0, -math.log10(0.5 * math.erfc(x)))
    inv = 1.0 / (2.0 * x * x)
    series = 1.0 - inv + 3.0 * inv * inv - 15.0 * inv * inv * inv
    ln_sf = -x * x - math.log(2.0 * x) - _HALF_LN_PI + math.log(series)
    return -ln_sf / _LN10


def phi_normal_akka(elapsed: float, mean: float, std: float) -> float:
    """Akka's phi: the logistic approximation of the normal CDF, in log space.

    Equals ``-log10(e / (1 + e))`` with ``e = exp(-y (1.5976 + 0.070566 y^2))``
    and ``y = (elapsed - mean) / std``.
    """
    y = (elapsed - mean) / std
    z = y * (1.5976 + 0.070566 * y * y)
    softplus = z + math.log1p(math.exp(-z)) if z > 0.0 else math.log1p(math.exp(z))
    return softplus / _LN10


def phi_exponential(elapsed: float, mean: float) -> float:
    """Cassandra's phi for exponentially distributed intervals: ``elapsed / (mean ln 10)``."""
    return max(0.0, elapsed) / (mean * _LN10)


class HealthBand(str, enum.Enum):
    """Coarse health of a peer; boundaries at ``threshold / 2`` and ``threshold``."""

    HEALTHY = "healthy"
    SUSPICIOUS = "suspicious"
    FAILED = "failed"


def health_band(phi: float, threshold: float) -> HealthBand:
    """Healthy if ``phi < threshold/2``, suspicious if ``phi < threshold``, else failed."""
    if phi < threshold / 2.0:
        return HealthBand.HEALTHY
    if phi < threshold:
        return HealthBand.SUSPICIOUS
    return HealthBand.FAILED


def health_score(phi: float, threshold: float) -> float:
    """``clamp(1 - phi / threshold, 0, 1)``: 1 fresh, > 0.5 healthy, 0 failed."""
    return min(1.0, max(0.0, 1.0 - phi / threshold))


# --------------------------------------------------------------------------- detector


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of a :class:`PhiAccrualDetector`; defaults are Akka's (seconds).

    Raises :class:`ValidationFailed` listing every bad field.
    """

    threshold: float = 8.0
    max_sample_size: int = 1000
    min_std_deviation: float = 0.1
    acceptable_heartbeat_pause: float = 3.0
    first_heartbeat_estimate: float = 1.0
    distribution: str = "normal"
    normal_cdf: str = "exact"

    def __post_init__(self) -> None:
        errors: list[tuple[str, str]] = []

        def positive(name: str, value: float) -> None:
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                errors.append((name, f"must be a finite number > 0, got {value!r}"))

        positive("threshold", self.threshold)
        positive("min_std_deviation", self.min_std_deviation)
        positive("first_heartbeat_estimate", self.first_heartbeat_estimate)
        if isinstance(self.threshold, (int, float)) and self.threshold > 300:
            errors.append(("threshold", "must be <= 300 (phi is a log10 probability)"))
        if not (isinstance(self.max_sample_size, int) and self.max_sample_size >= 1):
            errors.append(("max_sample_size", f"must be an int >= 1, got {self.max_sample_size!r}"))
        pause = self.acceptable_heartbeat_pause
        if not (isinstance(pause, (int, float)) and math.isfinite(pause) and pause >= 0):
            errors.append(("acceptable_heartbeat_pause", f"must be a finite number >= 0, got {pause!r}"))
        if self.distribution not in DISTRIBUTIONS:
            errors.append(("distribution", f"must be one of {DISTRIBUTIONS}, got {self.distribution!r}"))
        if self.normal_cdf not in NORMAL_CDFS:
            errors.append(("normal_cdf", f"must be one of {NORMAL_CDFS}, got {self.normal_cdf!r}"))
        if errors:
            raise ValidationFailed(errors)


class _IntervalWindow:
    """Fixed-size numpy ring buffer of intervals with running sums (O(1) append).

    Sums are kept of deviations from ``reference`` to limit cancellation, and
    recomputed exactly from the buffer once per ``capacity`` evictions so that
    rounding error cannot accumulate (amortised O(1)).
    """

    def __init__(self, capacity: int, reference: float) -> None:
        self._buffer = np.zeros(capacity, dtype=np.float64)
        self._capacity = capacity
        self._reference = reference
        self._count = 0
        self._next = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._evictions = 0

    def append(self, interval: float) -> None:
        deviation = interval - self._reference
        if self._count == self._capacity:
            old = float(self._buffer[self._next]) - self._reference
            self._sum -= old
            self._sumsq -= old * old
            self._evictions += 1
        else:
            self._count += 1
        self._buffer[self._next] = interval
        self._next = (self._next + 1) % self._capacity
        self._sum += deviation
        self._sumsq += deviation * deviation
        if self._evictions >= self._capacity:
            deviations = self._buffer - self._reference
            self._sum = float(deviations.sum())
            self._sumsq = float(np.dot(deviations, deviations))
            self._evictions = 0

    @property
    def count(self) -> int:
        return self._count

    @property
    def mean(self) -> float:
        return self._reference + self._sum / self._count if self._count else 0.0

    @property
    def std(self) -> float:
        """Population standard deviation (as Akka's ``HeartbeatHistory``)."""
        if not self._count:
            return 0.0
        centre = self._sum / self._count
        return math.sqrt(max(0.0, self._sumsq / self._count - centre * centre))

    def values(self) -> np.ndarray:
        """A copy of the window, oldest first."""
        if self._count < self._capacity:
            return self._buffer[: self._count].copy()
        return np.concatenate((self._buffer[self._next :], self._buffer[: self._next]))


def _solve_increasing(fn: Callable[[float], float], target: float) -> float:
    """The y with ``fn(y) == target`` for a continuous increasing fn (bisection)."""
    lo, hi = -60.0, 60.0
    while fn(hi) < target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if fn(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, abs(hi)):
            break
    return hi


class PhiAccrualDetector:
    """Phi accrual failure detector for one peer.

    Contract: call :meth:`heartbeat` with non-decreasing ``now`` values. The
    first heartbeat seeds the window with two intervals ``estimate ± estimate/4``
    (Akka). A later heartbeat records its interval only if the peer was still
    available just before it arrived, so that a long outage does not inflate
    the statistics. Before any heartbeat, ``phi`` is 0 and the peer counts as
    available (Akka). ``phi(now)`` is O(1) and non-decreasing in ``now``.
    """

    def __init__(
        self,
        threshold: float = 8.0,
        max_sample_size: int = 1000,
        min_std_deviation: float = 0.1,
        acceptable_heartbeat_pause: float = 3.0,
        first_heartbeat_estimate: float = 1.0,
        distribution: str = "normal",
        normal_cdf: str = "exact",
        *,
        config: DetectorConfig | None = None,
    ) -> None:
        if config is None:
            config = DetectorConfig(
                threshold, max_sample_size, min_std_deviation, acceptable_heartbeat_pause,
                first_heartbeat_estimate, distribution, normal_cdf)
        self.config = config
        self._window = _IntervalWindow(config.max_sample_size, config.first_heartbeat_estimate)
        self._last: float | None = None
        self._exponential = config.distribution == "exponential"
        self._normal_phi = phi_normal_akka if config.normal_cdf == "akka" else phi_normal
        # y at which phi(y) reaches the threshold: depends on the threshold only.
        self._threshold_y = _solve_increasing(
            lambda y: self._normal_phi(y, 0.0, 1.0), config.threshold)

    @classmethod
    def from_config(cls, config: DetectorConfig) -> PhiAccrualDetector:
        return cls(config=config)

    # ----------------------------------------------------------------- inputs

    def heartbeat(self, now: float) -> float:
        """Record a heartbeat arriving at ``now``; return phi just before it.

        The returned value is the highest suspicion reached during the gap that
        this heartbeat closes (phi only grows between heartbeats); 0.0 for the
        first heartbeat. Raises ValidationFailed if ``now`` is not finite or
        goes backwards (nothing is changed then).
        """
        last = self._last
        if last is None:
            if not math.isfinite(now):
                raise ValidationFailed([("now", f"must be a finite time, got {now!r}")])
            estimate = self.config.first_heartbeat_estimate
            self._window.append(estimate - estimate / 4.0)
            self._window.append(estimate + estimate / 4.0)
            self._last = now
            return 0.0
        if not (now >= last and math.isfinite(now)):
            raise ValidationFailed(
                [("now", f"heartbeat time {now!r} is before the previous one {last!r}")])
        phi_before = self.phi(now)
        if phi_before < self.config.threshold:
            self._window.append(now - last)
        self._last = now
        return phi_before

    # ----------------------------------------------------------------- outputs

    def phi(self, now: float) -> float:
        """Suspicion level at ``now`` (0.0 before the first heartbeat)."""
        last = self._last
        if last is None:
            return 0.0
        elapsed = now - last
        if self._exponential:
            return phi_exponential(elapsed, self._window.mean)
        return self._normal_phi(elapsed, self.effective_mean, self.effective_std)

    def is_available(self, now: float) -> bool:
        """``phi(now) < threshold``."""
        return self.phi(now) < self.config.threshold

    def health_score(self, now: float) -> float:
        """See :func:`health_score`."""
        return health_score(self.phi(now), self.config.threshold)

    def health_band(self, now: float) -> HealthBand:
        """See :func:`health_band`."""
        return health_band(self.phi(now), self.config.threshold)

    def failure_deadline(self) -> float | None:
        """Absolute time at which phi reaches the threshold if no heartbeat arrives.

        None before the first heartbeat. A runtime can arm one timer for this
        instant instead of polling phi; it moves with every heartbeat.
        """
        if self._last is None:
            return None
        if self._exponential:
            return self._last + self.config.threshold * self._window.mean * _LN10
        return self._last + self.effective_mean + self._threshold_y * self.effective_std

    # ----------------------------------------------------------------- stats

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @property
    def last_heartbeat(self) -> float | None:
        return self._last

    @property
    def sample_count(self) -> int:
        """Intervals in the window (2 right after the first heartbeat, 0 before)."""
        return self._window.count

    @property
    def mean(self) -> float:
        """Mean interval of the window in seconds (0.0 before the first heartbeat)."""
        return self._window.mean

    @property
    def std_deviation(self) -> float:
        """Population standard deviation of the window, before the floor."""
        return self._window.std

    @property
    def effective_mean(self) -> float:
        """Mean of the normal model: window mean + acceptable heartbeat pause."""
        return self._window.mean + self.config.acceptable_heartbeat_pause

    @property
    def effective_std(self) -> float:
        """Std of the normal model: ``max(std_deviation, min_std_deviation)``."""
        return max(self._window.std, self.config.min_std_deviation)

    @property
    def jitter(self) -> float:
        """Coefficient of variation ``std / mean`` of the window (0.0 if empty)."""
        mean = self._window.mean
        return self._window.std / mean if mean > 0 else 0.0

    def intervals(self) -> np.ndarray:
        """A copy of the interval window, oldest first."""
        return self._window.values()


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class PeerHealth:
    """What a monitor knows about one peer at one instant."""

    peer: str
    phi: float
    score: float
    band: HealthBand
    available: bool
    mean: float
    std_deviation: float
    samples: int
    last_heartbeat: float | None
    failure_deadline: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (band as its string value)."""
        return {
            "peer": self.peer, "phi": self.phi, "score": self.score, "band": self.band.value,
            "available": self.available, "mean": self.mean,
            "std_deviation": self.std_deviation, "samples": self.samples,
            "last_heartbeat": self.last_heartbeat, "failure_deadline": self.failure_deadline,
        }


class FailureDetectorRegistry:
    """One :class:`PhiAccrualDetector` per peer, created on its first heartbeat.

    Unknown peers have phi 0.0 and count as available (Akka's registry);
    :meth:`health` returns None for them (the seed's ``not_found``).
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._detectors: dict[str, PhiAccrualDetector] = {}

    def heartbeat(self, peer: str, now: float) -> float:
        """Record a heartbeat from ``peer``; return phi just before it."""
        detector = self._detectors.get(peer)
        if detector is None:
            detector = self._detectors[peer] = PhiAccrualDetector(config=self.config)
        return detector.heartbeat(now)

    def phi(self, peer: str, now: float) -> float:
        detector = self._detectors.get(peer)
        return detector.phi(now) if detector is not None else 0.0

    def is_available(self, peer: str, now: float) -> bool:
        detector = self._detectors.get(peer)
        return detector.is_available(now) if detector is not None else True

    def detector(self, peer: str) -> PhiAccrualDetector | None:
        return self._detectors.get(peer)

    def health(self, peer: str, now: float) -> PeerHealth | None:
        """Health of ``peer`` at ``now``, or None if it never sent a heartbeat."""
        detector = self._detectors.get(peer)
        return None if detector is None else self._health(peer, detector, now)

    def snapshot(self, now: float) -> dict[str, PeerHealth]:
        """Health of every known peer, keyed by peer id in sorted order."""
        return {peer: self._health(peer, self._detectors[peer], now)
                for peer in sorted(self._detectors)}

    def _health(self, peer: str, detector: PhiAccrualDetector, now: float) -> PeerHealth:
        phi = detector.phi(now)
        threshold = self.config.threshold
        return PeerHealth(
            peer=peer, phi=phi, score=health_score(phi, threshold),
            band=health_band(phi, threshold), available=phi < threshold,
            mean=detector.mean, std_deviation=detector.std_deviation,
            samples=detector.sample_count, last_heartbeat=detector.last_heartbeat,
            failure_deadline=detector.failure_deadline())

    def max_phi(self, now: float) -> float:
        """Highest phi among known peers (0.0 if none): input to the interval policy."""
        return max((d.phi(now) for d in self._detectors.values()), default=0.0)

    def max_jitter(self) -> float:
        """Highest interval coefficient of variation among known peers (0.0 if none)."""
        return max((d.jitter for d in self._detectors.values()), default=0.0)

    def next_deadline(self, now: float) -> float | None:
        """Earliest failure deadline after ``now`` (peers not yet failed), or None.

        A runtime arms one timer for it instead of polling every peer's phi.
        """
        deadlines = [d.failure_deadline() for d in self._detectors.values()]
        return min((t for t in deadlines if t is not None and t > now), default=None)

    def remove(self, peer: str) -> None:
        """Forget ``peer`` (e.g. it left); a later heartbeat starts afresh."""
        self._detectors.pop(peer, None)

    def peers(self) -> list[str]:
        return sorted(self._detectors)

    def __contains__(self, peer: object) -> bool:
        return peer in self._detectors

    def __len__(self) -> int:
        return len(self._detectors)


# --------------------------------------------------------------------------- adaptive interval


@dataclass(frozen=True)
class AdaptiveIntervalPolicy:
    """The seed's "adaptive frequency": how the heartbeat period follows conditions.

    Rule, applied once per period by :meth:`next_interval`:

    * trouble: some peer is at least suspicious (``max_phi >= suspicious_phi``,
      by default half the threshold) or its interval jitter (std / mean) exceeds
      ``jitter_limit``: shrink the period, ``current * shrink``, to confirm or
      clear the suspicion sooner;
    * calm: move back towards ``base`` geometrically (``current * grow`` when
      below it, ``current / grow`` when above);
    * always clamp to ``[min_interval, max_interval]``.

    Receivers' windows see the shorter period only gradually (1,000 samples),
    so speeding up never makes them more trigger-happy than before.
    """

    base: float = 1.0
    min_interval: float = 0.25
    max_interval: float = 5.0
    suspicious_phi: float = 4.0
    jitter_limit: float = 0.5
    shrink: float = 0.5
    grow: float = 1.25

    def __post_init__(self) -> None:
        errors: list[tuple[str, str]] = []
        if not 0 < self.min_interval <= self.base <= self.max_interval:
            errors.append(("base", "need 0 < min_interval <= base <= max_interval"))
        if not 0 < self.shrink < 1:
            errors.append(("shrink", "must be in (0, 1)"))
        if not self.grow > 1:
            errors.append(("grow", "must be > 1"))
        if not (self.suspicious_phi > 0 and self.jitter_limit > 0):
            errors.append(("suspicious_phi", "suspicious_phi and jitter_limit must be > 0"))
        if errors:
            raise ValidationFailed(errors)

    @classmethod
    def for_threshold(cls, threshold: float, **settings: Any) -> AdaptiveIntervalPolicy:
        """A policy whose trouble level is the suspicious band of ``threshold``."""
        return cls(suspicious_phi=threshold / 2.0, **settings)

    def next_interval(self, current: float, *, max_phi: float, jitter: float = 0.0) -> float:
        """The period to use next, given the worst peer's phi and jitter."""
        if max_phi >= self.suspicious_phi or jitter > self.jitter_limit:
            proposed = current * self.shrink
        elif current < self.base:
            proposed = min(self.base, current * self.grow)
        else:
            proposed = max(self.base, current / self.grow)
        return min(self.max_interval, max(self.min_interval, proposed))


# --------------------------------------------------------------------------- monitor assignment


def _ring_key(node_id: str) -> tuple[bytes, str]:
    return hashlib.blake2b(node_id.encode(), digest_size=8).digest(), node_id


def monitor_ring(node_ids: Iterable[str]) -> list[str]:
    """Nodes in ring order: sorted by a stable 64-bit hash of the id, then the id.

    The same on every process (unlike ``hash()``), and it spreads neighbours
    with similar names (n1, n2, ...) around the ring.
    """
    return sorted(set(node_ids), key=_ring_key)


def assign_monitors(node_ids: Iterable[str], k: int = 9,
                    unreachable: Iterable[str] = ()) -> dict[str, list[str]]:
    """For each node, the peers that watch it (Akka's heartbeat node ring).

    A node's monitors are its successors on :func:`monitor_ring`, taken until
    ``min(k, reachable others)`` reachable ones are collected; unreachable
    successors met on the way are kept too (they still get heartbeats, so a
    recovery is noticed). Without unreachable nodes every node has exactly
    ``min(k, n - 1)`` monitors and watches exactly as many peers. In the push
    model a node sends its heartbeats to ``assign_monitors(...)[node]``; see
    :func:`watched_peers` for the other direction. Deterministic.
    """
    if k < 0:
        raise ValidationFailed([("k", f"must be >= 0, got {k}")])
    ring = monitor_ring(node_ids)
    down = set(unreachable)
    n = len(ring)
    reachable_total = sum(1 for node in ring if node not in down)
    assignment: dict[str, list[str]] = {}
    for position, node in enumerate(ring):
        wanted = min(k, reachable_total - (0 if node in down else 1))
        monitors: list[str] = []
        reachable = 0
        for step in range(1, n):
            if reachable >= wanted:
                break
            peer = ring[(position + step) % n]
            monitors.append(peer)
            if peer not in down:
                reachable += 1
        assignment[node] = monitors
    return assignment


def watched_peers(assignment: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Invert :func:`assign_monitors`: for each monitor, the peers it watches.

    In a request/response model (Akka) a monitor sends heartbeat requests to
    these peers; in the push model it expects heartbeats from them.
    """
    watched: dict[str, list[str]] = {node: [] for node in assignment}
    for node, monitors in assignment.items():
        for monitor in monitors:
            watched.setdefault(monitor, []).append(node)
    return {monitor: sorted(peers, key=_ring_key) for monitor, peers in watched.items()}
