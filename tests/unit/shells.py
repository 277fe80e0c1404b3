"""Component actors run in-process, without Ray, for fast checks of what their
remote methods do with a caller's or a peer's input.

:func:`shell` builds the plain class behind a ``@ray.remote`` component
(``__ray_actor_class__``), starts it with its timers and background tasks
switched off and a transport that never resolves or calls a peer (nothing
reaches Ray), and returns it ready: ``await actor.receive(...)`` and the
other ``async`` remote methods run as they would in the actor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import types
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import ray
from ray import cloudpickle
from ray.exceptions import GetTimeoutError

from cluster_actors.client import components
from cluster_actors.runtime.transport import Transport

CLUSTER = "c"
NODES = ["n1", "n2", "n3"]


class QuietTransport(Transport):
    """A transport that accepts batches like the real one but never reaches a
    peer: peers are recorded, not resolved; sends are counted as dropped."""

    def __init__(self, node: str, component: str, peers: list[str]) -> None:
        super().__init__(CLUSTER, node, component, [])
        self.set_peers(peers)

    def _schedule_resolve(self, peer: str, delay: float) -> None:
        pass  # no Ray: a peer never resolves

    def send_batch(self, peer: str, batch: list[Any]) -> None:
        self.stats["quiet_sends"] += 1


def _no_task(coroutine: Any, *_args: Any) -> None:
    coroutine.close()


@asynccontextmanager
async def shell(actor_class: Any, node: str = "n1", voters: list[str] | None = None,
                **options: Any) -> AsyncIterator[Any]:
    """The started in-process instance of ``actor_class`` (a Ray actor class)
    for ``node`` of a cluster of ``voters``; stopped on exit."""
    voters = list(NODES if voters is None else voters)
    actor = actor_class.__ray_actor_class__(CLUSTER, node, voters, options)
    actor.transport = QuietTransport(node, actor.component, voters)
    actor.every = lambda *_args, **_kwargs: None
    actor.run_forever = _no_task
    actor.sibling = _no_sibling
    await actor.on_start()
    actor.started = True
    try:
        yield actor
    finally:
        storage = getattr(actor, "storage", None)
        if storage is not None and hasattr(storage, "close"):
            storage.close()


def _no_sibling(component: str) -> Any:
    from cluster_actors.errors import ClusterError

    raise ClusterError(f"{component} is not running (in-process shell)")


class InProcessHandle:
    """What a Ray actor handle does for ``method.remote(*args)``, in-process:
    the arguments are serialized as Ray serializes them (a lock fails), then
    the call runs on ``loop`` (the actor's); the "ref" is its future. The
    clients resolve such refs inside :func:`in_process_clients`."""

    def __init__(self, actor: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._actor = actor
        self._loop = loop

    def __getattr__(self, method: str) -> Any:
        target = getattr(self._actor, method)
        loop = self._loop

        class Method:
            @staticmethod
            def remote(*args: Any, **kwargs: Any) -> Any:
                cloudpickle.dumps((args, kwargs))
                return asyncio.run_coroutine_threadsafe(target(*args, **kwargs), loop)

        return Method


def _get(ref: Any, timeout: float | None = None) -> Any:
    try:
        return ref.result(timeout)
    except concurrent.futures.TimeoutError:
        ref.cancel()
        raise GetTimeoutError("in-process call timed out") from None


@contextmanager
def in_process_clients() -> Iterator[None]:
    """The component clients (``ComponentClient.call``) resolve the "refs" of
    an :class:`InProcessHandle` instead of asking Ray."""
    patch = pytest.MonkeyPatch()
    patch.setattr(components, "ray", types.SimpleNamespace(get=_get, exceptions=ray.exceptions))
    try:
        yield
    finally:
        patch.undo()
