"""The one percentile rule, for every latency and duration the project reports."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (``0 <= q <= 100``) of ``values`` by nearest
    rank: the smallest sample that at least ``q`` % of the samples are at or
    below. It is always one of the samples (never interpolated, so an infinite
    sample stays infinite); ``q = 0`` gives the minimum, ``q = 100`` the
    maximum; None for no samples.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered) / 100) - 1)]
