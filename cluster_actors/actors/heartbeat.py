"""The heartbeat component: a thin Ray shell around the phi accrual failure
detector (:mod:`cluster_actors.core.phi`), with the seed's Heartbeat Manager API.

Each round (every ``heartbeat_interval`` ms, adapted by
:class:`~cluster_actors.core.phi.AdaptiveIntervalPolicy`) the actor

1. sends one heartbeat, as one Ray call per peer, to the nodes that monitor
   it (:func:`~cluster_actors.core.phi.assign_monitors` with
   ``k = monitors_per_node``; with ``k >= n - 1`` that is every other node);
2. evaluates phi for the peers it watches (the nodes whose monitors include
   it), publishes ``peer_suspected`` / ``peer_failed`` / ``peer_recovered``
   when a peer changes band, and reports reachability changes (failed or not)
   to the membership component of the same node in one call.

Arrival times come from ``time.monotonic()`` in this shell; the detector core
only does arithmetic on them. Each heartbeat carries the sender's metadata
(``load``, by default the 1-minute load average per CPU, plus anything set with
:meth:`HeartbeatActor.send_heartbeat` or :meth:`HeartbeatActor.set_metadata`,
e.g. ``region``); the receiver keeps the latest per peer and shows it in
:meth:`HeartbeatActor.get_heartbeat_status`.

A watched peer that has never sent a heartbeat counts as healthy (Akka) until
a grace period has passed since it became watched (``max(10 s, 20 intervals,
2 acceptable pauses)``, room for a cluster's staggered start); then it is
treated as if it had sent one at that moment, so a node that never comes up is
still declared failed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import deque
from typing import Any

import ray

from ..core.config import MAX_MEMBERS, MAX_MS
from ..core.limits import (
    MAX_ACCEPTABLE_PAUSE_MS,
    MAX_MIN_STD_DEVIATION_MS,
    MAX_PHI_THRESHOLD,
    MAX_SAMPLE_SIZE,
)
from ..core.peer_checks import (
    heartbeat_problem,
    heartbeat_sender_allowed,
    message_src,
    metadata_problem,
)
from ..core.phi import (
    AdaptiveIntervalPolicy,
    DetectorConfig,
    FailureDetectorRegistry,
    HealthBand,
    assign_monitors,
    watched_peers,
)
from ..errors import ClusterError, NotFound, ValidationFailed
from .base import ComponentActor

#: Recent heartbeat delivery times kept per peer (send to receive, ms).
DELIVERY_SAMPLES = 256

logger = logging.getLogger(__name__)

#: Every this many rounds the full reachability picture is re-sent to the
#: membership component (it may have restarted and lost what it was told).
REACHABILITY_RESYNC_ROUNDS = 50

_BAND_EVENTS = {HealthBand.HEALTHY: "peer_recovered", HealthBand.SUSPICIOUS: "peer_suspected",
                HealthBand.FAILED: "peer_failed"}

#: configure() parameter aliases -> canonical name
_PARAMETERS = {
    "heartbeat_interval": "heartbeat_interval", "interval": "heartbeat_interval",
    "phi_threshold": "threshold", "threshold": "threshold",
    "acceptable_heartbeat_pause": "acceptable_heartbeat_pause",
    "acceptable_pause": "acceptable_heartbeat_pause",
    "min_std_deviation": "min_std_deviation", "min_std": "min_std_deviation",
    "max_sample_size": "max_sample_size", "distribution": "distribution",
    "normal_cdf": "normal_cdf", "monitors_per_node": "monitors_per_node",
    "adaptive": "adaptive",
}


def _number(name: str, value: Any, minimum: float, maximum: float,
            inclusive: bool = True) -> float:
    """``value`` as a finite float above ``minimum`` and at most ``maximum``,
    else ValidationFailed."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value >= minimum if inclusive else value > minimum)
          and value <= maximum)
    if not ok:
        bound = "[" if inclusive else "("
        raise ValidationFailed([(name, f"must be a finite number in {bound}{minimum:g}, "
                                       f"{maximum:g}], got {value!r:.80}")])
    return float(value)


def _integer(name: str, value: Any, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValidationFailed([(name, f"must be an int in {minimum}..{maximum}, "
                                       f"got {value!r:.80}")])
    return value


def _check_metadata(metadata: Any) -> dict[str, Any]:
    """``metadata`` if a heartbeat may carry it (:func:`metadata_problem`),
    else ValidationFailed: what this node sends, its peers accept."""
    problem = metadata_problem(metadata)
    if problem is not None:
        raise ValidationFailed([("metadata", f"{problem}; heartbeat metadata is a dict of "
                                             "JSON values (labels such as a region)")])
    return dict(metadata)


@ray.remote(num_cpus=0, max_restarts=0)
class HeartbeatActor(ComponentActor):
    """Failure detection for one node (see the module doc).

    The seed's API: :meth:`send_heartbeat`, :meth:`receive_heartbeat`,
    :meth:`get_heartbeat_status`, :meth:`get_node_health`, :meth:`configure`,
    :meth:`force_check`, ``subscribe`` / ``unsubscribe``. Times given to
    :meth:`configure` are milliseconds, as in the cluster options.
    """

    component = "heartbeat"
    uses_data_plane = True
    data_plane_policy = "keep_newest"  # only the newest heartbeat matters

    # ------------------------------------------------------------ lifecycle
    async def on_start(self) -> None:
        opts = self.options
        self.base_interval = opts.heartbeat_interval / 1000
        self.interval = self.base_interval
        self.adaptive = True
        self.monitors_per_node = opts.monitors_per_node
        self.config = DetectorConfig(
            threshold=opts.phi_threshold,
            acceptable_heartbeat_pause=opts.acceptable_heartbeat_pause / 1000,
            first_heartbeat_estimate=self.base_interval)
        self.policy = self._policy()
        self.registry = FailureDetectorRegistry(self.config)
        self.own_metadata: dict[str, Any] = dict(opts.node_labels.get(self.node_id, {}))
        self.peer_metadata: dict[str, dict[str, Any]] = {}
        self.received_at: dict[str, float] = {}  # wall-clock time of the last heartbeat
        self.received: dict[str, int] = {}
        self.delivery_ms: dict[str, deque[float]] = {}  # per peer: recent delivery times
        self.bands: dict[str, HealthBand] = {}
        self.watch_since: dict[str, float] = {}
        self.reported: dict[str, bool] = {}  # reachability membership has acknowledged
        self._reporting = False
        self.seq = 0
        self.rounds = 0
        self.nodes: set[str] = set(self.voters) | {self.node_id}
        self.assignment: dict[str, list[str]] = {}
        self.watching: list[str] = []
        self._reassign()
        self.every(lambda: self.interval, self._round)
        self.run_forever(self._load_members(), "loading the members")

    def _policy(self) -> AdaptiveIntervalPolicy:
        base = self.base_interval
        return AdaptiveIntervalPolicy.for_threshold(
            self.config.threshold, base=base, min_interval=max(0.01, base / 2),
            max_interval=base * 4)

    async def _load_members(self) -> None:
        """Take the member list from the membership sibling once at start."""
        try:
            nodes = await asyncio.wait_for(
                self.sibling("membership").monitored_nodes.remote(), 5.0)
        except Exception:
            return  # not up yet: it pushes set_nodes when its view changes
        self._set_nodes(nodes)

    # ------------------------------------------------------------ the round
    async def _round(self) -> None:
        self._send(None)
        self._evaluate(time.monotonic())
        self.rounds += 1
        if self.adaptive:
            self.interval = self.policy.next_interval(
                self.interval, max_phi=self._trouble_phi(), jitter=self._jitter())

    def _send(self, metadata: dict[str, Any] | None) -> list[str]:
        if metadata:
            self.own_metadata = _check_metadata({**self.own_metadata, **metadata})
        self.seq += 1
        payload = {"load": _load(), **self.own_metadata}
        message = {"type": "heartbeat", "src": self.node_id, "seq": self.seq, "sent_at": time.time(),
                   "interval": self.interval, "metadata": payload}
        monitors = self.assignment.get(self.node_id, [])
        self.transport.send_to(monitors, [message])  # encoded once for all
        return monitors

    def _evaluate(self, now: float) -> dict[str, HealthBand]:
        """Phi of every watched peer; publish band changes; report reachability."""
        grace = max(10.0, 20 * self.base_interval, 2 * self.config.acceptable_heartbeat_pause)
        bands: dict[str, HealthBand] = {}
        for peer in self.watching:
            if peer not in self.registry:
                since = self.watch_since.get(peer, now)
                if now - since < grace:
                    continue
                self.registry.heartbeat(peer, since + grace)  # never heard: start its clock
            health = self.registry.health(peer, now)
            assert health is not None
            bands[peer] = health.band
            previous = self.bands.get(peer, HealthBand.HEALTHY)
            if health.band is not previous:
                self.events.publish(_BAND_EVENTS[health.band], peer=peer, phi=health.phi,
                                    band=health.band.value, previous=previous.value,
                                    score=health.score)
            self.bands[peer] = health.band
        if self.rounds % REACHABILITY_RESYNC_ROUNDS == 0:
            self.reported.clear()
        changes = {peer: band is not HealthBand.FAILED for peer, band in bands.items()
                   if self.reported.get(peer) != (band is not HealthBand.FAILED)}
        for peer, reachable in list(self.reported.items()):
            if peer not in self.watching and not reachable:
                changes[peer] = True  # no longer ours to judge: withdraw the verdict
        if changes and not self._reporting:
            self._reporting = True
            self.run_forever(self._report(changes), "reporting reachability")
        return bands

    async def _report(self, changes: dict[str, bool]) -> None:
        """Tell the membership sibling; remember what it acknowledged."""
        try:
            await self.sibling("membership").report_reachability.remote(changes)
        except ClusterError:
            pass  # membership is not up yet; retried next round
        except Exception:
            self.forget_sibling("membership")
        else:
            self.reported.update(changes)
            for peer, reachable in changes.items():
                if reachable and peer not in self.watching:
                    self.reported.pop(peer, None)
        finally:
            self._reporting = False

    def _trouble_phi(self) -> float:
        """Highest phi among watched peers not already failed (failed ones need
        no faster checking)."""
        now = time.monotonic()
        phis = [self.registry.phi(p, now) for p in self.watching
                if self.bands.get(p) is not HealthBand.FAILED]
        return max(phis, default=0.0)

    def _jitter(self) -> float:
        detectors = [self.registry.detector(p) for p in self.watching
                     if self.bands.get(p) is not HealthBand.FAILED]
        return max((d.jitter for d in detectors if d is not None), default=0.0)

    # ----------------------------------------------------------- membership
    def _set_nodes(self, nodes: list[str]) -> None:
        nodes_set = set(nodes) | {self.node_id}
        if nodes_set != self.nodes:
            self.nodes = nodes_set
            self._reassign()

    def _reassign(self) -> None:
        self.assignment = assign_monitors(sorted(self.nodes), k=self.monitors_per_node)
        watching = watched_peers(self.assignment).get(self.node_id, [])
        now = time.monotonic()
        for peer in set(watching) - set(self.watching):
            self.registry.remove(peer)  # an old gap must not count against it
            self.watch_since[peer] = now
        for peer in set(self.watching) - set(watching):
            self.bands.pop(peer, None)
            self.watch_since.pop(peer, None)
        self.watching = watching
        self.transport.set_peers(self.assignment.get(self.node_id, []))

    async def set_nodes(self, nodes: list[str]) -> list[str]:
        """The nodes to monitor among (the membership component calls this when
        its member set changes); returns the peers this node now watches."""
        if not isinstance(nodes, list) or not all(isinstance(n, str) and n for n in nodes):
            raise ValidationFailed([("nodes", "must be a list of node ids")])
        self._set_nodes(nodes)
        return list(self.watching)

    # -------------------------------------------------------------- receive
    async def receive(self, cluster: Any, src: Any, messages: Any) -> None:
        """A batch of heartbeats from ``src`` (the last one counts). Dropped and
        counted in ``transport`` of :meth:`get_heartbeat_status`: a batch from a
        node this one does not monitor among (``dropped_non_member``), a
        malformed heartbeat (``dropped_malformed``), one naming another sender
        (``dropped_spoofed``); see :mod:`~cluster_actors.core.peer_checks`."""
        if not self.started:
            return
        accepted = self.transport.accept(
            cluster, src, messages, heartbeat_problem, src_of=message_src,
            is_member=lambda node: heartbeat_sender_allowed(node, self.nodes))
        if accepted and src != self.node_id:
            self._record(src, accepted[-1]["metadata"], accepted[-1].get("sent_at"))

    def _record(self, peer: str, metadata: dict[str, Any] | None,
                sent_at: float | None = None) -> None:
        self.registry.heartbeat(peer, time.monotonic())
        now = self.received_at[peer] = time.time()
        if isinstance(sent_at, (int, float)) and not isinstance(sent_at, bool):
            # sender's wall clock to ours: one machine, or NTP-synchronised hosts
            self.delivery_ms.setdefault(peer, deque(maxlen=DELIVERY_SAMPLES)).append(
                (now - sent_at) * 1000)
        self.received[peer] = self.received.get(peer, 0) + 1
        if metadata is not None:
            self.peer_metadata[peer] = dict(metadata)

    # ---------------------------------------------------------- seed's API
    async def send_heartbeat(self, metadata: dict[str, Any] | None = None) -> list[str]:
        """Send one heartbeat round now. ``metadata`` is merged into this node's
        metadata and travels with every later heartbeat too. Returns the peers
        it was sent to."""
        self.require_started()
        if metadata is not None:
            _check_metadata({**self.own_metadata, **_check_metadata(metadata)})
        return self._send(metadata)

    async def set_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Replace this node's own metadata (sent from the next round on)."""
        self.require_started()
        self.own_metadata = _check_metadata(metadata)
        return dict(self.own_metadata)

    async def receive_heartbeat(self, from_node: str,
                                metadata: dict[str, Any] | None = None) -> None:
        """Record one heartbeat from ``from_node`` arriving now."""
        self.require_started()
        errors = []
        if not isinstance(from_node, str) or not from_node or from_node == self.node_id:
            errors.append(("from_node", f"must be another node's id, got {from_node!r}"))
        if metadata is not None and metadata_problem(metadata) is not None:
            errors.append(("metadata", f"{metadata_problem(metadata)}; a dict of JSON values"))
        if errors:
            raise ValidationFailed(errors)
        self._record(from_node, metadata)

    async def get_heartbeat_status(self) -> dict[str, Any]:
        """Settings, the monitor assignment, and per peer: phi, band, score,
        samples, mean/std of intervals (s), last heartbeat (wall time and age
        in s), heartbeats received and the peer's reported metadata."""
        self.require_started()
        now = time.monotonic()
        peers = {}
        for peer in sorted(set(self.registry.peers()) | set(self.watching)):
            peers[peer] = self._peer_info(peer, now)
        return {
            "node": self.node_id, **self._settings(), "interval_ms": self.interval * 1000,
            "monitors": list(self.assignment.get(self.node_id, [])),
            "watching": list(self.watching), "assignment": dict(self.assignment),
            "metadata": {"load": _load(), **self.own_metadata}, "rounds": self.rounds,
            "peers": peers, "transport": dict(self.transport.stats),
        }

    def _peer_info(self, peer: str, now: float) -> dict[str, Any]:
        health = self.registry.health(peer, now)
        if health is None:
            info: dict[str, Any] = {"phi": 0.0, "score": 1.0, "band": HealthBand.HEALTHY.value,
                                    "available": True, "samples": 0, "mean": None,
                                    "std_deviation": None}
        else:
            info = health.to_dict()
            info.pop("peer")
            info.pop("failure_deadline")
            info.pop("last_heartbeat")
        last = self.registry.detector(peer)
        info.update({
            "watched": peer in self.watching,
            "last_heartbeat": self.received_at.get(peer),
            "last_heartbeat_age": (now - last.last_heartbeat
                                   if last is not None and last.last_heartbeat is not None
                                   else None),
            "heartbeats": self.received.get(peer, 0),
            "metadata": dict(self.peer_metadata.get(peer, {})),
            "delivery_ms": list(self.delivery_ms.get(peer, ())),
        })
        return info

    async def get_node_health(self, node: str) -> tuple[float, dict[str, Any]]:
        """``(score, info)`` for ``node`` (score 1.0 fresh .. 0.0 failed);
        :class:`NotFound` if no heartbeat from it was ever recorded."""
        self.require_started()
        if not isinstance(node, str):
            raise ValidationFailed([("node", f"must be a node id, got {type(node).__name__}")])
        if node == self.node_id:
            return 1.0, {"self": True, "band": HealthBand.HEALTHY.value, "phi": 0.0,
                         "metadata": {"load": _load(), **self.own_metadata}}
        if node not in self.registry:
            raise NotFound(f"no heartbeat from {node!r} has been recorded on "
                           f"{self.node_id}; known peers: {self.registry.peers()}")
        info = self._peer_info(node, time.monotonic())
        return info["score"], info

    async def configure(self, parameter: str, value: Any) -> dict[str, Any]:
        """Change one setting; returns all settings. Parameters (aliases in
        brackets): heartbeat_interval [interval] ms in 10..60,000, threshold
        [phi_threshold] in (0, 300], acceptable_heartbeat_pause
        [acceptable_pause] ms in 0..600,000, min_std_deviation [min_std] ms in
        (0, 600,000], max_sample_size int in 1..100,000, distribution,
        normal_cdf, monitors_per_node int in 1..1000, adaptive bool. Invalid: ValidationFailed, nothing changes.
        A new detector setting restarts each peer's window (keeping its last
        heartbeat time)."""
        self.require_started()
        name = _PARAMETERS.get(parameter) if isinstance(parameter, str) else None
        if name is None:
            raise ValidationFailed([("parameter", f"unknown parameter {parameter!r}; valid: "
                                                  f"{', '.join(sorted(_PARAMETERS))}")])
        if name == "heartbeat_interval":
            seconds = _number(parameter, value, 10, MAX_MS) / 1000
            self.base_interval = self.interval = seconds
            self.policy = self._policy()
        elif name == "monitors_per_node":
            self.monitors_per_node = _integer(parameter, value, 1, MAX_MEMBERS)
            self._reassign()
        elif name == "adaptive":
            if not isinstance(value, bool):
                raise ValidationFailed([(parameter, f"must be a bool, got {value!r}")])
            self.adaptive = value
            self.interval = self.base_interval
        else:
            self._set_detector(name, parameter, value)
        return self._settings()

    def _set_detector(self, name: str, parameter: str, value: Any) -> None:
        fields = {"threshold": self.config.threshold,
                  "acceptable_heartbeat_pause": self.config.acceptable_heartbeat_pause,
                  "min_std_deviation": self.config.min_std_deviation,
                  "max_sample_size": self.config.max_sample_size,
                  "distribution": self.config.distribution,
                  "normal_cdf": self.config.normal_cdf,
                  "first_heartbeat_estimate": self.base_interval}
        if name == "acceptable_heartbeat_pause":
            value = _number(parameter, value, 0, MAX_ACCEPTABLE_PAUSE_MS) / 1000
        elif name == "min_std_deviation":
            value = _number(parameter, value, 0, MAX_MIN_STD_DEVIATION_MS, inclusive=False) / 1000
        elif name == "threshold":
            value = _number(parameter, value, 0, MAX_PHI_THRESHOLD, inclusive=False)
        elif name == "max_sample_size":
            value = _integer(parameter, value, 1, MAX_SAMPLE_SIZE)
        fields[name] = value
        config = DetectorConfig(**fields)  # raises ValidationFailed, nothing changed
        registry = FailureDetectorRegistry(config)
        for peer in self.registry.peers():
            last = self.registry.detector(peer).last_heartbeat  # type: ignore[union-attr]
            if last is not None:
                registry.heartbeat(peer, last)
        self.config, self.registry = config, registry
        self.policy = self._policy()

    def _settings(self) -> dict[str, Any]:
        return {"heartbeat_interval": self.base_interval * 1000,
                "threshold": self.config.threshold,
                "acceptable_heartbeat_pause": self.config.acceptable_heartbeat_pause * 1000,
                "min_std_deviation": self.config.min_std_deviation * 1000,
                "max_sample_size": self.config.max_sample_size,
                "distribution": self.config.distribution, "normal_cdf": self.config.normal_cdf,
                "monitors_per_node": self.monitors_per_node, "adaptive": self.adaptive}

    async def force_check(self) -> dict[str, str]:
        """Evaluate every watched peer now (publishing band changes and
        reporting reachability); returns their bands."""
        self.require_started()
        return {peer: band.value for peer, band in self._evaluate(time.monotonic()).items()}


def _load() -> float:
    """The 1-minute load average per CPU (0.0 where the OS does not tell)."""
    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 3)
    except OSError:
        return 0.0
