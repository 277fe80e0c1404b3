"""The coordinator's part that carries out the failover and partition strategies.

Each health round the coordinator feeds what it observed (leader, voters,
reachability, phi and the metadata the heartbeats carry, the leader's
replication progress) to a :class:`~strategies.driver.StrategyDriver`
and performs what comes back:

* **failover**: its own election bias goes to its consensus actor (Raft's
  election timeout scale); a leader transfers leadership (TimeoutNow) to the
  strategy's top candidate when it is draining or its peers no longer trust
  it; ``become_leader``-style operator requests go through the same path;
  a leaving leader hands off to the top-ranked node.
* **partition**: the decision for this node's side sets the CRDT store's mode
  (serve, read_only, down) on the sync actor; a side that goes read-only or
  down (or waits for an operator) enters ``partitioning``; after the heal,
  rejoin and merge policies resume and resync on their own, ``manual`` waits
  for ``heal_partition``.

Strategy switches are config entries (``failover_strategy``,
``partition_strategy``), so every node switches at the same log position.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from strategies.driver import Actions, Observation, StrategyDriver

from ..core.lifecycle import LifecycleState as State
from ..errors import ValidationFailed
from ..runtime.hosting import find_component

logger = logging.getLogger(__name__)

#: Lifecycle states in which this node should not lead.
_LEAVING = (State.DRAINING, State.SHUTDOWN)


class StrategyRunner:
    """Mixin of :class:`~cluster_actors.actors.coordinator.CoordinatorActor`."""

    driver: StrategyDriver

    def _start_strategies(self) -> None:
        opts = self.options  # type: ignore[attr-defined]
        self.driver = StrategyDriver(
            self.node_id, opts.failover_strategy, opts.partition_strategy,  # type: ignore[attr-defined]
            time.monotonic(), failover_options=opts.failover_options,
            partition_options=opts.partition_options)
        self._strategy_log: list[dict[str, Any]] = []
        self.data_mode_applied = "serve"  #: the sync actor's mode, as it confirmed it

    def _observation(self, heartbeat: Mapping[str, Any] | None) -> Observation:
        view = self.view  # type: ignore[attr-defined]
        peers = (heartbeat or {}).get("peers") or {}
        phi = {p: float(i.get("phi") or 0.0) for p, i in peers.items() if isinstance(i, Mapping)}
        metadata = {p: dict(i.get("metadata") or {}) for p, i in peers.items()
                    if isinstance(i, Mapping)}
        metadata[self.node_id] = dict((heartbeat or {}).get("metadata") or {})  # type: ignore[attr-defined]
        progress = view.status.get("progress") or {}
        match = {p: int(info.get("match") or 0) for p, info in progress.items()
                 if isinstance(info, Mapping)}
        if view.leader == self.node_id:  # type: ignore[attr-defined]
            match[self.node_id] = int(view.status.get("last_index") or 0)  # type: ignore[attr-defined]
        draining = {self.node_id} if self.lifecycle.state in _LEAVING else set()  # type: ignore[attr-defined]
        return Observation(now=time.monotonic(), leader=view.leader, voters=list(view.voters),
                           reachable=set(view.reachable), phi=phi, metadata=metadata,
                           match_index=match, draining=draining,
                           configured_quorum=self.quorum_setting)  # type: ignore[attr-defined]

    async def _run_strategies(self, heartbeat: Mapping[str, Any] | None) -> None:
        """One strategy round (called after each health round, outside its lock)."""
        if not self.view.voters or self.node_id not in self.view.voters:  # type: ignore[attr-defined]
            return
        actions = self.driver.step(self._observation(heartbeat))
        await self._carry_out(actions)

    async def _carry_out(self, actions: Actions) -> None:
        ask = self._ask  # type: ignore[attr-defined]
        publish = self.events.publish  # type: ignore[attr-defined]
        if actions.election_bias is not None:
            await ask("consensus", "set_election_bias", actions.election_bias)
            publish("election_bias", factor=actions.election_bias,
                    strategy=self.driver.failover.strategy_name)
        if actions.transfer_to is not None and actions.failover is not None:
            self._note("transfer", target=actions.transfer_to, reason=actions.failover.reason)
            publish("leadership_transfer", target=actions.transfer_to,
                    reason=actions.failover.reason, strategy=self.driver.failover.strategy_name)
            await ask("consensus", "transfer_leadership", actions.transfer_to)
        decision = actions.partition
        if actions.data_mode is not None:
            self._note("data_mode", mode=actions.data_mode, reason=decision.reason)
            publish("data_mode", mode=actions.data_mode, reason=decision.reason,
                    strategy=decision.strategy)
        wanted = self.driver.data_mode
        # (Re)send until taken, and every round while not serving: a sync actor
        # restarted meanwhile would start serving again on its own.
        if wanted != self.data_mode_applied or wanted != "serve":
            reason = decision.reason if decision else "partition strategy"
            if await ask("sync", "set_mode", wanted, reason) == wanted:
                self.data_mode_applied = wanted
        if actions.partitioned is not None and (
                decision.this_side_action.value in ("down", "read_only")
                or decision.awaiting_operator):
            self._note("partitioned", nodes=actions.partitioned, reason=decision.reason)
            await self.report_partition(actions.partitioned,  # type: ignore[attr-defined]
                                        reason=f"{decision.strategy}: {decision.reason}")
        if actions.healed is not None:
            self._note("healed", strategy=actions.healed, reason=decision.reason)
            if self._partition is not None:  # type: ignore[attr-defined]
                self._declare_healed(actions.healed)  # type: ignore[attr-defined]
            await ask("sync", "sync_all")

    def _note(self, kind: str, **fields: Any) -> None:
        self._strategy_log.append({"kind": kind, "at": time.time(), **fields})
        del self._strategy_log[:-50]

    def _switch_strategy(self, kind: str, name: str) -> None:
        """The applied config sets ``<kind>_strategy`` to ``name`` (a no-op if it
        runs already; see ``ConfigCommands._adopt_config``)."""
        current = getattr(self.driver, kind)
        if current.strategy_name == name:
            return
        # the cluster's options configure the strategy they name; another starts with defaults
        configured = getattr(self.options, f"{kind}_strategy") == name  # type: ignore[attr-defined]
        options = getattr(self.options, f"{kind}_options") if configured else {}  # type: ignore[attr-defined]
        try:
            self.driver.switch(kind, name, options)
        except Exception as error:  # validated before it was proposed; keep running
            logger.warning("coordinator of %s: cannot switch %s strategy to %s: %s",
                           self.node_id, kind, name, error)  # type: ignore[attr-defined]
            return
        self._note("switched", strategy_kind=kind, name=name)
        self.events.publish("strategy_switched", kind=kind, name=name)  # type: ignore[attr-defined]

    def _successor(self) -> str | None:
        """The failover strategy's best candidate other than this node."""
        last = self.driver.last
        ranking = last.failover.ranking if last and last.failover else ()
        return next((n for n in ranking if n != self.node_id), None)  # type: ignore[attr-defined]

    # --------------------------------------------------------------- seed's API
    async def get_failover_info(self) -> dict[str, Any]:
        """The failover strategy's latest ranking, election bias and reason,
        and the recent transfers and partition decisions of this node."""
        last = self.driver.last
        failover = last.failover if last else None
        partition = last.partition if last else None
        return {
            "strategy": self.driver.failover.strategy_name,
            "ranking": list(failover.ranking) if failover else [],
            "election_bias": self.driver.bias,
            "transfer_to": failover.transfer_to if failover else None,
            "reason": failover.reason if failover else None,
            "partition_strategy": self.driver.partition.strategy_name,
            "partition_action": partition.this_side_action.value if partition else None,
            "partition_reason": partition.reason if partition else None,
            "data_mode": self.data_mode_applied,
            "awaiting_operator": self.driver.awaiting_operator,
            "log": list(self._strategy_log),
        }

    async def request_leadership(self, target: str) -> str:
        """Ask the failover strategy to move leadership to ``target`` (what
        ``manual`` waits for); the leader's next health round carries it out.
        A follower forwards the request to the leader. Returns
        ``"requested"``; raises ``ValidationFailed`` for a non-member."""
        if target not in self.view.voters:  # type: ignore[attr-defined]
            raise ValidationFailed([("target", f"{target!r} is not a voter; voters: "
                                     f"{', '.join(self.view.voters)}")])  # type: ignore[attr-defined]
        leader = self.view.leader  # type: ignore[attr-defined]
        if leader is not None and leader != self.node_id:  # type: ignore[attr-defined]
            handle = find_component(self.cluster, leader, "coordinator")  # type: ignore[attr-defined]
            return await handle.request_leadership.remote(target)
        self.driver.request_leader(target)
        self._kick.set()  # type: ignore[attr-defined]
        return "requested"
