"""Waiting for a condition in Ray tests: a bounded poll that only catches hangs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

HANG_GUARD = 60.0  # seconds; asserts nothing about speed


def wait_until(condition: Callable[[], Any], timeout: float = HANG_GUARD,
               interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not reached within {timeout} s")
