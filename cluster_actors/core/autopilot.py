"""Autopilot: keep at most ``max_voters`` voters, the other nodes learners, and
replace a voter that stays down (what Consul's autopilot does for servers).

The leader's coordinator feeds :func:`plan` what it observes each health round;
the plan is one Raft membership change (joint consensus), or nothing:

====================================================  ===========================
observation                                           change
====================================================  ===========================
a voter (not the leader) down for ``grace`` seconds   swap: the first caught-up,
and a caught-up, reachable learner exists             reachable learner becomes a
                                                      voter, the dead voter a
                                                      learner
more voters than ``max_voters``                       demote one: a down voter
                                                      first, else the highest id
                                                      (never the leader)
fewer voters than ``max_voters`` and a caught-up,     promote that learner
reachable learner
otherwise (or ``max_voters`` is None, or a joint      nothing
configuration is in progress)
====================================================  ===========================

One change per round keeps each step a small joint configuration whose old
and new majorities overlap. A dead voter with no spare learner stays a voter:
demoting it would shrink the voters, and the fault tolerance, without a
replacement. Pure: observations and durations come in, changes go out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

Change = tuple[str, str]
"""A ``change_membership`` step: ``("add_voter" | "add_learner", node)``."""


@dataclass(frozen=True)
class Observation:
    """What the leader sees: the configuration, how long each unreachable node
    has been down (seconds), and which learners have caught up."""

    leader: str
    voters: frozenset[str]
    learners: frozenset[str]
    down_for: Mapping[str, float] = field(default_factory=dict)
    caught_up: frozenset[str] = frozenset()
    joint: bool = False


def _spares(seen: Observation) -> list[str]:
    return sorted(n for n in seen.learners if n in seen.caught_up and n not in seen.down_for)


def plan(seen: Observation, max_voters: int | None, grace: float) -> list[Change]:
    """The membership change to make now (see the module doc's table), or []."""
    if max_voters is None or seen.joint:
        return []
    spares = _spares(seen)
    dead = sorted(v for v in seen.voters
                  if v != seen.leader and seen.down_for.get(v, 0.0) >= grace)
    if dead and spares:
        return [("add_voter", spares[0]), ("add_learner", dead[0])]
    if len(seen.voters) > max_voters:
        candidates = sorted(seen.voters - {seen.leader},
                            key=lambda v: (v not in seen.down_for, _reverse(v)))
        return [("add_learner", candidates[0])] if candidates else []
    if len(seen.voters) < max_voters and spares:
        return [("add_voter", spares[0])]
    return []


def _reverse(node: str) -> tuple[int, ...]:
    """Sort key putting the highest id first."""
    return (*(-ord(c) for c in node), 1)


def down_durations(down_since: Mapping[str, float], unreachable: Collection[str],
                   now: float) -> tuple[dict[str, float], dict[str, float]]:
    """``(down_since, down_for)`` updated for this round: a node unreachable now
    keeps its first-seen time (or gets ``now``), a reachable one is forgotten."""
    since = {n: down_since.get(n, now) for n in unreachable}
    return since, {n: now - t for n, t in since.items()}
