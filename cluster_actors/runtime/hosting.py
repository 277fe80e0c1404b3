"""The ``per_node`` placement: one logical node's components in one Ray actor.

Each Ray actor is a process, so six components per node cost six processes;
a machine that holds a few dozen of those cannot hold a 50-node cluster. With
``placement="per_node"`` a :class:`NodeHost` actor, named
``<cluster>:<node>:host``, builds the node's component objects in its own
process and event loop, supervised as one child by the cluster's root
supervisor (the same :class:`~cluster_actors.runtime.supervisor.Supervisor`
code; the node is the unit that dies and restarts).

Callers never need to know the placement: :func:`find_component` returns the
component's own actor handle, or a :class:`HostedComponent` whose
``method.remote(...)`` is ``host.invoke.remote(component, "method", ...)``.
Inside a host, a component reaches a sibling through :class:`LocalComponent`,
a direct call on the same event loop, with no Ray call at all.

``runtime`` never imports ``actors``: the host receives the component classes
(Ray actor classes) from ``node.py`` and builds their underlying Python classes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

import ray
from ray.actor import ActorHandle

from ..errors import ClusterError
from .naming import actor_name, host_name, namespace
from .supervisor.protocol import SupervisedActor

logger = logging.getLogger(__name__)


#: Per cluster: whether its nodes were last found in hosts (tried first next time).
_HOSTED: dict[str, bool] = {}
#: (cluster, node) -> when a lookup last found nothing: a node that is not up
#: yet is asked about at most once per NEGATIVE_TTL per process, however many
#: components and peers look for it (50 starting nodes would flood the GCS).
_MISSING: dict[tuple[str, str], float] = {}
NEGATIVE_TTL = 0.25


def find_component(cluster: str, node: str, component: str) -> Any:
    """The handle of ``component`` of ``node``: its own actor (``per_component``)
    or its host's (``per_node``). Raises ``ValueError`` if neither runs, as
    ``ray.get_actor`` does."""
    key = (cluster, node)
    missing_since = _MISSING.get(key)
    if missing_since is not None and time.monotonic() - missing_since < NEGATIVE_TTL:
        raise ValueError(f"node {node!r} of cluster {cluster!r} is not running")
    ns = namespace(cluster)
    learned = _HOSTED.get(cluster)  # one placement per cluster: once known, ask only there
    for hosted in ((False, True) if learned is None else (learned,)):
        try:
            if hosted:
                host = ray.get_actor(host_name(cluster, node), namespace=ns)
                handle: Any = HostedComponent(host, component)
            else:
                handle = ray.get_actor(actor_name(cluster, node, component), namespace=ns)
        except ValueError:
            continue
        _HOSTED[cluster] = hosted
        _MISSING.pop(key, None)
        return handle
    _MISSING[key] = time.monotonic()
    raise ValueError(f"no {component} of node {node!r} runs in cluster {cluster!r}")


def forget_cluster(cluster: str) -> None:
    """Forget what this process learned about ``cluster``'s placement and hosts
    (a cluster of that name is starting or was shut down)."""
    _HOSTED.pop(cluster, None)
    for key in [k for k in _MISSING if k[0] == cluster]:
        del _MISSING[key]


def actor_of(handle: Any) -> ActorHandle:
    """The Ray actor behind a component handle (a hosted component's host),
    e.g. for ``ray.kill``."""
    return handle.host if isinstance(handle, HostedComponent) else handle


def _tell(method: Any, *args: Any) -> None:
    """Call a Ray actor method without a reply: no return object, so the
    caller's process is not woken again when the call completes (on an idle
    node, each wake-up costs about a millisecond of CPU)."""
    method.options(num_returns=0).remote(*args)


def tell(handle: Any, method: str, *args: Any) -> None:
    """Fire-and-forget ``method(*args)`` on a component handle of any kind
    (actor, hosted or local): errors are not reported to the caller."""
    target = getattr(handle, method)
    if isinstance(target, _HostedMethod | _LocalMethod):
        target.tell(*args)
    else:
        _tell(target, *args)


class _HostedMethod:
    def __init__(self, host: ActorHandle, component: str, method: str) -> None:
        self._host, self._component, self._method = host, component, method

    def remote(self, *args: Any, **kwargs: Any) -> ray.ObjectRef:
        return self._host.invoke.remote(self._component, self._method, *args, **kwargs)

    def tell(self, *args: Any) -> None:
        _tell(self._host.invoke, self._component, self._method, *args)


class HostedComponent:
    """A component living in a :class:`NodeHost`, used like its actor handle.

    ``_actor_id`` is the host's: it identifies the process, which is what
    callers compare to notice a restart.
    """

    def __init__(self, host: ActorHandle, component: str) -> None:
        self.host = host
        self.component = component
        self._actor_id = host._actor_id

    def __getattr__(self, method: str) -> _HostedMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return _HostedMethod(self.host, self.component, method)

    def __reduce__(self) -> tuple[Any, ...]:
        return (HostedComponent, (self.host, self.component))

    def __repr__(self) -> str:
        return f"HostedComponent({self.component!r} in {self._actor_id.hex()[:8]})"


class _LocalMethod:
    def __init__(self, target: Any, method: str) -> None:
        self._target, self._method = target, method

    def remote(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Start the call now (fire-and-forget works as with Ray) and return an
        awaitable of its result; exceptions surface when awaited."""
        loop = asyncio.get_running_loop()
        try:
            result = getattr(self._target, self._method)(*args, **kwargs)
        except Exception as error:
            future: asyncio.Future[Any] = loop.create_future()
            future.set_exception(error)
            return future
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            task.add_done_callback(_retrieve)
            return task
        future = loop.create_future()
        future.set_result(result)
        return future

    def tell(self, *args: Any) -> None:
        self.remote(*args)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a fire-and-forget call's exception as seen (the caller may never await it)."""
    if not task.cancelled():
        task.exception()


class LocalComponent:
    """A sibling component in the same host: ``method.remote(...)`` is a direct
    call on this event loop."""

    def __init__(self, target: Any, host_actor_id: Any) -> None:
        self._target = target
        self._actor_id = host_actor_id

    def __getattr__(self, method: str) -> _LocalMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return _LocalMethod(self._target, method)


# every peer component's transport keeps a death-watch call open on the host
@ray.remote(num_cpus=0, max_restarts=0, max_concurrency=10_000)
class NodeHost(SupervisedActor):
    """Runs one node's components (in start order) in this actor's process.

    ``components`` lists ``(component, ray_actor_class)``; every class is
    built with ``args``. Activation activates them in order and stopping
    stops them in reverse, like a supervisor's children. If one component
    stops on its own (a node that left the cluster), the host stops the rest
    and exits normally.
    """

    def __init__(self, cluster: str, node_id: str, components: list[tuple[str, Any]],
                 args: tuple[Any, ...]) -> None:
        self.cluster = cluster
        self.node_id = node_id
        _HOSTED[cluster] = True
        self.components: dict[str, Any] = {}
        for component, actor_class in components:
            python_class = actor_class.__ray_metadata__.modified_class
            instance = python_class(*args)
            instance._supervised_host = self
            self.components[component] = instance
        self._watchers: list[asyncio.Task[None]] = []
        self._stop_task: asyncio.Future[None] | None = None

    def sibling(self, component: str) -> LocalComponent:
        """A local handle on ``component`` (for the hosted components)."""
        target = self.components.get(component)
        if target is None:
            raise ClusterError(f"{component} of node {self.node_id} is not hosted here")
        return LocalComponent(target, ray.get_runtime_context().current_actor._actor_id)

    async def on_activate(self) -> None:
        for component, instance in self.components.items():
            await instance.activate()
            self._watchers.append(asyncio.ensure_future(self._watch(component, instance)))

    async def _watch(self, component: str, instance: Any) -> None:
        try:
            await instance.until_stopped()
        except asyncio.CancelledError:
            return
        except Exception as error:
            # a crashed component crashes its node: the root supervisor must see
            # an abnormal exit and restart the host, not a half-alive node
            logger.error("host %s: %s stopped abnormally (%s); the node stops",
                         self.node_id, component, error)
            if not getattr(self, "_supervised_stopping", False):
                self._stop_task = asyncio.ensure_future(self._crash_node(component, error))
            return
        if not getattr(self, "_supervised_stopping", False):
            logger.info("host %s: %s stopped; stopping the node", self.node_id, component)
            self._stop_task = asyncio.ensure_future(self.graceful_stop())

    async def _crash_node(self, component: str, error: Exception) -> None:
        """Stop the other components (they close their files), then crash."""
        self._supervised_stopping = True
        try:
            await self.on_stop()
        finally:
            self.crash(f"{component} of node {self.node_id} crashed: {error}")

    async def on_stop(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        for component, instance in reversed(list(self.components.items())):
            try:
                await asyncio.wait_for(instance.graceful_stop(), 10.0)
            except Exception:
                logger.exception("host %s: stopping %s failed", self.node_id, component)

    async def invoke(self, component: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` of the hosted ``component`` (public methods only)."""
        target = self.components.get(component)
        if target is None:
            raise ClusterError(f"node {self.node_id} hosts no {component!r} component; it hosts "
                               f"{sorted(self.components)}")
        if method.startswith("_") or not callable(getattr(target, method, None)):
            raise ClusterError(f"{component} has no method {method!r}")
        result = getattr(target, method)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def hosted(self) -> list[str]:
        """The components this host runs, in start order."""
        return list(self.components)


def hosted_by(instance: Any) -> NodeHost | None:
    """The host a component object runs in, or None when it is its own actor."""
    return getattr(instance, "_supervised_host", None)


__all__ = ["HostedComponent", "LocalComponent", "NodeHost", "actor_of", "find_component",
           "forget_cluster", "hosted_by", "tell"]

