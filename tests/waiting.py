"""The one way tests wait for a condition: a bounded poll that only catches hangs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

HANG_GUARD = 60.0  # seconds; asserts nothing about speed
T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str = "the condition", *,
               timeout: float = HANG_GUARD, interval: float = 0.02,
               tolerate: tuple[type[BaseException], ...] = ()) -> T:
    """Poll ``condition`` every ``interval`` seconds until it returns something
    truthy; return that value. An exception of a ``tolerate`` type (a component
    still starting or restarting) counts as not yet. Raises AssertionError
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except tolerate:
            value = None  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
