"""Every option that is not a number is bounded too (node labels, the
strategies' options, names and paths), and the heartbeat component's runtime
``configure`` has the same upper bounds as the options: a value out of range
is a ValidationFailed naming its path, before anything starts or changes."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from cluster_actors.actors.heartbeat import HeartbeatActor
from cluster_actors.core.phi import DetectorConfig
from cluster_actors.errors import ValidationFailed
from cluster_actors.options import ClusterOptions
from tests.unit.shells import shell

DEEP: Any = "leaf"
for _ in range(10_000):
    DEEP = {"d": DEEP}


@pytest.mark.parametrize(("options", "path", "fragment"), [
    ({"node_labels": {"n1": {"blob": "x" * 100_000}}}, "node_labels", "bytes"),
    ({"node_labels": {"n1": {"deep": DEEP}}}, "node_labels", "levels deep"),
    ({"node_labels": {"n1": {"tags": {1, 2}}}}, "node_labels", "not a JSON value"),
    ({"node_labels": {"n1": {"weight": math.nan}}}, "node_labels", "finite"),
    ({"node_labels": {f"n{i}": {} for i in range(1001)}}, "node_labels", "at most 1000"),
    ({"node_labels": {"x" * 300: {}}}, "node_labels", "node id"),
    ({"failover_options": {"weights": {"n1": math.inf}}}, "failover_options", "finite"),
    ({"failover_options": {"weights": DEEP}}, "failover_options", "levels deep"),
    ({"partition_options": {"stable_after": "x" * 100_000}}, "partition_options", "bytes"),
    ({"partition_options": {"f": print}}, "partition_options", "not a JSON value"),
    ({"sync_strategy": "x" * 1000}, "sync_strategy", "256"),
    ({"failover_strategy": ""}, "failover_strategy", "at least 1"),
    ({"data_dir": "/" + "d" * 5000}, "data_dir", "4096"),
    ({"phi_threshold": 500}, "phi_threshold", "300"),
])
def test_an_unbounded_option_value_is_refused_with_its_path(options: dict[str, Any], path: str,
                                                            fragment: str) -> None:
    with pytest.raises(ValidationFailed) as error:
        ClusterOptions.parse(options)
    [(got_path, message)] = error.value.errors
    assert got_path == path and fragment in message


def test_every_phi_threshold_the_options_accept_the_detector_accepts_too() -> None:
    top = ClusterOptions.model_fields["phi_threshold"].metadata
    highest = next(bound.le for bound in top if hasattr(bound, "le"))
    assert DetectorConfig(threshold=highest).threshold == highest


def test_bounded_labels_and_strategy_options_are_kept_as_json() -> None:
    options = ClusterOptions.parse(
        node_labels={"n1": {"region": "eu", "zones": ("a", "b")}},
        failover_strategy="weighted", failover_options={"weights": {"n1": 2.0}},
        partition_options={"stable_after": 1.5}, partition_strategy="auto_merge")
    assert options.node_labels == {"n1": {"region": "eu", "zones": ["a", "b"]}}
    assert options.failover_options == {"weights": {"n1": 2.0}}


@pytest.mark.parametrize(("parameter", "value"), [
    ("heartbeat_interval", 1e300), ("heartbeat_interval", 60_001),
    ("acceptable_pause", 10**30), ("min_std", 1e12), ("max_sample_size", 10**12),
    ("monitors_per_node", 10**9), ("threshold", 301), ("min_std", math.nan),
    ("max_sample_size", 2.5),
])
def test_heartbeat_configure_refuses_values_beyond_the_options_bounds(parameter: str,
                                                                      value: Any) -> None:
    async def test() -> None:
        async with shell(HeartbeatActor) as actor:
            before = actor._settings()
            with pytest.raises(ValidationFailed) as error:
                await actor.configure(parameter, value)
            assert error.value.errors[0][0] == parameter
            assert actor._settings() == before
    asyncio.run(test())
