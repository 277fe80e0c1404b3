"""The heartbeat scaling benchmark's simulator: heartbeats per round are exactly
N·min(k, N - 1), every node has min(k, N - 1) monitors and as many detectors,
a crashed node is detected by all its monitors within a bounded number of
rounds, and the whole run is a function of its seed.

``benchmarks`` is not a package, so the module is loaded from its file path.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cluster_actors.core.phi import DetectorConfig

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "heartbeat_scaling.py"


def _load_benchmark() -> ModuleType:
    name = "heartbeat_scaling_benchmark"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


hs = _load_benchmark()


@pytest.mark.parametrize(("nodes", "k"), [(5, 3), (12, 3), (12, 9), (30, 9), (40, 1)])
def test_messages_per_round_are_n_times_k_with_bounded_monitors(nodes: int, k: int) -> None:
    run = hs.simulate(nodes, k, rounds=6, seed=3, kill_round=3)
    assert k < nodes - 1
    assert run.messages[:3] == [nodes * k] * 3
    assert run.messages[3:] == [(nodes - 1) * k] * 3  # the crashed node stops sending
    assert run.summary()["per_n_k"] == 1.0


@pytest.mark.parametrize(("nodes", "k"), [(5, None), (5, 4), (5, 9), (10, 9), (16, None)])
def test_all_to_all_sends_n_times_n_minus_one(nodes: int, k: int | None) -> None:
    run = hs.simulate(nodes, k, rounds=3, seed=1)
    assert run.messages == [nodes * (nodes - 1)] * 3
    assert run.effective_k == nodes - 1
    assert run.summary()["per_n_squared"] == pytest.approx((nodes - 1) / nodes)


@pytest.mark.parametrize(("nodes", "k"), [(6, 3), (25, 9), (25, None), (7, 9)])
def test_every_node_has_min_k_monitors_and_as_many_detectors(nodes: int, k: int | None) -> None:
    run = hs.simulate(nodes, k, rounds=3, seed=2)
    expected = nodes - 1 if k is None else min(k, nodes - 1)
    assert set(run.monitors.values()) == {expected}
    # detectors are created by delivered heartbeats: routing reached each monitor
    assert set(run.detectors.values()) == {expected}
    assert sum(run.detectors.values()) == run.messages[0]


def test_crashed_node_is_detected_by_all_its_monitors_within_bounded_rounds() -> None:
    config = DetectorConfig(first_heartbeat_estimate=hs.HEARTBEAT_INTERVAL)
    run = hs.simulate(40, 9, rounds=18, seed=5, kill_round=8, config=config)
    assert run.killed is not None
    monitors_of_killed = list(run.detection)
    assert len(monitors_of_killed) == 9
    assert all(rounds is not None for rounds in run.detection.values())
    # Not before the acceptable pause has passed, and within a few intervals after it.
    pause_rounds = math.ceil(config.acceptable_heartbeat_pause / hs.HEARTBEAT_INTERVAL)
    assert pause_rounds <= min(run.detection.values())
    assert run.detection_rounds is not None and run.detection_rounds <= pause_rounds + 5
    assert run.false_suspicions == 0


def test_a_crash_too_late_in_the_run_is_reported_as_not_detected() -> None:
    run = hs.simulate(10, 3, rounds=5, seed=1, kill_round=4)
    assert run.detection_rounds is None
    assert run.summary()["detection_rounds"] is None


@pytest.mark.parametrize("k", [1, 3, 9])
def test_doubling_n_doubles_messages_at_fixed_k(k: int) -> None:
    counts = [hs.simulate(n, k, rounds=2, seed=1).messages[0] for n in (20, 40, 80)]
    assert counts[1] == 2 * counts[0] and counts[2] == 2 * counts[1]


def test_all_to_all_more_than_doubles_when_n_doubles() -> None:
    counts = [hs.simulate(n, None, rounds=2, seed=1).messages[0] for n in (20, 40)]
    assert counts == [20 * 19, 40 * 39]
    assert counts[1] > 4 * counts[0]


def test_runs_are_functions_of_the_seed() -> None:
    first = hs.simulate(30, 3, rounds=12, seed=7, kill_round=5)
    again = hs.simulate(30, 3, rounds=12, seed=7, kill_round=5)
    assert (first.killed, first.detection, first.messages) == (
        again.killed, again.detection, again.messages)


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        hs.simulate(1, 3)
    with pytest.raises(ValueError):
        hs.simulate(10, 0)
    with pytest.raises(ValueError):
        hs.simulate(10, 3, rounds=5, kill_round=5)
    with pytest.raises(ValueError):
        hs.measure(max_nodes=10, rounds=1)


def test_measure_is_json_able_and_the_report_has_one_row_per_run(tmp_path: Path) -> None:
    result = hs.measure(max_nodes=10, rounds=10, seed=1)
    assert json.loads(json.dumps(result)) == result
    assert [(r["nodes"], r["k"]) for r in result["rows"]] == [
        (n, k) for n in (5, 10) for k in (3, 9, "all")]
    for row in result["rows"]:
        assert row["messages_per_round"] == row["nodes"] * row["monitors_per_node"]
        assert row["messages_constant_before_kill"]
        assert row["detection_rounds"] is not None
    text = hs.write_results(result, tmp_path)
    table = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table) == len(result["rows"])
    assert json.loads((tmp_path / "heartbeat_scaling.json").read_text()) == result
    assert (tmp_path / "heartbeat_scaling.md").read_text() == text
