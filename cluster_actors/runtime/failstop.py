"""Fail-stop for the actors' background work.

An actor that keeps running after one of its loops died, or after a write to
its disk failed, is half-alive: it answers calls from a state that no longer
matches what it does or what it stored. The rule here is etcd's (it panics on
a WAL write error): such an actor ends at once, loudly, and its supervisor
restarts it from what its storage holds.

:func:`run_forever` starts a background coroutine (a timer loop, a long poll)
whose exception must end the actor: it logs the error with its traceback and
calls ``on_crash(reason, error)``, typically
:meth:`~cluster_actors.runtime.supervisor.SupervisedActor.crash`. A task that
is cancelled (the actor stopping) or returns normally ends quietly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger(__name__)

#: ``on_crash(reason, error)``: end the actor abnormally (must not raise).
CrashHandler = Callable[[str, BaseException], None]


def run_forever(coroutine: Coroutine[Any, Any, Any], on_crash: CrashHandler,
                what: str) -> asyncio.Task[Any]:
    """Run ``coroutine`` as a task of the running loop; if it raises, log the
    error as ``what`` failing and call ``on_crash`` (once, from the loop)."""
    task = asyncio.get_running_loop().create_task(coroutine)
    task.add_done_callback(lambda done: _check(done, on_crash, what))
    return task


def _check(task: asyncio.Task[Any], on_crash: CrashHandler, what: str) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is None:
        return
    logger.error("%s failed; the actor stops so that its supervisor restarts it",
                 what, exc_info=error)
    try:
        on_crash(f"{what} failed: {error!r}", error)
    except Exception:
        logger.exception("stopping after %s failed raised as well", what)


__all__ = ["CrashHandler", "run_forever"]
