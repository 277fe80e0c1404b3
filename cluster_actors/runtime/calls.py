"""Small helpers for one actor calling another: a bounded await and the
exception an actor method really raised."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

#: Seconds a sibling gets to answer one gathering call (a hung one is skipped).
CALL_TIMEOUT = 2.0


async def bounded(awaitable: Awaitable[Any], timeout: float = CALL_TIMEOUT) -> Any:
    """Await ``awaitable`` (an ObjectRef or coroutine) for at most ``timeout`` s;
    raises :class:`asyncio.TimeoutError` after that."""

    async def run() -> Any:
        return await awaitable

    return await asyncio.wait_for(run(), timeout)


def task_cause(error: BaseException) -> BaseException:
    """The exception an actor method raised, from the RayTaskError wrapping it
    (``error`` itself when it wraps nothing)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
