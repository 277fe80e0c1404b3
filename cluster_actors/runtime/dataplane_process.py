"""The one :class:`~cluster_actors.runtime.dataplane.DataPlane` of a process
that hosts components, shared by the transports that live in it.

A component actor (``per_component``) or a node host (``per_node``) is one
process; the first transport that wants streams starts the plane on the
actor's event loop: it fetches the cluster's secret from the registry once
(through Ray), listens, and from then on answers ``dataplane_address`` calls
of peers (:func:`process_address`). The plane closes when the last transport
of its cluster in this process closes. Anything that fails here (no registry,
no secret, no socket) leaves the process on Ray calls only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import ray

from .dataplane import DataPlane, Endpoint
from .naming import namespace, registry_name


class Transport(Protocol):
    """What the plane needs of a :class:`~.transport.Transport` using it."""

    cluster: str
    node_id: str
    component: str


logger = logging.getLogger(__name__)

#: cluster -> the task that starts this process's plane (its result: the plane or None)
_PLANES: dict[str, asyncio.Task[DataPlane | None]] = {}
#: (cluster, component) -> the transport of that component in this process
_USERS: dict[tuple[str, str], Transport] = {}


async def attach(transport: Transport) -> DataPlane | None:
    """This process's plane for ``transport``'s cluster, started on first use;
    None if it cannot run (the transport stays on Ray calls)."""
    cluster = transport.cluster
    _USERS[(cluster, transport.component)] = transport
    task = _PLANES.get(cluster)
    if task is None:
        task = _PLANES[cluster] = asyncio.get_running_loop().create_task(
            _start(cluster, transport.node_id))
    plane = await asyncio.shield(task)
    if plane is None or _USERS.get((cluster, transport.component)) is not transport:
        return None  # closed meanwhile
    return plane


def detach(transport: Transport) -> None:
    """``transport`` closed: the plane closes with the last transport of its cluster."""
    cluster = transport.cluster
    if _USERS.get((cluster, transport.component)) is transport:
        del _USERS[(cluster, transport.component)]
    if any(key[0] == cluster for key in _USERS):
        return
    task = _PLANES.pop(cluster, None)
    if task is None:
        return
    if task.done() and not task.cancelled() and task.result() is not None:
        task.result().close()  # type: ignore[union-attr]
    elif not task.done():
        task.add_done_callback(_close_result)


def _close_result(task: asyncio.Task[DataPlane | None]) -> None:
    if not task.cancelled() and task.result() is not None:
        task.result().close()  # type: ignore[union-attr]


async def _start(cluster: str, node_id: str) -> DataPlane | None:
    try:
        registry = ray.get_actor(registry_name(cluster), namespace=namespace(cluster))
        secret = await registry.dataplane_secret.remote()
        actor_id = ray.get_runtime_context().get_actor_id() or f"driver-{id(registry)}"
        plane = DataPlane(cluster, node_id, actor_id, secret,
                          tcp_host=ray.util.get_node_ip_address(),
                          on_link_down=lambda component, peer: _link_down(
                              cluster, component, peer))
        await plane.start()
        return plane
    except Exception as error:  # no registry (a bare actor), an old one, no socket
        logger.info("data plane of %s in cluster %s is off (%s); Ray calls only",
                    node_id, cluster, error)
        return None


def _link_down(cluster: str, component: str, peer: str) -> None:
    transport = _USERS.get((cluster, component))
    if transport is not None:
        transport.link_down(peer)


def plane_of(cluster: str) -> DataPlane | None:
    """This process's started plane for ``cluster``, if any."""
    task = _PLANES.get(cluster)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.result()


async def process_address(cluster: Any) -> Endpoint | None:
    """Where this process's plane for ``cluster`` listens (None: no plane, dial
    nothing); waits for a plane that is starting."""
    task = _PLANES.get(cluster) if isinstance(cluster, str) else None
    if task is None:
        return None
    plane = await asyncio.shield(task)
    return plane.addresses() if plane is not None else None


def break_links(cluster: str) -> int:
    """Test hook: abort every outgoing link of this process's plane (as a
    network fault would); returns how many were up."""
    plane = plane_of(cluster)
    if plane is None:
        return 0
    broken = 0
    for link in list(plane._links.values()):
        conn = link.conn
        if conn is not None and conn.transport is not None:
            conn.transport.abort()
            broken += 1
    return broken


__all__ = ["attach", "break_links", "detach", "plane_of", "process_address"]
