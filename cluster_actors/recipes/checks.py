"""Argument checks shared by the recipes: bad input raises ValidationFailed
(a ClusterError) saying what to pass instead, before anything is changed."""

from __future__ import annotations

import math
import sys
from typing import Any

from ..core.kv import shown
from ..core.leases import MAX_LEASE_TTL_MS
from ..errors import ValidationFailed


def check_name(field: str, name: Any) -> str:
    """A non-empty string name."""
    if not isinstance(name, str) or not name:
        raise ValidationFailed([(field, f"give a non-empty string, got {shown(name)}")])
    return name


def check_count(field: str, value: Any) -> int:
    """A whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed([(field, f"give a whole number of at least 1, "
                                        f"got {shown(value)}")])
    return value


def check_ttl(ttl: Any, field: str = "ttl") -> float:
    """A positive number of seconds, at most a day (a lease's longest TTL)."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) \
            or not 0 < ttl <= MAX_LEASE_TTL_MS / 1000:
        raise ValidationFailed([(field, f"give a number of seconds above 0 and at most a "
                                        f"day ({MAX_LEASE_TTL_MS // 1000}), got {shown(ttl)}")])
    return float(ttl)


def check_timeout(timeout: Any) -> float | None:
    """None (wait as long as it takes) or a number of seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or math.isnan(timeout) or timeout < 0:
        raise ValidationFailed([("timeout", f"give None or a number of seconds >= 0, "
                                            f"got {shown(timeout)}")])
    return math.inf if timeout > sys.float_info.max else float(timeout)  # 10**400: forever


__all__ = ["check_count", "check_name", "check_timeout", "check_ttl"]
