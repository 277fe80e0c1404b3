"""A supervisor's child spec: its restart delay, checked up front and carried
from the cluster's options to every component and per_node host."""

from __future__ import annotations

import pytest

from cluster_actors.errors import ValidationFailed
from cluster_actors.node import NodePlan, component_specs, node_host_spec
from cluster_actors.options import ClusterOptions
from cluster_actors.runtime.supervisor.protocol import ChildSpec


def _start() -> None:
    return None


@pytest.mark.parametrize("delay", [-0.1, 3601, float("nan"), True, "0.3"])
def test_a_restart_delay_out_of_0_to_3600_seconds_is_refused(delay: object) -> None:
    with pytest.raises(ValidationFailed) as caught:
        ChildSpec("c", _start, restart_delay=delay)  # type: ignore[arg-type]
    assert caught.value.errors[0][0] == "child_spec.restart_delay"


def test_every_component_and_host_waits_the_options_restart_delay() -> None:
    plan = NodePlan("c", "n1", ["n1"], ClusterOptions(restart_delay_ms=250))
    assert {spec.restart_delay for spec in component_specs(plan)} == {0.25}
    hosted = NodePlan("c", "n1", ["n1"], ClusterOptions(restart_delay_ms=0,
                                                         placement="per_node"))
    assert node_host_spec(hosted).restart_delay == 0.0
    assert ChildSpec("c", _start).restart_delay == 0.0  # a plain supervisor restarts at once
