"""The rules written once for the whole project: the majority and the percentile."""

from __future__ import annotations

import math

from cluster_actors.core.quorum import is_majority, majority
from cluster_actors.core.stats import percentile


def test_a_majority_is_more_than_half_and_an_empty_voter_set_has_none() -> None:
    assert [majority(n) for n in range(8)] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert not is_majority(0, 0)  # nobody decides nothing
    assert is_majority(2, 3) and not is_majority(2, 4) and is_majority(3, 4)


def test_two_disjoint_groups_never_both_hold_a_majority() -> None:
    for voters in range(1, 12):
        for first in range(voters + 1):
            assert not (is_majority(first, voters) and is_majority(voters - first, voters))


def test_a_percentile_is_the_nearest_ranked_sample() -> None:
    samples = [float(i) for i in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert (percentile(samples, 50), percentile(samples, 99)) == (50.0, 99.0)
    assert (percentile(samples, 0), percentile(samples, 100)) == (1.0, 100.0)
    assert percentile([3.0, 1.0], 50) == 1.0 and percentile([3.0, 1.0], 51) == 3.0
    assert percentile([1.0, math.inf], 99) == math.inf
    assert percentile([], 50) is None
