"""Argument checks shared by the recipes: bad input raises ValidationFailed
(a ClusterError) saying what to pass instead, before anything is changed."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ValidationFailed


def check_name(field: str, name: Any) -> str:
    """A non-empty string name."""
    if not isinstance(name, str) or not name:
        raise ValidationFailed([(field, f"give a non-empty string, got {name!r}")])
    return name


def check_count(field: str, value: Any) -> int:
    """A whole number of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed([(field, f"give a whole number of at least 1, got {value!r}")])
    return value


def check_ttl(ttl: Any, field: str = "ttl") -> float:
    """A finite, positive number of seconds."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) \
            or ttl <= 0:
        raise ValidationFailed([(field, f"give a finite number of seconds above 0, "
                                        f"got {ttl!r}")])
    return float(ttl)


def check_timeout(timeout: Any) -> float | None:
    """None (wait as long as it takes) or a number of seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or math.isnan(timeout) or timeout < 0:
        raise ValidationFailed([("timeout", f"give None or a number of seconds >= 0, "
                                            f"got {timeout!r}")])
    return float(timeout)


__all__ = ["check_count", "check_name", "check_timeout", "check_ttl"]
