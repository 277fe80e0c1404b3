"""``Cluster``: start, attach to, inspect and shut down a coordination cluster.

A cluster is a root supervisor (one_for_one) over one supervisor per logical
node, each supervising that node's component actors. ``Cluster.start`` runs it
on the local Ray (calling ``ray.init()`` if needed); ``Cluster.attach`` finds
a cluster already running on a Ray cluster.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import uuid
from typing import TYPE_CHECKING, Any

import ray
from pydantic import BaseModel

import strategies

from .client.components import DEFAULT_TIMEOUT, ComponentClient, MonitorClient, unwrap
from .client.config import ConfigClient
from .client.coordinator import Coordinator
from .client.data import DataStore
from .client.kv import KVClient
from .client.session import LeaderSession, registered_cluster
from .core.config import parse_config
from .core.supervision import Strategy, SupervisorFlags
from .errors import ClusterError, CoordinationTimeout, NotFound, ValidationFailed
from .node import NodePlan, node_supervisor_spec
from .options import ClusterOptions
from .runtime.hosting import find_component, forget_cluster
from .runtime.naming import (
    COMPONENTS,
    actor_name,
    check_name,
    namespace,
    registry_name,
    root_supervisor_name,
)
from .runtime.ray_follower import RayNodeWatcher
from .runtime.registry import ClusterRegistry
from .runtime.spans import cluster_actor_handles, collect_spans
from .runtime.storage import volatile_storage_warning
from .runtime.supervisor import Supervisor

if TYPE_CHECKING:
    from .chaos.monkey import ChaosMonkey
    from .recipes.barrier import Barrier
    from .recipes.election import LeaderElection
    from .recipes.lock import Lock
    from .recipes.queue import Queue
    from .recipes.registry import Registration, ServiceInstance, ServiceWatch
    from .recipes.rwlock import RWLock
    from .recipes.semaphore import Semaphore
    from .recipes.singleton import SingletonProxy

logger = logging.getLogger(__name__)

# Ray destroys a non-detached actor once every handle to it is gone, so the
# process that starts a cluster keeps its root handles until shutdown().
_OWNED: dict[str, tuple[Any, Any]] = {}


class NodeStatus(BaseModel):
    """One node as seen by ``Cluster.status()``."""

    node_id: str
    reachable: bool
    role: str | None = None
    term: int | None = None
    leader: str | None = None
    commit: int | None = None
    applied: int | None = None
    last_index: int | None = None
    voters: list[str] = []
    learners: list[str] = []
    state_hash: str | None = None
    ray_node_id: str | None = None
    state: str | None = None  #: lifecycle state from the node's coordinator
    phi: float | None = None  #: the highest phi its peers' detectors give it
    health: float | None = None  #: the lowest health score (0..1) its peers give it
    extra: dict[str, Any] = {}


class ClusterStatus(BaseModel):
    """The whole cluster at one moment."""

    name: str
    leader: str | None
    term: int
    nodes: list[NodeStatus]

    @property
    def healthy(self) -> bool:
        return self.leader is not None and all(n.reachable for n in self.nodes)


class NodeHandle:
    """Blocking clients for each component of one node: ``coordinator`` (a typed
    :class:`~cluster_actors.client.coordinator.Coordinator`), ``membership``,
    ``heartbeat``, ``consensus``, ``sync``, ``monitor`` and ``config`` (the
    seed's Configuration API, :class:`~cluster_actors.client.config.ConfigClient`).
    Every client has every remote call of its component, and ``subscribe``."""

    def __init__(self, cluster: str, node_id: str, timeout: float) -> None:
        self.node_id = node_id
        self.coordinator = Coordinator(cluster, node_id, timeout)
        self.membership = ComponentClient(cluster, node_id, "membership", timeout)
        self.heartbeat = ComponentClient(cluster, node_id, "heartbeat", timeout)
        self.consensus = ComponentClient(cluster, node_id, "consensus", timeout)
        self.sync = ComponentClient(cluster, node_id, "sync", timeout)
        self.monitor = MonitorClient(cluster, node_id, "monitor", timeout)
        self.config = ConfigClient(cluster, node_id, timeout)

    def __repr__(self) -> str:
        return f"<node {self.node_id}>"


def _names_in(ns: str) -> bool:
    """Whether any named actor of namespace ``ns`` is still registered."""
    try:
        return any(a["namespace"] == ns for a in ray.util.list_named_actors(all_namespaces=True))
    except Exception:  # Ray is gone: nothing is left to wait for
        return False


def initial_config_of(options: ClusterOptions, node_ids: list[str]) -> dict[str, Any]:
    """Version 1 of the replicated configuration: the members and the options'
    values of the seed's keys. Checked here, before any actor starts: an invalid
    one (say, a quorum larger than the node count) raises ValidationFailed."""
    config = {"members": list(node_ids), "quorum": options.quorum,
              "heartbeat_interval": options.heartbeat_interval,
              "election_timeout": options.election_timeout,
              "sync_strategy": options.sync_strategy,
              "partition_strategy": options.partition_strategy,
              "failover_strategy": options.failover_strategy,
              "metadata": dict(options.metadata)}
    parse_config(config, strategies.known_strategies())
    return config


class Cluster:
    """A handle on a running cluster (see the module doc)."""

    def __init__(self, name: str, node_ids: list[str], options: ClusterOptions,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.name = name
        self.node_ids = list(node_ids)
        self.options = options
        self.timeout = timeout
        self.namespace = namespace(name)
        #: the session with the leader that every client of this handle shares
        self.session = LeaderSession(name, lambda: self.node_ids, options)
        self._kv: KVClient | None = None
        self._chaos: ChaosMonkey | None = None
        self._ray_watcher: RayNodeWatcher | None = None  # follow_ray_nodes

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls, name: str = "demo", nodes: int | list[str] = 3,
              options: ClusterOptions | dict[str, Any] | None = None, *,
              ray_nodes: list[str] | None = None, fresh: bool = False,
              wait: bool = True, **ray_init: Any) -> Cluster:
        """Start a cluster of ``nodes`` logical nodes (a count or a list of ids).

        Calls ``ray.init(**ray_init)`` if Ray is not running. ``ray_nodes``
        pins logical node i to Ray node ``ray_nodes[i % len]``.

        Restarts keep the data: if a previous cluster of this name left its
        files in the data directory (``options.data_dir``, default a per-user
        directory, see :meth:`ClusterOptions.data_root`), the cluster resumes
        it with the same members; a node whose files are gone rejoins as a
        learner through the leader. ``fresh=True`` deletes those files first
        and founds a new cluster (a new cluster id). With ``wait``, returns
        once a leader is elected.
        """
        check_name("cluster", name)
        opts = ClusterOptions.parse(options)
        # resolved once here, so every actor (wherever it runs) uses the same root
        opts = opts.model_copy(update={"data_dir": opts.data_root()})
        node_ids = ([f"n{i + 1}" for i in range(nodes)] if isinstance(nodes, int)
                    else [check_name("node", n) for n in nodes])
        if not node_ids or len(set(node_ids)) != len(node_ids):
            raise ValidationFailed([("nodes", "give a positive count or distinct node ids")])
        initial_config = initial_config_of(opts, node_ids)
        if not ray.is_initialized():
            ray_init.setdefault("include_dashboard", False)
            ray_init.setdefault("log_to_driver", False)
            ray.init(**ray_init)
        ns = namespace(name)
        with contextlib.suppress(ValueError):
            ray.get_actor(registry_name(name), namespace=ns)
            raise ClusterError(f"a cluster named {name!r} is already running: attach to it "
                               f"with Cluster.attach({name!r}) or shut it down first")
        forget_cluster(name)
        if fresh:  # here; a node on another machine deletes its own files (a new cluster id)
            shutil.rmtree(opts.resolved_data_dir(name), ignore_errors=True)
        warning = volatile_storage_warning(opts.data_root(), opts.fsync)
        if warning:
            logger.warning("cluster %s: %s", name, warning)
        plans = [NodePlan(name, node_id, node_ids, opts,
                          ray_nodes[i % len(ray_nodes)] if ray_nodes else None,
                          initial_config=initial_config)
                 for i, node_id in enumerate(node_ids)]
        lifetime = {"lifetime": "detached"} if opts.detached else {}
        registry = ClusterRegistry.options(
            name=registry_name(name), namespace=ns, num_cpus=0, **lifetime).remote(
            name, node_ids, opts.model_dump(), {p.node_id: p.ray_node_id for p in plans},
            cluster_id=uuid.uuid4().hex, fresh=fresh)
        flags = SupervisorFlags(Strategy.ONE_FOR_ONE, opts.supervisor_intensity,
                                opts.supervisor_period)
        root = Supervisor.options(name=root_supervisor_name(name), namespace=ns, num_cpus=0,
                                  max_restarts=0, **lifetime).remote(
            flags, [node_supervisor_spec(p) for p in plans], name=root_supervisor_name(name),
            tracing=opts.tracing)
        cluster = cls(name, node_ids, opts)
        _OWNED[name] = (registry, root)
        try:
            ray.get(root.start_children.remote(), timeout=120 + 10 * len(node_ids))
            ray.get(registry.set_root.remote(root))
            if wait:
                cluster.wait_for_leader(timeout=60)
            if opts.follow_ray_nodes:
                cluster._ray_watcher = RayNodeWatcher(cluster, opts.ray_node_grace_ms / 1000)
        except BaseException:
            cluster.shutdown()
            raise
        return cluster

    @classmethod
    def attach(cls, name: str, address: str | None = "auto", timeout: float = DEFAULT_TIMEOUT
               ) -> Cluster:
        """A handle on cluster ``name`` already running on the Ray cluster at
        ``address`` (``"auto"``: the one this machine belongs to)."""
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except ConnectionError as error:
                raise ClusterError(f"no Ray cluster reachable at {address!r}: start one with "
                                   f"`ray start --head` or pass its address ({error})") from None
        node_ids, options = registered_cluster(name, timeout)
        return cls(name, node_ids, options, timeout)

    def shutdown(self) -> None:
        """Stop every actor of the cluster (children in reverse start order)."""
        if self._ray_watcher is not None:
            self._ray_watcher.close()
        self.session.close()
        if self._chaos is not None:
            with contextlib.suppress(Exception):
                self._chaos.close()  # resumes paused processes, heals partitions
        ns = self.namespace
        for actor in (root_supervisor_name(self.name),):
            with contextlib.suppress(Exception):
                root = ray.get_actor(actor, namespace=ns)
                ray.get(root.stop.remote(), timeout=60)
        with contextlib.suppress(Exception):
            ray.kill(ray.get_actor(root_supervisor_name(self.name), namespace=ns))
        # anything left behind (a node whose supervisor died mid-stop) is killed
        for node_id in self.node_ids:
            for component in (*COMPONENTS, "supervisor", "host"):
                with contextlib.suppress(Exception):
                    ray.kill(ray.get_actor(actor_name(self.name, node_id, component),
                                           namespace=ns))
        with contextlib.suppress(Exception):
            ray.kill(ray.get_actor(registry_name(self.name), namespace=ns))
        # Ray frees a killed actor's name asynchronously: wait (briefly) so that
        # starting a cluster of the same name right away finds it free
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and _names_in(ns):
            time.sleep(0.02)
        _OWNED.pop(self.name, None)
        forget_cluster(self.name)

    # ---------------------------------------------------- runtime membership
    def add_node(self, node_id: str, *, ray_node_id: str | None = None,
                 timeout: float = 60.0) -> str:
        """Start node ``node_id`` and join it to the running cluster (the seed's
        ``join_cluster``): its actors start with no voters, the leader adds it
        as a learner, brings its log up to date, then promotes it to voter
        (with ``ClusterOptions(voters=N)`` and N voters already, it stays a
        learner autopilot can promote; with ``join_approval`` it first waits for
        a quorum of the voters' ``approve_join``). Returns the node id then;
        ``node_ids``, the registry (and so :meth:`attach`) and every
        coordinator's member list include it.

        ``ray_node_id`` pins it to a Ray node. Raises ValidationFailed for a bad
        or taken id, NoQuorum/CoordinationTimeout when the cluster cannot take
        it; a node that failed to join is stopped again and not added.
        """
        check_name("node", node_id)
        if node_id in self.node_ids:
            raise ValidationFailed([("node_id", f"{node_id!r} is already a node of cluster "
                                                f"{self.name!r}")])
        members = [*self.node_ids, node_id]
        plan = NodePlan(self.name, node_id, members, self.options, ray_node_id, join=True,
                        initial_config=initial_config_of(self.options, self.node_ids))
        root = self._root()
        ray.get(root.start_child.remote(node_supervisor_spec(plan)), timeout=timeout)
        try:
            Coordinator(self.name, node_id, timeout).join_cluster(list(self.node_ids), timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                ray.get(root.terminate_child.remote(node_id), timeout=timeout)
                ray.get(root.delete_child.remote(node_id), timeout=timeout)
            raise
        ray.get(self._registry().add_node.remote(node_id, ray_node_id), timeout=timeout)
        self.node_ids.append(node_id)
        return node_id

    def remove_node(self, node_id: str, timeout: float = 60.0) -> None:
        """Take ``node_id`` (live or dead) out of the cluster: the leader removes it
        from the voters (a leader being removed hands leadership over first),
        then its actors are stopped and it leaves ``node_ids`` and the registry.
        Its durable files stay where they are (delete them yourself to reuse the
        id with empty storage). Raises NotFound for an unknown node and
        NoQuorum/CoordinationTimeout when the remaining voters cannot commit the
        change (nothing is changed then)."""
        if node_id not in self.node_ids:
            raise NotFound(f"no node {node_id!r} in cluster {self.name!r}; its nodes are "
                           f"{', '.join(self.node_ids)}")
        if len(self.node_ids) == 1:
            raise ValidationFailed([("node_id", "the last node cannot be removed; shut the "
                                                "cluster down instead")])
        deadline = time.monotonic() + timeout
        leader = self.wait_for_leader(timeout)
        if leader == node_id:
            with contextlib.suppress(Exception):
                self.coordinator(node_id).step_down()
            leader = self.session.watch.wait_for_leader(
                max(0.0, deadline - time.monotonic()), other_than=node_id)
            if leader is None:
                raise CoordinationTimeout(f"{node_id} still leads: cannot remove it now")
        handle = self.session.handle(leader)
        left = max(1.0, deadline - time.monotonic())
        try:
            ray.get(handle.change_membership.remote([("remove", node_id)], left),
                    timeout=left + 1.0)
        except ray.exceptions.RayTaskError as error:
            raise unwrap(error) from None
        except ray.exceptions.GetTimeoutError:
            raise CoordinationTimeout(f"removing {node_id} was not committed within "
                                      f"{timeout} s: is a majority of the voters up?") from None
        root = self._root()
        with contextlib.suppress(Exception):
            ray.get(root.terminate_child.remote(node_id), timeout=timeout)
        with contextlib.suppress(Exception):
            ray.get(root.delete_child.remote(node_id), timeout=timeout)
        ray.get(self._registry().remove_node.remote(node_id), timeout=timeout)
        self.node_ids.remove(node_id)
        self.session.forget(node_id)

    def _root(self) -> Any:
        try:
            return ray.get_actor(root_supervisor_name(self.name), namespace=self.namespace)
        except ValueError:
            raise ClusterError(f"cluster {self.name!r} has no root supervisor: is it "
                               "running?") from None

    def _registry(self) -> Any:
        try:
            return ray.get_actor(registry_name(self.name), namespace=self.namespace)
        except ValueError:
            raise ClusterError(f"cluster {self.name!r} has no registry: is it "
                               "running?") from None

    def spans(self, timeout: float = 10.0, clear: bool = False) -> list[dict[str, Any]]:
        """Spans the cluster's actors recorded (``ClusterOptions(tracing="memory")``),
        oldest first, each naming its actor under ``source``; [] with another exporter."""
        return collect_spans(cluster_actor_handles(self.name, self.node_ids), timeout, clear)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # --------------------------------------------------------------- access
    def config(self, node_id: str | None = None) -> ConfigClient:
        """The seed's Configuration API on ``node_id`` (default the first node):
        shortcut for ``cluster.node(node_id).config``."""
        return self.node(node_id or self.node_ids[0]).config

    def node(self, node_id: str) -> NodeHandle:
        if node_id not in self.node_ids:
            raise NotFound(f"no node {node_id!r} in cluster {self.name!r}; its nodes are "
                           f"{', '.join(self.node_ids)}")
        return NodeHandle(self.name, node_id, self.timeout)

    def coordinator(self, node_id: str) -> Coordinator:
        """That node's coordinator: the seed's Coordinator API as blocking calls
        with typed results (``get_quorum()`` -> ``(has_quorum, size, current)``)."""
        self.node(node_id)
        return Coordinator(self.name, node_id, self.timeout)

    @property
    def chaos(self) -> ChaosMonkey:
        """The cluster's :class:`~cluster_actors.chaos.ChaosMonkey` (created on
        first use): ``kill_leader()``, ``kill(node, component)``, ``kill_node``,
        ``partition(groups)``, ``pause``, ``heal()``, a recorded timeline."""
        if self._chaos is None:
            from .chaos.monkey import ChaosMonkey

            self._chaos = ChaosMonkey(self)
        return self._chaos

    def data(self, node_id: str) -> DataStore:
        """That node's eventually consistent CRDT store."""
        self.node(node_id)
        return DataStore(self.name, node_id, self.timeout)

    @property
    def kv(self) -> KVClient:
        """The linearizable key-value store (on the cluster's one session)."""
        if self._kv is None:
            self._kv = KVClient(self.session)
        return self._kv

    # --------------------------------------------------------------- status
    def _statuses(self, timeout: float = 2.0) -> dict[str, dict[str, Any] | None]:
        """Each node's consensus status; None for a node that did not answer
        within ``timeout`` (dead, restarting or partitioned away)."""
        refs: dict[Any, str] = {}
        for node_id in self.node_ids:
            with contextlib.suppress(ValueError):
                refs[self.session.handle(node_id).status.remote()] = node_id
        out: dict[str, dict[str, Any] | None] = dict.fromkeys(self.node_ids)
        if not refs:
            return out
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=max(0.0, timeout))
        for ref in ready:
            node_id = refs[ref]
            try:
                out[node_id] = ray.get(ref)
            except Exception:
                self.session.forget(node_id)
        return out

    def leader(self) -> str | None:
        """The current leader's node id, or None: answered from the leadership
        the nodes pushed (no Ray call), else from one quick poll of the nodes."""
        return self.session.leader()

    def wait_for_leader(self, timeout: float = 30.0) -> str:
        """Block until a leader is elected; its node id."""
        leader = self.session.wait_for_leader(timeout)
        if leader is None:
            raise CoordinationTimeout(f"no leader elected within {timeout} s: check that a "
                                      f"majority of {self.node_ids} is running and connected"
                                      f"{self._start_problems()}")
        return leader

    def _start_problems(self) -> str:
        """Why nodes are not running Raft (a refusal, a pending rejoin), as a
        sentence to append to an error; "" when none says."""
        problems = []
        for node_id, status in self._statuses().items():
            if status is None:
                continue
            if status.get("refused"):
                problems.append(str(status["refused"]))
            elif (status.get("rejoin") or {}).get("state") == "pending":
                problems.append(f"{node_id} lost its storage and waits for a leader to "
                                f"re-admit it")
        if not problems:
            return ""
        return ("; " + "; ".join(problems) + ". If a majority of the nodes lost their files, "
                "the acknowledged data is gone with them: restore the files, or start over "
                "with fresh=True")

    def _gather(self, component: str, method: str, timeout: float) -> dict[str, Any]:
        """``method()`` of ``component`` on every node, in parallel; nodes that
        do not answer within ``timeout`` are left out."""
        refs = {}
        for node_id in self.node_ids:
            with contextlib.suppress(Exception):
                handle = find_component(self.name, node_id, component)
                refs[getattr(handle, method).remote()] = node_id
        out: dict[str, Any] = {}
        if refs:
            ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
            for ref in ready:
                with contextlib.suppress(Exception):
                    out[refs[ref]] = ray.get(ref)
        return out

    def status(self, details: bool = True) -> ClusterStatus:
        """Every node's role, term, leader, commit and applied index; with
        ``details``, also its lifecycle state and the phi and health score its
        peers' failure detectors give it (worst over the observers)."""
        statuses = self._statuses()
        states = self._gather("coordinator", "lifecycle_state", 0.5) if details else {}
        heartbeats = self._gather("heartbeat", "get_heartbeat_status", 0.5) if details else {}
        phi: dict[str, float] = {}
        health: dict[str, float] = {}
        for report in heartbeats.values():
            for peer, info in (report.get("peers") or {}).items():
                phi[peer] = max(phi.get(peer, 0.0), float(info.get("phi") or 0.0))
                health[peer] = min(health.get(peer, 1.0), float(info.get("score", 1.0)))
        nodes = []
        for node_id in self.node_ids:
            s = statuses.get(node_id)
            if s is None:
                nodes.append(NodeStatus(node_id=node_id, reachable=False,
                                        state=states.get(node_id), phi=phi.get(node_id),
                                        health=health.get(node_id)))
                continue
            nodes.append(NodeStatus(
                node_id=node_id, reachable=True, role=s["role"], term=s["term"],
                leader=s["leader"], commit=s["commit"], applied=s["applied"],
                last_index=s["last_index"], voters=s["voters"], learners=s["learners"],
                state_hash=s["state_hash"], ray_node_id=s.get("ray_node_id"),
                state=states.get(node_id), phi=phi.get(node_id), health=health.get(node_id),
                extra={"commit_latency_p50_ms": s.get("commit_latency_p50_ms")}))
        leaders = [(n.term or 0, n.node_id) for n in nodes if n.role == "leader"]
        term = max((n.term or 0 for n in nodes), default=0)
        return ClusterStatus(name=self.name, leader=max(leaders)[1] if leaders else None,
                             term=term, nodes=nodes)

    def supervisor(self, node_id: str | None = None) -> ComponentClient:
        """Blocking client of the root supervisor (or a node's supervisor)."""
        return ComponentClient(self.name, node_id or "", "supervisor") if node_id else \
            _RootClient(self.name, "", "root")

    # ------------------------------------------------- election and locks
    def election(self, name: str) -> LeaderElection:
        """The :class:`~cluster_actors.recipes.election.LeaderElection` named ``name``:
        campaign / proclaim / leader / observe / resign, with fencing tokens."""
        from .recipes.election import LeaderElection

        return LeaderElection(self.session, name)

    def lock(self, name: str, ttl: float = 2.0, timeout: float | None = None) -> Lock:
        """A :class:`~cluster_actors.recipes.lock.Lock` named ``name`` (a new
        contender per call), released when its holder's ``ttl`` s lease expires."""
        from .recipes.lock import Lock

        return Lock(self.session, name, ttl=ttl, timeout=timeout)

    # ------------------------------------------------- coordination recipes
    def rwlock(self, name: str, ttl: float = 2.0, timeout: float | None = None) -> RWLock:
        """A :class:`~cluster_actors.recipes.rwlock.RWLock` named ``name``:
        ``with rw.read():`` (shared) / ``with rw.write():`` (exclusive), each
        hold with a fencing token, released when its ``ttl`` s lease expires."""
        from .recipes.rwlock import RWLock

        return RWLock(self.session, name, ttl=ttl, timeout=timeout)

    def semaphore(self, name: str, limit: int, ttl: float = 2.0,
                  timeout: float | None = None) -> Semaphore:
        """A :class:`~cluster_actors.recipes.semaphore.Semaphore` (a new
        contender per call): never more than ``limit`` holders; a holder whose
        ``ttl`` s lease expires frees its slot."""
        from .recipes.semaphore import Semaphore

        return Semaphore(self.session, name, limit, ttl=ttl, timeout=timeout)

    def barrier(self, name: str, parties: int, ttl: float = 2.0) -> Barrier:
        """A :class:`~cluster_actors.recipes.barrier.Barrier` (one party per
        call): ``wait(timeout=)`` releases ``parties`` parties together;
        ``enter()`` / ``leave()`` is the double barrier."""
        from .recipes.barrier import Barrier

        return Barrier(self.session, name, parties, ttl=ttl)

    def queue(self, name: str) -> Queue:
        """The FIFO :class:`~cluster_actors.recipes.queue.Queue` named
        ``name``: ``put(item)``, ``get(timeout=)``, each item to one consumer."""
        from .recipes.queue import Queue

        return Queue(self.session, name)

    def register(self, service: str, address: Any, ttl: float = 10.0,
                 metadata: dict[str, Any] | None = None,
                 instance_id: str | None = None) -> Registration:
        """Register an instance of ``service`` at ``address``, kept alive by a
        ``ttl`` s lease until ``deregister()`` (see
        :class:`~cluster_actors.recipes.registry.Registration`)."""
        from .recipes.registry import Registration

        return Registration(self.session, service, address, ttl, metadata, instance_id)

    def services(self, service: str) -> list[ServiceInstance]:
        """The live instances of ``service``, in registration order (linearizable)."""
        from .recipes.registry import services

        return services(self.session, service)

    def watch_services(self, service: str, poll: float = 1.0) -> ServiceWatch:
        """Follow the instances of ``service``: an iterator of
        :class:`~cluster_actors.recipes.registry.ServiceChange` (the current
        members first, then each change)."""
        from .recipes.registry import ServiceWatch

        return ServiceWatch(self.session, service, poll)

    def singleton(self, name: str, actor_class: Any, *args: Any, lease_ttl: float = 2.0,
                  **kwargs: Any) -> SingletonProxy:
        """Take part in running one ``actor_class(*args, **kwargs)`` Ray actor
        cluster-wide (see :mod:`cluster_actors.recipes.singleton`): this
        process starts it while it holds the election ``singleton/<name>``
        (a ``lease_ttl`` s lease). Returns the proxy
        (``proxy.method.remote(...)`` reaches the live instance;
        ``proxy.stop()`` ends this process's part)."""
        from .recipes.singleton import Singleton, SingletonProxy

        manager = Singleton(self.session, name, actor_class, args, kwargs, ttl=lease_ttl)
        return SingletonProxy(self.session, name, manager)

    def singleton_proxy(self, name: str) -> SingletonProxy:
        """A proxy to singleton ``name`` without taking part in running it."""
        from .recipes.singleton import SingletonProxy

        return SingletonProxy(self.session, name)

    def __repr__(self) -> str:
        return f"<Cluster {self.name!r} nodes={self.node_ids}>"


class _RootClient(ComponentClient):
    def _resolve(self, timeout: float) -> Any:
        try:
            return ray.get_actor(root_supervisor_name(self._cluster),
                                 namespace=namespace(self._cluster))
        except ValueError:
            raise ClusterError(f"cluster {self._cluster!r} has no root supervisor") from None


__all__ = ["Cluster", "ClusterStatus", "NodeHandle", "NodeStatus", "unwrap"]
