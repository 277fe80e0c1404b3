"""Autopilot's plan carried out on the simulated Raft core: five nodes trimmed
to three voters, voters crashed one after another, each replaced by a
caught-up learner through joint consensus, with every Raft safety invariant
checked at each step and the clients' writes still committing."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import pytest

from cluster_actors.core.autopilot import Observation, plan
from cluster_actors.core.raft import ProposalDropped
from cluster_actors.core.raft_types import ConfChange, ConfChangeType
from cluster_actors.errors import ClusterError
from cluster_actors.testing.sim import SimConfig, Simulation

MAX_VOTERS = 3
GRACE_TICKS = 40
CATCH_UP_SLACK = 5


class AutopilotRun:
    """One seeded run: the leader consults :func:`plan` every tick."""

    def __init__(self, seed: int) -> None:
        self.sim = Simulation(SimConfig(nodes=5, seed=seed, faults=("network",)))
        self.rng = random.Random(seed)
        self.down_since: dict[str, int] = {}
        self.swaps = 0

    def conf(self) -> tuple[frozenset[str], frozenset[str]] | None:
        leader = self.sim.current_leader()
        if leader is None:
            return None
        raft = self.sim.nodes[leader].raft
        return raft.conf.voters, raft.conf.learners

    def autopilot(self) -> None:
        sim = self.sim
        for node in sim.nodes.values():
            if node.alive:
                self.down_since.pop(node.id, None)
            else:
                self.down_since.setdefault(node.id, sim.now)
        leader = sim.current_leader()
        if leader is None:
            return
        raft = sim.nodes[leader].raft
        caught_up = frozenset(n for n in raft.conf.learners
                              if raft.progress[n].match + CATCH_UP_SLACK >= raft.commit)
        seen = Observation(leader, raft.conf.voters, raft.conf.learners,
                           {n: sim.now - t for n, t in self.down_since.items()}, caught_up,
                           joint=raft.conf.joint)
        changes = plan(seen, MAX_VOTERS, GRACE_TICKS)
        if not changes:
            return
        change = ConfChange(tuple((ConfChangeType(kind), node) for kind, node in changes))
        with contextlib.suppress(ClusterError, ProposalDropped, ValueError):
            raft.propose_conf_change(change)
            self.swaps += len(changes) == 2
            sim.nodes[leader].handle_ready()

    def run_until(self, condition: Callable[[], object], limit: int = 3000) -> None:
        for _ in range(limit):
            self.sim.step()  # checks every safety invariant
            self.autopilot()
            if condition():
                return
        raise AssertionError(f"condition not reached in {limit} ticks (seed replay: "
                             f"{self.sim.config.seed})")


@pytest.mark.parametrize("seed", range(12))
def test_autopilot_replaces_crashed_voters_and_writes_keep_committing(seed: int) -> None:
    run = AutopilotRun(seed)
    sim = run.sim
    run.run_until(lambda: (c := run.conf()) is not None and len(c[0]) == MAX_VOTERS
                  and len(c[1]) == 2 and not sim.nodes[sim.current_leader()].raft.conf.joint)
    for _ in range(2):
        voters, _ = run.conf()  # type: ignore[misc]
        leader = sim.current_leader()
        victim = run.rng.choice(sorted(voters - {leader}))
        sim.nodes[victim].alive = False
        run.run_until(lambda v=victim: (c := run.conf()) is not None and v in c[1]
                      and len(c[0]) == MAX_VOTERS and not any(
                          not sim.nodes[n].alive for n in c[0]))
        committed = sim.nodes[sim.current_leader()].raft.commit
        run.run_until(lambda before=committed: sim.nodes[sim.current_leader()].raft.commit
                      > before + 5 if sim.current_leader() else False)
        sim.nodes[victim].restart()
    assert run.swaps >= 2
    sim.heal_all()
    sim.clients_paused = True
    run.run_until(sim.converged)
