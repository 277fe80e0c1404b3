"""The benchmark runner's pure parts (no Ray): figures, verdicts, the table, the CLI's
error path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from cluster_actors.cli import bench_runner, main
from cluster_actors.errors import ClusterError

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _load_runner():
    spec = importlib.util.spec_from_file_location("bench_run", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


run = _load_runner()


def test_figure_is_the_median_with_min_and_max():
    figure = run.Figure.of([30.0, 10.0, 20.0, 1000.0])
    assert (figure.median, figure.min, figure.max, figure.n) == (25.0, 10.0, 1000.0, 4)
    assert run.Figure.of([7.0]).median == 7.0
    with pytest.raises(ValueError):
        run.Figure.of([])


def test_throughput_is_met_at_or_above_its_target():
    below = run.Row("b", "rate", "/s", True, run.Figure.of([50.0, 40.0, 60.0]), target=100)
    above = run.Row("b", "rate", "/s", True, run.Figure.of([150.0]), target=100)
    assert below.target_ratio() == pytest.approx(0.5)
    assert below.met() is False
    assert above.met() is True


def test_latency_is_met_at_or_below_its_target():
    fast = run.Row("b", "p50", "ms", False, run.Figure.of([4.0, 5.0, 3.0]), target=5)
    slow = run.Row("b", "p50", "ms", False, run.Figure.of([6.0]), target=5)
    assert fast.target_ratio() == pytest.approx(0.8)
    assert fast.met() is True
    assert slow.met() is False


def test_no_verdict_without_a_target_or_a_figure():
    assert run.Row("b", "m", "ms", False, run.Figure.of([1.0])).met() is None
    assert run.Row("b", "m", "ms", False, None, target=5).met() is None


def test_peer_ratio_follows_the_direction():
    ours_latency = run.Row("kv", "p50", "ms", False, run.Figure.of([5.0]), peer_name="P",
                           peer=run.Figure.single(100.0))
    ours_rate = run.Row("kv", "rate", "/s", True, run.Figure.of([5.0]), peer_name="P",
                        peer=run.Figure.single(10.0))
    assert ours_latency.peer_ratio() == pytest.approx(0.05)
    assert ours_latency.better_than_peer() is True
    assert ours_rate.peer_ratio() == pytest.approx(0.5)
    assert ours_rate.better_than_peer() is False


def test_markdown_has_one_line_per_row_with_verdicts_and_peers():
    rows = [
        run.Row("elections", "per second", "/s", True, run.Figure.of([40.0, 50.0, 45.0]),
                target=100),
        run.Row("kv", "commit p50", "ms", False, run.Figure.of([5.0, 6.0]), target=10,
                peer_name="PySyncObj", peer=run.Figure.single(50.0)),
        run.Row("failover", "to new leader p50", "ms", False, run.Figure.of([170.0]),
                peer_name="PySyncObj", peer_note="not installed"),
    ]
    text = run.render_markdown(rows, {"command": "run.py --quick", "repeats": 3},
                               errors={"sync": "RuntimeError: boom"})
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + len(rows)  # the header and one line per row
    assert "45.0 /s (40.0–50.0)" in table[1] and "0.45 not met" in table[1]
    assert "5.50 ms (5.00–6.00)" in table[2] and "0.55 met" in table[2]
    assert "PySyncObj: 50.0 ms" in table[2] and "0.11 better" in table[2]
    assert "PySyncObj: not installed" in table[3]
    assert "**sync**: RuntimeError: boom" in text


def test_peer_figure_reads_both_summary_shapes():
    latency = {"p50": 6.0, "p99": 9.0, "min": 1.0, "max": 12.0, "n": 200}
    rate = {"median": 17_000.0, "min": 16_000.0, "max": 18_000.0, "n": 3}
    assert run.peer_figure(latency, "p99") == run.Figure.single(9.0)
    assert run.peer_figure(rate, "median") == run.Figure(17_000.0, 16_000.0, 18_000.0, 3)
    assert run.peer_figure(None, "p50") is None


def test_only_keeps_the_run_order_and_rejects_unknown_names():
    assert run.parse_only("merkle,kv") == ["kv", "merkle"]
    assert run.parse_only(None) == list(run.STEPS)
    with pytest.raises(ValueError, match="valid: kv"):
        run.parse_only("kv,nope")


def test_bench_command_needs_a_source_checkout(tmp_path):
    assert bench_runner() == RUNNER
    with pytest.raises(ClusterError, match="source checkout"):
        bench_runner(tmp_path / "cluster_actors")


def test_bench_command_help_lists_its_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "--only" in out


def test_each_step_is_written_as_it_finishes_and_a_step_past_its_limit_fails_alone(
        tmp_path, monkeypatch):
    seen_on_disk = []

    def quick_step(ctx):
        return [run.Row("quick", "rate", "/s", True, run.Figure.single(1.0))]

    def slow_step(ctx):
        seen_on_disk.append((tmp_path / "latest.md").read_text())
        import time
        time.sleep(30)  # stopped by the limit long before
        return []

    monkeypatch.setattr(run, "STEPS", {"quick": quick_step, "slow": slow_step,
                                       "after": quick_step})
    rows, errors = run.run(["quick", "slow", "after"], quick=True, repeats=1,
                           command="test", output=tmp_path, step_limit=0.5)
    # the first step's figure was on disk while the second ran, and the
    # second's "not run yet" note named what was left
    assert "| quick | rate |" in seen_on_disk[0]
    assert "## Not run yet" in seen_on_disk[0] and "slow, after" in seen_on_disk[0]
    assert list(errors) == ["slow"] and "limit" in errors["slow"]
    assert len(rows) == 2  # the step after the slow one still ran
    final = (tmp_path / "latest.md").read_text()
    assert "## Not run yet" not in final and "**slow**" in final
