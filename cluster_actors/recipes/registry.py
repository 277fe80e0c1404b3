"""Service registration and discovery (Consul's services with TTL checks,
etcd's endpoints): each live instance of a service is one key
``service/<service>/<lease id>`` attached to its lease.

``register`` takes a lease of ``ttl`` s, kept alive in the background, and
writes the instance's record (``address`` and ``metadata``). The instance
disappears from every listing when it deregisters, or when its process dies,
pauses or is cut off for longer than the TTL (the cluster expires the lease
and deletes the key). A registration whose lease was lost while its process
lives registers again (a new lease, a new key), until ``deregister``.

``services`` lists the live instances (a linearizable read) and
:class:`ServiceWatch` follows them: an iterator that yields a
:class:`ServiceChange` first with the current members, then at each change,
long-polling the cluster's lease watch.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ClusterError, ValidationFailed
from .checks import check_name, check_ttl
from .lease import Lease
from .line import POLL_S, Item, LeaseLine, info_of, ordered

if TYPE_CHECKING:
    from ..client.session import LeaderSession

logger = logging.getLogger(__name__)

SERVICE_PREFIX = "service/"

#: pause between attempts to register again after a lost lease
RETRY_S = 0.2


@dataclass(frozen=True, slots=True)
class ServiceInstance:
    """One live instance: its service, id, address and metadata, its key and
    lease, and ``revision`` (the key's create revision: registration order)."""

    service: str
    instance_id: str
    address: Any
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)
    key: str = ""
    lease_id: int = 0
    revision: int = 0


@dataclass(frozen=True, slots=True)
class ServiceChange:
    """What a :class:`ServiceWatch` yields: every live instance (in
    registration order), and those that joined or left since the last one."""

    members: list[ServiceInstance]
    joined: list[ServiceInstance]
    left: list[ServiceInstance]


def _instance(service: str, item: Item) -> ServiceInstance:
    info = info_of(item)
    metadata = info.extra.get("metadata")
    return ServiceInstance(service, info.candidate_id, info.value,
                           dict(metadata) if isinstance(metadata, dict) else {},
                           info.key, info.lease_id, info.token)


def service_line(session: LeaderSession, service: str) -> LeaseLine:
    return LeaseLine(session, f"{SERVICE_PREFIX}{check_name('service', service)}/")


def services(session: LeaderSession, service: str) -> list[ServiceInstance]:
    """The live instances of ``service`` in registration order (linearizable)."""
    return [_instance(service, item) for item in ordered(service_line(session, service).items())]


class Registration:
    """One registered instance (``cluster.register(service, address, ttl)``),
    kept alive until :meth:`deregister` (also on leaving a ``with``)."""

    def __init__(self, session: LeaderSession, service: str, address: Any, ttl: float = 10.0,
                 metadata: dict[str, Any] | None = None, instance_id: str | None = None
                 ) -> None:
        self.session = session
        self.service = check_name("service", service)
        if address is None:
            raise ValidationFailed([("address", "give the address clients should use "
                                                "(a string such as 'host:port')")])
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationFailed([("metadata", f"give a dict or None, got {metadata!r}")])
        self.address = address
        self.ttl = check_ttl(ttl)
        self.metadata = dict(metadata or {})
        self.instance_id = instance_id or f"{service}-{uuid.uuid4().hex[:8]}"
        self.registrations = 0  #: how many times it was (re)registered
        self.lease: Lease | None = None
        self.key: str | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._register()

    @property
    def registered(self) -> bool:
        """True while the current lease surely holds (a local check)."""
        lease = self.lease
        return lease is not None and lease.is_alive()

    def deregister(self) -> bool:
        """Remove the instance now (revoke its lease). True if confirmed now."""
        self._closed.set()
        with self._lock:
            lease = self.lease
        return lease.revoke() if lease is not None else True

    def _register(self) -> None:
        lease = Lease.grant(self.session, self.ttl)
        key = f"{SERVICE_PREFIX}{self.service}/{lease.lease_id:016x}"
        record = {"candidate": self.instance_id, "value": self.address,
                  "metadata": self.metadata}
        try:
            result = self.session.run(("put_lease", key, record, lease.lease_id))
        except BaseException:
            lease.revoke()
            raise
        if not result.ok:
            lease.revoke()
            raise ClusterError(f"service {self.service!r}: the lease lapsed before the "
                               f"instance was written; register again")
        with self._lock:
            self.lease, self.key = lease, key
            self.registrations += 1
        lease.notify_loss(self._on_lost)
        if self._closed.is_set():  # deregistered meanwhile
            lease.revoke()

    def _on_lost(self, lease: Lease) -> None:
        if not self._closed.is_set():
            threading.Thread(target=self._register_again, daemon=True,
                             name=f"register-{self.instance_id}").start()

    def _register_again(self) -> None:
        while not self._closed.is_set():
            try:
                self._register()
                return
            except ClusterError as error:
                logger.debug("registering %s again failed: %s", self.instance_id, error)
                self._closed.wait(RETRY_S)

    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.deregister()

    def __repr__(self) -> str:
        state = "registered" if self.registered else "not registered"
        return f"<Registration {self.instance_id!r} of {self.service!r} at " \
               f"{self.address!r} {state}>"


class ServiceWatch:
    """Follows the instances of a service (see the module doc): ``for change
    in watch:``; ``close()`` ends it within one poll."""

    def __init__(self, session: LeaderSession, service: str, poll: float = POLL_S) -> None:
        self.service = check_name("service", service)
        self._line = service_line(session, service)
        self._poll = check_ttl(poll, "poll")
        self._known: list[tuple[str, int]] | None = None
        self._members: dict[str, ServiceInstance] = {}
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[ServiceChange]:
        return self

    def __next__(self) -> ServiceChange:
        while not self._closed.is_set():
            first = self._known is None
            try:
                items = self._line.items(self._known, 0.0 if first else self._poll)
            except ClusterError:
                self._closed.wait(0.05)  # no leader for a moment: try again
                continue
            known = [(item[0], item[3]) for item in items]
            if not first and known == self._known:
                continue
            self._known = known
            members = {item[0]: _instance(self.service, item) for item in ordered(items)}
            joined = [m for k, m in members.items() if self._members.get(k) != m]
            left = [m for k, m in self._members.items() if k not in members]
            self._members = members
            return ServiceChange(list(members.values()), joined, left)
        raise StopIteration

    def members(self) -> list[ServiceInstance]:
        """The members as of the last change yielded."""
        return list(self._members.values())

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> ServiceWatch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["SERVICE_PREFIX", "Registration", "ServiceChange", "ServiceInstance",
           "ServiceWatch", "services"]
