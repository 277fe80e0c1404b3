"""runtime/calls.py: the one bounded await between actors and the one way to
unwrap the exception an actor method raised."""

from __future__ import annotations

import asyncio

import pytest

from cluster_actors.errors import NotLeader
from cluster_actors.runtime.calls import bounded, task_cause


def test_a_bounded_call_returns_what_the_awaitable_returns() -> None:
    async def answer() -> int:
        return 42

    assert asyncio.run(bounded(answer(), timeout=5.0)) == 42


def test_a_bounded_call_gives_up_on_a_hung_awaitable() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(bounded(hang(), timeout=0.01))


def test_task_cause_is_the_wrapped_exception_or_the_error_itself() -> None:
    class Wrapped(Exception):  # what a RayTaskError looks like: the real error in .cause
        cause = NotLeader("n2")

    assert task_cause(Wrapped()) is Wrapped.cause
    plain = ValueError("no cause")
    assert task_cause(plain) is plain


def test_task_cause_ignores_a_cause_that_is_not_an_exception() -> None:
    class Odd(Exception):
        cause = "not an exception"

    odd = Odd()
    assert task_cause(odd) is odd
