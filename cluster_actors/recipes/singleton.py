"""A cluster singleton (Akka's ClusterSingletonManager and proxy): one Ray
actor cluster-wide, started by whichever process holds the election
``singleton/<name>``, started again after a failover.

Every process that calls ``cluster.singleton(name, ActorClass, *args)`` runs a
:class:`Singleton` manager: a daemon thread that campaigns in the election.
The winner creates the actor (named ``singleton.<name>.<token>.<n>`` in the
cluster's namespace, placed on the winner's Ray node when it fits, owned by
the winner's process so it dies with it; a plain class runs as
``ray.remote(num_cpus=0)(cls)``, decorate it for other resources) and
proclaims its name. It pings its actor and starts a new one if it died. When the winner loses its lease
(death, pause, partition) it kills its instance; its key is deleted by the
cluster and the next manager in line starts a new instance. Like Akka's, a
singleton may overlap its successor briefly across a partition: the old
holder learns of the loss first (its lease clock is conservative), but
killing an actor takes a moment. Writes that must not overlap should be
fenced with :meth:`SingletonProxy.token`.

:class:`SingletonProxy` reaches the live instance: ``proxy.method.remote(...)``
returns the ObjectRef of a call on the instance the election names (checked
again at most every ``refresh`` s); ``proxy.call("method", ...)`` waits for
the answer and retries on the next instance if the one it reached died.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..errors import ClusterError, CoordinationTimeout
from .checks import check_name, check_timeout, check_ttl
from .election import LeaderElection, Leadership
from .line import Cancelled, LeaderInfo

if TYPE_CHECKING:
    from ..client.session import LeaderSession

logger = logging.getLogger(__name__)

SINGLETON_ELECTION = "singleton/"

#: how often a holder pings its instance, and waits before restarting a failed one
PING_S = 0.5
RESTART_PAUSE_S = 0.5
#: how long a new instance may take to be placed and constructed
START_TIMEOUT_S = 60.0


def _election(session: LeaderSession, name: str) -> LeaderElection:
    return LeaderElection(session, f"{SINGLETON_ELECTION}{check_name('name', name)}")


class Singleton:
    """This process's manager of singleton ``name`` (see the module doc)."""

    def __init__(self, session: LeaderSession, name: str, actor_class: Any,
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                 ttl: float = 2.0, candidate_id: str | None = None) -> None:
        if not callable(getattr(actor_class, "remote", None)) and not isinstance(
                actor_class, type):
            raise ClusterError(f"singleton {name!r}: give a class or a Ray actor class, "
                               f"got {actor_class!r}")
        self.session = session
        self.name = check_name("name", name)
        self.ttl = check_ttl(ttl)
        self.election = _election(session, name)
        self.candidate_id = candidate_id or f"singleton-{uuid.uuid4().hex[:8]}"
        self._class = actor_class if callable(getattr(actor_class, "remote", None)) \
            else ray.remote(num_cpus=0)(actor_class)
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self.starts = 0  #: instances this manager started
        self.last_error: BaseException | None = None
        self.leadership: Leadership | None = None
        self._actor: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"singleton-{name}")
        self._thread.start()

    @property
    def leading(self) -> bool:
        """True while this process holds the singleton."""
        leadership = self.leadership
        return leadership is not None and leadership.is_held()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop managing: leave the election (handing over to the next
        manager) and kill the instance this process runs, if any."""
        self._stop.set()
        leadership = self.leadership
        if leadership is not None:
            leadership.resign()
        self._thread.join(timeout)
        self._kill()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                leadership = self.election.campaign(self.candidate_id, ttl=self.ttl,
                                                    cancel=self._stop)
            except Cancelled:
                return
            except ClusterError as error:  # no leader for a moment
                self.last_error = error
                self._stop.wait(RESTART_PAUSE_S)
                continue
            self.leadership = leadership
            try:
                self._lead(leadership)
            except Exception as error:
                self.last_error = error
                logger.warning("singleton %s: %s", self.name, error)
            finally:
                self._kill()
                if not leadership.lost.is_set():
                    leadership.resign()

    def _lead(self, leadership: Leadership) -> None:
        while leadership.is_held() and not self._stop.is_set():
            try:
                actor_name = self._start(leadership.token)
                leadership.proclaim({"actor": actor_name, "namespace": self.session.namespace,
                                     "holder": self.candidate_id})
            except (RayActorError, GetTimeoutError) as error:  # not started: try again
                self.last_error = error
                self._kill()
                leadership.lost.wait(RESTART_PAUSE_S)
                continue
            self._watch(leadership)
            self._kill()

    def _start(self, token: int) -> str:
        self.starts += 1
        actor_name = f"singleton.{self.name}.{token}.{self.starts}"
        options: dict[str, Any] = {"name": actor_name, "namespace": self.session.namespace}
        with contextlib.suppress(Exception):  # else anywhere
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=True)
        self._actor = self._class.options(**options).remote(*self._args, **self._kwargs)
        ray.get(self._actor.__ray_ready__.remote(), timeout=START_TIMEOUT_S)
        return actor_name

    def _watch(self, leadership: Leadership) -> None:
        """Return once the instance died, the lease was lost or stop was asked."""
        ping = None
        while leadership.is_held() and not self._stop.is_set():
            if ping is None:
                ping = self._actor.__ray_ready__.remote()
            ready, _ = ray.wait([ping], timeout=PING_S)
            if not ready:
                continue  # busy: still alive as far as we know
            try:
                ray.get(ping)
            except RayActorError:
                return
            ping = None
            leadership.lost.wait(PING_S)

    def _kill(self) -> None:
        actor, self._actor = self._actor, None
        if actor is not None:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as error:
                logger.debug("singleton %s: kill failed: %s", self.name, error)

    def __repr__(self) -> str:
        state = "holding" if self.leading else "standing by"
        return f"<Singleton {self.name!r} {self.candidate_id!r} {state}>"


class _Method:
    def __init__(self, proxy: SingletonProxy, method: str) -> None:
        self._proxy = proxy
        self._method = method

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._proxy.handle(), self._method).remote(*args, **kwargs)


class SingletonProxy:
    """Reaches the live instance of singleton ``name`` (see the module doc).
    ``handle``, ``call``, ``token``, ``holder``, ``stop`` and ``manager`` are
    the proxy's own; reach an actor method of the same name through
    ``proxy.handle()``."""

    def __init__(self, session: LeaderSession, name: str, manager: Singleton | None = None,
                 refresh: float = 1.0, timeout: float = 30.0) -> None:
        self.name = check_name("name", name)
        self.manager = manager  #: this process's manager, if it runs one
        self._election = _election(session, name)
        self._refresh = check_ttl(refresh, "refresh")
        self._timeout = check_ttl(timeout, "timeout")
        self._cached: tuple[LeaderInfo, Any] | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def holder(self) -> LeaderInfo | None:
        """The election's view (linearizable): who holds, which instance."""
        return self._election.leader()

    def token(self) -> int | None:
        """The fencing token of the current holder, or None."""
        info = self.holder()
        return None if info is None else info.token

    def handle(self, timeout: float | None = None) -> Any:
        """The live instance's actor handle; waits up to ``timeout`` s (default
        the proxy's) for one to be proclaimed."""
        deadline = time.monotonic() + (self._timeout if timeout is None
                                       else check_timeout(timeout) or 0.0)
        with self._lock:
            if self._cached is not None and time.monotonic() - self._checked_at < self._refresh:
                return self._cached[1]
            while True:
                handle = self._resolve()
                if handle is not None:
                    return handle
                if time.monotonic() >= deadline:
                    raise CoordinationTimeout(
                        f"singleton {self.name!r} has no live instance: start a manager with "
                        f"cluster.singleton({self.name!r}, ActorClass) or wait longer")
                time.sleep(0.05)

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``method`` on the live instance and wait for the answer; if the
        instance died, call the next one (until ``timeout`` s)."""
        deadline = time.monotonic() + (self._timeout if timeout is None
                                       else check_timeout(timeout) or 0.0)
        while True:
            remaining = max(0.05, deadline - time.monotonic())
            handle = self.handle(remaining)
            try:
                return ray.get(getattr(handle, method).remote(*args, **kwargs),
                               timeout=remaining)
            except (RayActorError, GetTimeoutError):
                with self._lock:
                    self._cached = None  # died, or stuck: ask the election again
                if time.monotonic() >= deadline:
                    raise CoordinationTimeout(f"singleton {self.name!r}: no instance answered "
                                              f"{method} within the timeout") from None

    def stop(self) -> None:
        """Stop this process's manager, if any (see :meth:`Singleton.stop`)."""
        if self.manager is not None:
            self.manager.stop()

    def _resolve(self) -> Any:
        """The named instance's handle, or None (call with the lock)."""
        try:
            info = self._election.leader()
        except ClusterError:
            return None
        self._checked_at = time.monotonic()
        if info is None or not isinstance(info.value, dict):
            self._cached = None
            return None
        if self._cached is not None and self._cached[0].value == info.value:
            return self._cached[1]
        try:
            handle = ray.get_actor(info.value["actor"], namespace=info.value["namespace"])
        except ValueError:  # killed already, or not registered yet
            self._cached = None
            return None
        self._cached = (info, handle)
        return handle

    def __getattr__(self, method: str) -> _Method:
        if method.startswith("_"):
            raise AttributeError(method)
        return _Method(self, method)

    def __repr__(self) -> str:
        return f"<SingletonProxy {self.name!r}>"


__all__ = ["SINGLETON_ELECTION", "Singleton", "SingletonProxy"]
