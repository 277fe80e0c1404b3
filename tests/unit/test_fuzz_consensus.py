"""Hypothesis calls every public remote method of the consensus actor (a
one-node cluster run in-process, see ``test_limits.Node``) with wrong types,
huge numbers, NaN, unpicklable and oversized values: each call either
answers or raises a ClusterError, a refused call leaves the replicated state
(the state machine's hash, the leases, the Raft configuration, the chaos
filter) as it was, and the node keeps leading and ticking."""

from __future__ import annotations

import inspect
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_actors.actors.consensus import ConsensusActor
from cluster_actors.errors import ClusterError, ValidationFailed
from tests.unit.test_fuzz_components import BAD, SKIPPED, arguments
from tests.unit.test_limits import Node, node  # noqa: F401  (the one-node fixture)

#: calls that reach another actor through Ray (the coordinator's vote), or
#: that would end the fuzzed node
NEEDS_RAY = frozenset({"vote"})
PLAIN = ConsensusActor.__ray_actor_class__  # type: ignore[attr-defined]


def remote_methods() -> dict[str, inspect.Signature]:
    return {name: inspect.signature(getattr(PLAIN, name)) for name in sorted(dir(PLAIN))
            if not name.startswith("_") and name not in SKIPPED | NEEDS_RAY
            and inspect.iscoroutinefunction(getattr(PLAIN, name))}


def _refuses(_state: Any) -> Any:
    raise ValidationFailed([("query", "refused by the caller's function")])


#: a function the node calls (``query``, ``prepare``) is the caller's code:
#: what it raises is the caller's; anything else in its place is refused
CALLBACK = BAD.filter(lambda value: not callable(value)) | st.just(_refuses)
METHODS = remote_methods()
CALLS = st.sampled_from(sorted(METHODS)).flatmap(
    lambda name: st.tuples(st.just(name), arguments(
        METHODS[name], {"query": CALLBACK, "prepare": CALLBACK})))


def _state(n: Node) -> Any:
    core = n.actor.core
    raft = core.raft
    return (n.state(), sorted(raft.conf.voters), sorted(raft.conf.learners),
            core.transport.faults.describe(), raft.timeout_scale, core.sm.config.version)


@settings(max_examples=600, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(call=CALLS)
def test_every_consensus_remote_call_answers_or_raises_a_cluster_error(
        node: Node, call: tuple[str, tuple[Any, ...]]) -> None:  # noqa: F811
    method, args = call
    node.settle()  # leads (a one-node cluster that stepped down leads again), no leases
    before = _state(node)
    try:
        node.run(getattr(node.actor, method)(*args))
    except ClusterError:
        assert _state(node) == before, f"{method}{args!r:.200} changed the state"
    except Exception as error:
        raise AssertionError(f"consensus.{method}{args!r:.200} raised "
                             f"{type(error).__name__}: {error}"[:600]) from error
    assert node.ticking() and node.actor.core.failed is None


def test_the_fuzzed_consensus_methods_are_every_public_remote_method() -> None:
    public = {name for name in dir(PLAIN) if not name.startswith("_")
              and inspect.iscoroutinefunction(getattr(PLAIN, name))}
    assert set(METHODS) == public - SKIPPED - NEEDS_RAY
    assert {"receive", "submit", "submit_config", "change_membership", "read_range",
            "query_state", "set_faults", "lease_watch"} <= set(METHODS)

