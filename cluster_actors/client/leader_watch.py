"""The leader as the nodes push it: a driver-side view kept by long polls.

Asking every node "who leads?" and waiting a few milliseconds for the answers
misleads under load: a reply that takes 11 ms makes a 10 ms poll answer
"no leader". :class:`LeaderWatch` instead keeps one outstanding
``wait_events`` long poll per node's consensus actor and records each node's
latest ``leader_changed`` event (role, term, leader). The leader is the node
that reports itself leader in the highest term; a node whose actor dies is
forgotten at once (Ray's word, about 10 ms after the kill), so a dead leader
is never named. Between changes the watch costs one idle long poll per node
every ``poll_timeout`` seconds.

The thread starts on first use and stops with :meth:`close`; queries never
make a Ray call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from ..runtime.events import EventCursor
from ..runtime.hosting import find_component

logger = logging.getLogger(__name__)

#: Seconds a node's long poll waits for an event before it is renewed.
POLL_TIMEOUT = 10.0
#: Seconds between look-ups of a node whose consensus actor is not running.
RESOLVE_RETRY = 0.05


@dataclass
class NodeView:
    """What one node's consensus actor last said about leadership."""

    role: str
    term: int
    leader: str | None


@dataclass
class _Follow:
    handle: Any = None
    cursor: EventCursor = field(default_factory=EventCursor)
    ref: Any = None  #: the outstanding call: ``leadership`` while starting, then ``wait_events``
    starting: bool = False
    retry_at: float = 0.0


class LeaderWatch:
    """Follows the leadership of cluster ``cluster`` (nodes from ``node_ids()``,
    read again every round so added and removed nodes are followed)."""

    def __init__(self, cluster: str, node_ids: Callable[[], list[str]],
                 poll_timeout: float = POLL_TIMEOUT) -> None:
        self.cluster = cluster
        self._node_ids = node_ids
        self.poll_timeout = poll_timeout
        self._views: dict[str, NodeView] = {}
        self._follows: dict[str, _Follow] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- queries
    def leader(self) -> str | None:
        """The node that reports itself leader in the highest term, or None."""
        self._ensure_started()
        with self._changed:
            return self._leader_locked()

    def views(self) -> dict[str, NodeView]:
        """Each followed node's latest view (nodes not heard from are absent)."""
        self._ensure_started()
        with self._changed:
            return dict(self._views)

    def wait_for_leader(self, timeout: float, other_than: str | None = None) -> str | None:
        """Block until a leader (not ``other_than``) is known; None after ``timeout``."""
        self._ensure_started()
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                leader = self._leader_locked()
                if leader is not None and leader != other_than:
                    return leader
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _leader_locked(self) -> str | None:
        leaders = [(view.term, node) for node, view in self._views.items()
                   if view.role == "leader"]
        return max(leaders)[1] if leaders else None

    # -------------------------------------------------------------- thread
    def _ensure_started(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, daemon=True,
                                             name=f"leader-watch-{self.cluster}")
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except Exception:  # never let the watch die: queries would go stale
                logger.exception("leader watch of %s: round failed", self.cluster)
                self._stop.wait(RESOLVE_RETRY)

    def _round(self) -> None:
        nodes = set(self._node_ids())
        for node in set(self._follows) - nodes:
            self._follows.pop(node)
            self._set(node, None)
        now = time.monotonic()
        for node in nodes:
            follow = self._follows.setdefault(node, _Follow())
            if follow.ref is None and now >= follow.retry_at:
                self._start_following(node, follow)
        refs = {f.ref: node for node, f in self._follows.items() if f.ref is not None}
        if not refs:
            self._stop.wait(RESOLVE_RETRY)
            return
        ready, _ = ray.wait(list(refs), num_returns=1, timeout=RESOLVE_RETRY)
        for ref in ready:
            node = refs[ref]
            follow = self._follows.get(node)
            if follow is None:
                continue
            follow.ref = None
            try:
                answer = ray.get(ref)
            except Exception:  # the actor died (or restarts): forget its view now
                self._lost(node, follow)
                continue
            if follow.starting:
                follow.starting = False
                follow.cursor = EventCursor(answer["latest_event_seq"])
                self._set(node, NodeView(answer["role"], answer["term"], answer["leader"]))
            else:
                self._take(node, follow, answer)
            follow.ref = follow.handle.wait_events.remote(follow.cursor.since, self.poll_timeout)

    def _start_following(self, node: str, follow: _Follow) -> None:
        """Resolve ``node``'s consensus actor and ask for its current view
        without waiting (a restarting node must not hold up news from the
        others); the events after that view are followed from then on."""
        try:
            handle = find_component(self.cluster, node, "consensus")
        except ValueError:
            self._lost(node, follow)
            return
        follow.handle, follow.starting = handle, True
        follow.ref = handle.leadership.remote()

    def _take(self, node: str, follow: _Follow, events: list[dict[str, Any]]) -> None:
        for event in events:
            follow.cursor.advance((event,))
            if event["type"] == "leader_changed":
                self._set(node, NodeView(event["role"], event["term"], event["leader"]))

    def _lost(self, node: str, follow: _Follow) -> None:
        follow.handle, follow.ref, follow.starting = None, None, False
        follow.retry_at = time.monotonic() + RESOLVE_RETRY
        self._set(node, None)

    def _set(self, node: str, view: NodeView | None) -> None:
        with self._changed:
            if view is None:
                self._views.pop(node, None)
            else:
                self._views[node] = view
            self._changed.notify_all()


__all__ = ["LeaderWatch", "NodeView"]
