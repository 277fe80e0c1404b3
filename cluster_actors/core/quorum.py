"""The one majority rule: how many of ``n`` voters decide.

Raft commits and elects with it, membership reports quorum with it, the
cluster config checks a static quorum against it, and the partition strategies
size their sides with it.
"""

from __future__ import annotations


def majority(voters: int) -> int:
    """Votes needed among ``voters`` voters: more than half, so that two
    disjoint groups can never both have it (``voters // 2 + 1``).

    An empty voter set has no majority: it needs one vote, which no one can
    give, so nothing is decided by nobody. (Raft's joint consensus, whose
    outgoing set is empty outside a configuration change, treats that empty
    set as "not joint" on its own, before it asks for a majority.)
    """
    return voters // 2 + 1


def is_majority(count: int, voters: int) -> bool:
    """True if ``count`` of ``voters`` voters are a majority."""
    return count >= majority(voters)
