"""Assembles a logical node: the child specs of its components, their names
and their placement on a Ray node. Sits above ``actors/``; the supervisor in
``runtime/`` receives these specs as factories and never imports the actors.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .core.supervision import Restart, Strategy, SupervisorFlags
from .options import ClusterOptions
from .runtime.hosting import NodeHost
from .runtime.naming import actor_name, host_name, namespace, node_supervisor_name
from .runtime.supervisor import ActorFactory, ChildSpec, Supervisor


@dataclass
class NodePlan:
    """Where and how one logical node runs."""

    cluster: str
    node_id: str
    voters: list[str]
    options: ClusterOptions
    ray_node_id: str | None = None  #: pin to this Ray node (NodeAffinity), or anywhere
    join: bool = False  #: a node added to a running cluster (starts with no voters)
    initial_config: dict[str, Any] = field(default_factory=dict)

    def actor_options(self, name: str) -> dict[str, Any]:
        options: dict[str, Any] = {"name": name, "namespace": namespace(self.cluster),
                                   "num_cpus": 0, "max_restarts": 0}
        if self.ray_node_id:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                self.ray_node_id, soft=False)
        return options


# start order (stopped in reverse): the monitor first so the others can report
# to it, the coordinator last because it aggregates the others' events.
COMPONENT_CLASSES: dict[str, str] = {
    "monitor": "cluster_actors.actors.monitor:MonitorActor",
    "consensus": "cluster_actors.actors.consensus:ConsensusActor",
    "membership": "cluster_actors.actors.membership:MembershipActor",
    "heartbeat": "cluster_actors.actors.heartbeat:HeartbeatActor",
    "sync": "cluster_actors.actors.sync:SyncActor",
    "coordinator": "cluster_actors.actors.coordinator:CoordinatorActor",
}


def _actor_class(path: str) -> Any:
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def component_specs(plan: NodePlan) -> list[ChildSpec]:
    """The node's components in start order (stopped in reverse). Every
    component actor takes the same constructor arguments."""
    options = plan.options.model_dump()
    specs = []
    for component, path in COMPONENT_CLASSES.items():
        actor_class = _actor_class(path)
        specs.append(ChildSpec(
            id=component,
            start=ActorFactory(actor_class,
                               args=(plan.cluster, plan.node_id, plan.voters, options,
                                     plan.initial_config, plan.join),
                               options=plan.actor_options(
                                   actor_name(plan.cluster, plan.node_id, component))),
            restart=Restart.PERMANENT, shutdown=5.0,
            restart_delay=plan.options.restart_delay_ms / 1000))
    return specs


def node_supervisor_spec(plan: NodePlan) -> ChildSpec:
    """The node's child of the cluster's root supervisor: its supervisor
    (``per_component`` placement) or its host (``per_node``).

    one_for_one: a component that dies is restarted alone; it recovers its
    durable state (consensus) or rebuilds from its peers (the others).
    """
    if plan.options.placement == "per_node":
        return node_host_spec(plan)
    flags = SupervisorFlags(Strategy.ONE_FOR_ONE, plan.options.supervisor_intensity,
                            plan.options.supervisor_period)
    name = node_supervisor_name(plan.cluster, plan.node_id)
    return ChildSpec(
        id=plan.node_id,
        start=ActorFactory(Supervisor, args=(flags, component_specs(plan)),
                           kwargs={"name": name}, options=plan.actor_options(name)),
        restart=Restart.PERMANENT, kind="supervisor", shutdown=30.0)


def node_host_spec(plan: NodePlan) -> ChildSpec:
    """The ``per_node`` placement: one :class:`NodeHost` actor runs the node's
    components (in start order) and is restarted as a whole by the root
    supervisor; consensus recovers from its SQLite file as after any restart."""
    options = plan.options.model_dump()
    components = [(component, _actor_class(path)) for component, path in COMPONENT_CLASSES.items()]
    args = (plan.cluster, plan.node_id, plan.voters, options, plan.initial_config, plan.join)
    name = host_name(plan.cluster, plan.node_id)
    return ChildSpec(
        id=plan.node_id,
        start=ActorFactory(NodeHost, args=(plan.cluster, plan.node_id, components, args),
                           options=plan.actor_options(name)),
        restart=Restart.PERMANENT, shutdown=30.0,
        restart_delay=plan.options.restart_delay_ms / 1000)
