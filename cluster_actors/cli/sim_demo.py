"""A 5-node cluster of the pure Raft cores in the deterministic simulator:
a leader is elected, commands commit, the leader crashes, a new leader takes
over, and nothing committed is lost. Runs in a second, with no Ray."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from ..core.kv import Command
from ..testing.sim import SimConfig, Simulation


def _run_until(sim: Simulation, condition, limit: int) -> int:  # type: ignore[no-untyped-def]
    for tick in range(1, limit + 1):
        sim.step()
        if condition():
            return tick
    raise RuntimeError(f"condition not reached within {limit} ticks")


def main(seed: int = 1, console: Console | None = None) -> dict[str, float]:
    console = console or Console()
    sim = Simulation(SimConfig(seed=seed, nodes=5, faults=(), clients=0))
    console.rule("[bold]simulated 5-node Raft cluster (pure cores, no Ray)")
    ticks_to_elect = _run_until(sim, lambda: sim.current_leader() is not None, 200)
    first = sim.current_leader()
    console.print(f"leader [bold green]{first}[/] elected after {ticks_to_elect} ticks "
                  f"(election timeout 10-19 ticks)")

    leader = sim.nodes[first].raft
    started = time.perf_counter()
    commands = [Command("demo", seq, ("put", f"key{seq % 50}", seq)) for seq in range(1, 5001)]
    for start in range(0, len(commands), 500):
        leader.propose_batch(commands[start:start + 500])
        sim.nodes[first].handle_ready()
        sim.step()
    _run_until(sim, lambda: all(n.raft.applied >= leader.log.last_index
                                for n in sim.nodes.values()), 200)
    elapsed = time.perf_counter() - started
    rate = len(commands) / elapsed
    console.print(f"committed and applied {len(commands):,} commands on all 5 replicas: "
                  f"{rate:,.0f} commands/s in the simulator")

    crash_tick = sim.now
    sim.nodes[first].alive = False
    console.print(f"[bold red]crashed {first}[/] at tick {crash_tick}")
    ticks_to_failover = _run_until(
        sim, lambda: sim.current_leader() not in (None, first), 400)
    second = sim.current_leader()
    console.print(f"new leader [bold green]{second}[/] after {ticks_to_failover} ticks "
                  f"(term {sim.nodes[second].raft.term})")
    value = sim.nodes[second].sm.get("key0")
    survivors = {n.sm.state_hash() for n in sim.live_nodes()}
    sim.nodes[first].restart()
    _run_until(sim, lambda: sim.nodes[first].raft.applied >= sim.nodes[second].raft.commit
               and sim.nodes[first].raft.lead == second, 400)
    rejoined = sim.nodes[first].sm.state_hash() == sim.nodes[second].sm.state_hash()

    table = Table(title="figures")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("ticks to first leader", str(ticks_to_elect))
    table.add_row("commands committed", f"{len(commands):,}")
    table.add_row("simulated commit rate (5 nodes)", f"{rate:,.0f}/s")
    table.add_row("ticks from leader crash to new leader", str(ticks_to_failover))
    table.add_row("committed data intact on survivors", "yes" if len(survivors) == 1
                  and value is not None else "NO")
    table.add_row("crashed node rejoined as follower with same state", "yes" if rejoined
                  else "NO")
    console.print(table)
    return {"ticks_to_elect": ticks_to_elect, "ticks_to_failover": ticks_to_failover,
            "commit_rate": rate, "rejoined": float(rejoined)}


if __name__ == "__main__":
    main()
