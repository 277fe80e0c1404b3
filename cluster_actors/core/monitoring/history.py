"""A monitor's memory: :class:`MetricHistory` (one numpy ring buffer of
``(t, value)`` pairs per metric name and tag set) and :class:`EventLog` (the
newest events, numbered so a reader resumes where it left off)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from cluster_actors.core.stats import percentile
from cluster_actors.errors import ValidationFailed

TagKey = tuple[tuple[str, str], ...]


def _tag_key(tags: Mapping[str, Any] | None) -> TagKey:
    return tuple(sorted((str(k), str(v)) for k, v in (tags or {}).items()))


def series_label(name: str, tags: Mapping[str, Any] | TagKey | None = None) -> str:
    """Prometheus-style label of one series: ``phi{node=n1,peer=n2}`` or ``term``."""
    key = tags if isinstance(tags, tuple) else _tag_key(tags)
    return f"{name}{{{','.join(f'{k}={v}' for k, v in key)}}}" if key else name


class _Ring:
    """A fixed-capacity ring of float64 ``(t, value)`` rows."""

    __slots__ = ("count", "data", "head")

    def __init__(self, capacity: int) -> None:
        self.data = np.zeros((capacity, 2), dtype=np.float64)
        self.head = 0  # next row to write
        self.count = 0

    def append(self, t: float, value: float) -> None:
        self.data[self.head] = (t, value)
        self.head = (self.head + 1) % len(self.data)
        self.count = min(self.count + 1, len(self.data))

    def ordered(self) -> np.ndarray:
        """A copy of the rows, oldest first."""
        if self.count < len(self.data):
            return self.data[: self.count].copy()
        return np.concatenate((self.data[self.head:], self.data[: self.head]))


class MetricHistory:
    """The last ``capacity`` samples of each series (metric name + tag set).

    At most ``max_series`` series are kept; samples of further series are
    dropped and counted in :attr:`dropped` (a runaway tag value must not eat
    the memory). Values must be real numbers (infinity is allowed: phi can be
    infinite; NaN is not).
    """

    def __init__(self, capacity: int = 1024, max_series: int = 10_000) -> None:
        errors = [(path, "must be an integer >= 1")
                  for path, value in (("capacity", capacity), ("max_series", max_series))
                  if isinstance(value, bool) or not isinstance(value, int) or value < 1]
        if errors:
            raise ValidationFailed(errors)
        self.capacity = capacity
        self.max_series = max_series
        self.dropped = 0
        self._series: dict[str, dict[TagKey, _Ring]] = {}
        self._series_count = 0

    def record(self, name: str, value: float, t: float,
               tags: Mapping[str, Any] | None = None) -> None:
        """Append ``(t, value)`` to the series ``name`` with ``tags``.

        Raises :class:`ValidationFailed` for an empty name, a value that is
        not a real number (huge integers included) or tags that are not a mapping.
        """
        if not isinstance(name, str) or not name:
            raise ValidationFailed([("name", f"must be a non-empty string, got {name!r:.80}")])
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        if math.isnan(number):
            raise ValidationFailed([("value", f"metric {name!r:.80} needs a real number, "
                                              f"got {value!r:.80}")])
        if tags is not None and not isinstance(tags, Mapping):
            raise ValidationFailed([("tags", f"must be a mapping of tag to value, "
                                             f"got {type(tags).__name__}")])
        key = _tag_key(tags)
        by_tags = self._series.setdefault(name, {})
        ring = by_tags.get(key)
        if ring is None:
            if self._series_count >= self.max_series:
                self.dropped += 1
                return
            ring = by_tags[key] = _Ring(self.capacity)
            self._series_count += 1
        ring.append(float(t), number)

    def array(self, name: str, tags: Mapping[str, Any] | None = None) -> np.ndarray:
        """The series as a ``(n, 2)`` float64 array of ``(t, value)``, oldest first."""
        ring = self._series.get(name, {}).get(_tag_key(tags))
        return ring.ordered() if ring else np.zeros((0, 2), dtype=np.float64)

    def history(self, name: str, limit: int | None = None,
                tags: Mapping[str, Any] | None = None) -> list[tuple[float, float]]:
        """The newest ``limit`` samples (all if None) of one series, newest last.

        ``tags`` must match the series' tags exactly; an unknown series gives [].
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise ValidationFailed([("limit", f"must be an integer >= 0 or None, got {limit!r}")])
        rows = self.array(name, tags)
        if limit is not None:
            rows = rows[len(rows) - limit:] if limit else rows[:0]
        return [(float(t), float(v)) for t, v in rows]

    def latest(self, name: str, tags: Mapping[str, Any] | None = None
               ) -> tuple[float, float] | None:
        """The newest ``(t, value)`` of one series, or None if it has none."""
        newest = self.history(name, 1, tags)
        return newest[0] if newest else None

    def summary(self, name: str, tags: Mapping[str, Any] | None = None
                ) -> dict[str, float] | None:
        """count, min, max, mean, p50 and p99 (:func:`~cluster_actors.core.stats.percentile`)
        over the buffered values (None if none)."""
        values = self.array(name, tags)[:, 1]
        if not len(values):
            return None
        with np.errstate(invalid="ignore"):  # +inf and -inf together: NaN mean
            mean = float(np.mean(values))
        samples = values.tolist()
        return {"count": len(values), "min": float(values.min()), "max": float(values.max()),
                "mean": mean, "p50": percentile(samples, 50), "p99": percentile(samples, 99)}

    def names(self) -> list[str]:
        """Metric names with at least one series, sorted."""
        return sorted(self._series)

    def series(self, name: str) -> list[dict[str, str]]:
        """The tag sets recorded under ``name`` (``{}`` for the untagged series)."""
        return [dict(key) for key in sorted(self._series.get(name, {}))]

    def resolve_tags(self, name: str, tags: Mapping[str, Any] | None = None
                     ) -> dict[str, str] | None:
        """The one series of ``name`` that ``tags`` selects, or None if none does.

        An exact tag match wins; otherwise ``tags`` is a filter and must select
        exactly one series, else :class:`ValidationFailed` lists the candidates.
        """
        key = _tag_key(tags)
        by_tags = self._series.get(name, {})
        if key in by_tags:
            return dict(key)
        wanted = set(key)
        matches = [k for k in sorted(by_tags) if wanted <= set(k)]
        if len(matches) > 1:
            raise ValidationFailed([("tags", f"{len(matches)} series of {name!r} match: "
                                     + ", ".join(series_label(name, k) for k in matches)
                                     + "; pass tags that select one")])
        return dict(matches[0]) if matches else None


class EventLog:
    """The newest ``capacity`` events, each ``{"seq", "t", "type", "node", "details"}``.

    ``seq`` starts at 1 and increases by one per event, also across evictions,
    so a reader that remembers the last ``seq`` it saw gets exactly the newer
    events from :meth:`since` (and sees a gap if some were evicted).
    """

    def __init__(self, capacity: int = 1000) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValidationFailed([("capacity", f"must be an integer >= 1, got {capacity!r}")])
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.last_seq = 0

    def append(self, event_type: str, t: float, node: str | None = None,
               details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Record one event and return (a copy of) it."""
        if not isinstance(event_type, str) or not event_type:
            raise ValidationFailed([("type", f"must be a non-empty string, got {event_type!r}")])
        self.last_seq += 1
        event = {"seq": self.last_seq, "t": float(t), "type": event_type, "node": node,
                 "details": dict(details or {})}
        self._events.append(event)
        return _copy_event(event)

    def since(self, seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Retained events with ``seq`` greater than the given one, oldest first."""
        newer = [_copy_event(e) for e in self._events if e["seq"] > seq]
        return newer[:limit] if limit is not None else newer

    def __len__(self) -> int:
        return len(self._events)


def _copy_event(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "details": dict(event["details"])}
