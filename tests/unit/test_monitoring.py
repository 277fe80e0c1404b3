"""The monitor's pure core: ring-buffer history, event log, alert rules with
hysteresis (each built-in rule), health summaries and the MonitorCore API."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.monitoring import (
    AlertEngine,
    AlertRule,
    EventLog,
    MetricHistory,
    MonitorCore,
    NodeObservation,
    Severity,
    builtin_rules,
    health_summary,
    series_label,
    worst_health,
)
from cluster_actors.errors import ValidationFailed


def obs(**fields: object) -> NodeObservation:
    fields.setdefault("node_id", "n1")
    return NodeObservation(**fields)  # type: ignore[arg-type]


def healthy(**fields: object) -> NodeObservation:
    base: dict[str, object] = {"leader": "n1", "term": 3, "has_quorum": True,
                               "lifecycle_state": "stable", "phi": {"n2": 0.3, "n3": 0.5},
                               "supervisor_restarts_in_window": 0, "supervisor_intensity": 3,
                               "pending_conflicts": 0}
    base.update(fields)
    return obs(**base)


def kinds(transitions: list) -> list[tuple[str, str]]:
    return [(tr.kind, tr.alert_id) for tr in transitions]


# ------------------------------------------------------------------ history


def test_history_wraps_around_keeping_the_newest_in_order() -> None:
    history = MetricHistory(capacity=4)
    for i in range(10):
        history.record("x", i * 10.0, t=float(i))
    assert history.history("x") == [(6.0, 60.0), (7.0, 70.0), (8.0, 80.0), (9.0, 90.0)]
    assert history.history("x", limit=2) == [(8.0, 80.0), (9.0, 90.0)]
    assert history.history("x", limit=0) == []
    assert history.history("x", limit=100) == history.history("x")
    assert history.latest("x") == (9.0, 90.0)
    assert history.array("x").shape == (4, 2)


@settings(max_examples=200)
@given(capacity=st.integers(1, 9),
       values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=40),
       limit=st.none() | st.integers(0, 50))
def test_history_matches_a_naive_list(capacity: int, values: list[float],
                                      limit: int | None) -> None:
    history = MetricHistory(capacity)
    for t, v in enumerate(values):
        history.record("m", v, float(t))
    expected = [(float(t), v) for t, v in enumerate(values)][-capacity:]
    if limit is not None:
        expected = expected[len(expected) - limit:] if limit else []
    assert history.history("m", limit) == expected


def test_series_are_separated_by_tags_and_tag_order_does_not_matter() -> None:
    history = MetricHistory(capacity=8)
    history.record("phi", 1.0, 0.0, {"node": "n1", "peer": "n2"})
    history.record("phi", 2.0, 0.0, {"peer": "n3", "node": "n1"})
    history.record("phi", 3.0, 1.0, {"peer": "n2", "node": "n1"})
    assert history.history("phi", tags={"node": "n1", "peer": "n2"}) == [(0.0, 1.0), (1.0, 3.0)]
    assert history.history("phi") == []  # untagged series is a different one
    assert history.series("phi") == [{"node": "n1", "peer": "n2"}, {"node": "n1", "peer": "n3"}]
    assert history.names() == ["phi"]
    assert series_label("phi", {"peer": "n2", "node": "n1"}) == "phi{node=n1,peer=n2}"


def test_summary_statistics_cover_only_the_buffer() -> None:
    history = MetricHistory(capacity=100)
    history.record("lat", 1e9, 0.0)  # evicted below
    for i in range(100):
        history.record("lat", float(i + 1), float(i + 1))
    summary = history.summary("lat")
    assert summary is not None
    assert summary["count"] == 100
    assert (summary["min"], summary["max"], summary["mean"]) == (1.0, 100.0, 50.5)
    assert (summary["p50"], summary["p99"]) == (50.0, 99.0)  # nearest rank: a sample
    assert history.summary("missing") is None


def test_infinite_values_are_kept_nan_and_garbage_rejected() -> None:
    history = MetricHistory(capacity=4)
    history.record("phi", math.inf, 0.0)
    assert history.summary("phi") == {"count": 1, "min": math.inf, "max": math.inf,
                                      "mean": math.inf, "p50": math.inf, "p99": math.inf}
    for bad in (math.nan, "high", None):
        with pytest.raises(ValidationFailed):
            history.record("phi", bad, 1.0)  # type: ignore[arg-type]
    assert history.history("phi") == [(0.0, math.inf)]
    with pytest.raises(ValidationFailed):
        MetricHistory(capacity=0)
    with pytest.raises(ValidationFailed):
        history.history("phi", limit=-1)


def test_series_beyond_the_cap_are_dropped_and_counted() -> None:
    history = MetricHistory(capacity=2, max_series=2)
    for peer in ("a", "b", "c", "d"):
        history.record("phi", 1.0, 0.0, {"peer": peer})
    history.record("phi", 2.0, 1.0, {"peer": "a"})  # existing series still records
    assert len(history.series("phi")) == 2
    assert history.dropped == 2
    assert history.latest("phi", {"peer": "a"}) == (1.0, 2.0)


# ------------------------------------------------------------------- events


def test_event_log_is_bounded_and_since_returns_newer_events() -> None:
    log = EventLog(capacity=3)
    for i in range(5):
        log.append("tick", float(i), "n1", {"i": i})
    assert len(log) == 3
    assert [e["seq"] for e in log.since(0)] == [3, 4, 5]
    assert [e["details"]["i"] for e in log.since(3)] == [3, 4]
    assert log.since(5) == []
    assert [e["seq"] for e in log.since(0, limit=1)] == [3]
    log.since(0)[0]["details"]["i"] = 99  # callers get copies
    assert log.since(2)[0]["details"]["i"] == 2


# --------------------------------------------------------------- observation


def test_observation_derives_has_leader_and_health_scores() -> None:
    o = obs(leader="n2", phi={"n2": 4.0, "n3": 0.0})
    assert o.has_leader is True
    assert o.health_scores == {"n2": 0.5, "n3": 1.0}
    assert obs().has_leader is None  # unknown, not "no leader"


def test_observation_from_dict_rejects_unknown_and_bad_fields() -> None:
    assert NodeObservation.coerce({"node_id": "n1", "term": 2}).term == 2
    with pytest.raises(ValidationFailed) as err:
        NodeObservation.coerce({"node_id": "n1", "trem": 2})
    assert err.value.errors == [("trem", "unknown observation field")]
    with pytest.raises(ValidationFailed) as err:
        NodeObservation.coerce({"node_id": "", "term": -1, "phi": {"n2": "x"}})
    assert {p for p, _ in err.value.errors} == {"node_id", "term", "phi"}
    round_trip = NodeObservation.coerce(healthy(commit_latencies=[0.001]).to_dict())
    assert round_trip == healthy(commit_latencies=(0.001,))


# -------------------------------------------------------------------- alerts


def test_no_leader_fires_only_after_the_grace_period_and_clears_with_a_leader() -> None:
    engine = AlertEngine(builtin_rules(no_leader_after=2.0))
    assert engine.evaluate(healthy(leader=None, has_leader=False), 10.0) == []
    assert engine.evaluate(healthy(leader=None, has_leader=False), 11.9) == []
    fired = engine.evaluate(healthy(leader=None, has_leader=False), 12.0)
    assert kinds(fired) == [("fired", "no_leader:n1")]
    assert fired[0].severity is Severity.CRITICAL and "no leader" in fired[0].message
    assert engine.evaluate(healthy(leader=None, has_leader=False), 20.0) == []  # no repeat
    assert kinds(engine.evaluate(healthy(), 21.0)) == [("resolved", "no_leader:n1")]
    assert engine.active() == []


def test_a_short_leaderless_gap_does_not_fire_and_resets_the_timer() -> None:
    engine = AlertEngine(builtin_rules(no_leader_after=2.0))
    engine.evaluate(healthy(leader=None, has_leader=False), 0.0)
    engine.evaluate(healthy(), 1.5)  # a new leader within the grace period
    assert engine.evaluate(healthy(leader=None, has_leader=False), 2.5) == []
    assert engine.evaluate(healthy(leader=None, has_leader=False), 4.0) == []
    assert kinds(engine.evaluate(healthy(leader=None, has_leader=False), 4.5)) == [
        ("fired", "no_leader:n1")]


def test_unknown_fields_leave_alert_state_alone() -> None:
    engine = AlertEngine()
    engine.evaluate(healthy(has_quorum=False), 0.0)
    assert [a["rule"] for a in engine.active()] == ["quorum_lost"]
    assert engine.evaluate(obs(), 1.0) == []  # an observation that knows nothing
    assert [a["rule"] for a in engine.active()] == ["quorum_lost"]


def test_quorum_lost_fires_at_once_and_resolves_when_regained() -> None:
    engine = AlertEngine()
    assert kinds(engine.evaluate(healthy(has_quorum=False), 0.0)) == [
        ("fired", "quorum_lost:n1")]
    assert engine.evaluate(healthy(has_quorum=False), 1.0) == []
    assert kinds(engine.evaluate(healthy(), 2.0)) == [("resolved", "quorum_lost:n1")]


def test_phi_oscillating_around_the_threshold_fires_once_and_clears_once() -> None:
    engine = AlertEngine(builtin_rules(phi_threshold=8.0, phi_clear_ratio=0.5))
    trace = [7.9, 8.1, 7.9, 8.3, 6.0, 9.0, 4.1, 4.0, 3.9, 8.0, 3.0]
    out = []
    for t, phi in enumerate(trace):
        out += engine.evaluate(healthy(phi={"n2": phi, "n3": 0.1}), float(t))
    assert [(tr.kind, tr.alert_id, tr.t) for tr in out] == [
        ("fired", "phi_high:n1:n2", 1.0), ("resolved", "phi_high:n1:n2", 8.0),
        ("fired", "phi_high:n1:n2", 9.0), ("resolved", "phi_high:n1:n2", 10.0)]
    assert out[0].subject == "n2" and out[0].value == 8.1
    assert "n2" in out[0].message


def test_phi_alerts_are_per_peer_and_a_removed_peer_resolves() -> None:
    engine = AlertEngine()
    fired = engine.evaluate(healthy(phi={"n2": 9.0, "n3": math.inf}), 0.0)
    assert kinds(fired) == [("fired", "phi_high:n1:n2"), ("fired", "phi_high:n1:n3")]
    resolved = engine.evaluate(healthy(phi={"n2": 9.5}), 1.0)  # n3 left the membership
    assert kinds(resolved) == [("resolved", "phi_high:n1:n3")]
    assert "no longer observed" in resolved[0].message
    assert [a["subject"] for a in engine.active()] == ["n2"]


def test_supervisor_intensity_fires_near_the_limit_with_hysteresis() -> None:
    engine = AlertEngine()

    def at(restarts: int, t: float) -> list:
        return engine.evaluate(healthy(supervisor_restarts_in_window=restarts,
                                       supervisor_intensity=5), t)

    assert at(3, 0.0) == []  # 60 %
    assert kinds(at(4, 1.0)) == [("fired", "supervisor_intensity:n1")]  # 80 %
    assert at(3, 2.0) == []  # 60 %: above the 50 % clear level
    assert kinds(at(2, 3.0)) == [("resolved", "supervisor_intensity:n1")]  # 40 %
    zero = AlertEngine()
    assert kinds(zero.evaluate(healthy(supervisor_restarts_in_window=1,
                                       supervisor_intensity=0), 0.0)) == [
        ("fired", "supervisor_intensity:n1")]


def test_sync_conflicts_fire_after_being_pending_for_a_while() -> None:
    engine = AlertEngine(builtin_rules(conflicts_after=5.0))
    assert engine.evaluate(healthy(pending_conflicts=2), 0.0) == []
    assert engine.evaluate(healthy(pending_conflicts=1), 4.0) == []
    fired = engine.evaluate(healthy(pending_conflicts=3), 5.0)
    assert kinds(fired) == [("fired", "sync_conflicts:n1")] and fired[0].value == 3.0
    assert kinds(engine.evaluate(healthy(pending_conflicts=0), 6.0)) == [
        ("resolved", "sync_conflicts:n1")]


def test_config_rollback_fires_on_the_event_and_clears_after_the_hold() -> None:
    engine = AlertEngine(builtin_rules(rollback_hold=30.0))
    assert kinds(engine.notify("config_rollback", 100.0, "n1")) == [
        ("fired", "config_rollback:n1")]
    assert engine.notify("config_rollback", 110.0, "n1") == []  # re-arms, no repeat
    assert engine.notify("leader_changed", 120.0, "n1") == []
    assert engine.expire(139.9) == []
    assert kinds(engine.evaluate(healthy(), 140.0)) == [("resolved", "config_rollback:n1")]
    assert engine.active() == []


def test_rules_are_validated() -> None:
    with pytest.raises(ValidationFailed):
        AlertRule("r", Severity.WARNING, "m", signal=lambda o: None, fire_at=1, clear_below=2)
    with pytest.raises(ValidationFailed):
        AlertRule("r", Severity.WARNING, "m")  # neither signal nor event
    with pytest.raises(ValidationFailed):
        AlertRule("r", Severity.WARNING, "m", trigger_event="x")  # no hold time
    with pytest.raises(ValidationFailed):
        AlertRule("r", "loud", "m", signal=lambda o: None)  # type: ignore[arg-type]
    rule = AlertRule("r", "info", "m", signal=lambda o: None)  # type: ignore[arg-type]
    assert rule.severity is Severity.INFO and rule.clear_below == rule.fire_at
    with pytest.raises(ValidationFailed):
        AlertEngine([rule, rule])


def test_a_custom_rule_on_term_works_like_the_builtins() -> None:
    rule = AlertRule("term_churn", Severity.INFO, "{node} term {value:g}",
                     signal=lambda o: None if o.term is None else {"": float(o.term)},
                     fire_at=100, clear_below=10)
    engine = AlertEngine([rule])
    assert engine.evaluate(obs(term=99), 0.0) == []
    assert [tr.message for tr in engine.evaluate(obs(term=100), 1.0)] == ["n1 term 100"]


# -------------------------------------------------------------------- health


def test_health_summary_levels_and_reasons() -> None:
    assert health_summary(healthy())[0] == "healthy"
    health, details = health_summary(healthy(phi={"n2": 9.0, "n3": 0.1}))
    assert health == "degraded"
    assert details["reasons"] == ["peers above the phi threshold: n2"]
    assert details["peers"]["n2"]["band"] == "failed"
    assert health_summary(healthy(leader=None, has_leader=False))[0] == "degraded"
    assert health_summary(healthy(pending_conflicts=1))[0] == "degraded"
    assert health_summary(healthy(lifecycle_state="electing"))[0] == "degraded"
    assert health_summary(healthy(supervisor_restarts_in_window=3))[0] == "degraded"
    assert health_summary(healthy(supervisor_restarts_in_window=4))[0] == "critical"
    assert health_summary(healthy(has_quorum=False))[0] == "critical"
    assert health_summary(healthy(lifecycle_state="partitioning"))[0] == "critical"
    assert health_summary(healthy(), [{"alert_id": "x", "severity": "critical"}])[0] \
        == "critical"
    assert health_summary(healthy(), [{"alert_id": "x", "severity": "warning"}])[0] \
        == "degraded"
    assert worst_health(["healthy", "critical", "degraded"]) == "critical"
    assert worst_health([]) == "healthy"


# ------------------------------------------------------------- MonitorCore


def test_observe_records_history_events_and_alerts() -> None:
    core = MonitorCore("n1")
    assert core.observe(healthy(term=1, commit_latencies=(0.002, 0.004)), 0.0) == []
    core.observe(healthy(term=2, leader="n2", phi={"n2": 0.2, "n3": 9.0}), 1.0)
    assert core.get_history("term") == [(0.0, 1.0), (1.0, 2.0)]
    assert core.get_history("term", limit=1) == [(1.0, 2.0)]
    assert core.get_history("phi", tags={"peer": "n3"}) == [(0.0, 0.5), (1.0, 9.0)]
    assert core.get_history("commit_latency_seconds") == [(0.0, 0.002), (0.0, 0.004)]
    assert core.get_history("nothing") == []
    with pytest.raises(ValidationFailed, match="phi"):
        core.get_history("phi")  # two peers: ambiguous
    types = [e["type"] for e in core.events_since(0)]
    assert types == ["leader_changed", "alert_fired"]
    leader_event = core.events_since(0)[0]
    assert leader_event["details"] == {"from": "n1", "to": "n2", "term": 2}
    assert core.events_since(0)[1]["details"]["alert_id"] == "phi_high:n1:n3"


def test_record_event_and_metric_and_rollback_counter() -> None:
    core = MonitorCore("n1")
    core.record_metric("queue_depth", 3, {"queue": "a"}, t=1.0)
    assert core.get_history("queue_depth") == [(1.0, 3.0)]
    assert core.record_event("chaos_fault", {"kind": "kill"}, t=2.0) == []
    assert core.events_since(0)[0] == {"seq": 1, "t": 2.0, "type": "chaos_fault",
                                       "node": "n1", "details": {"kind": "kill"}}
    core.observe(healthy(config_rollbacks=0, config_version=4), 3.0)
    fired = core.observe(healthy(config_rollbacks=1, config_version=3), 4.0)
    assert kinds(fired) == [("fired", "config_rollback:n1")]
    assert [e["type"] for e in core.events_since(1)] == ["config_rollback", "alert_fired"]
    assert kinds(core.tick(4.0 + 30.0)) == [("resolved", "config_rollback:n1")]
    assert core.events_since(0)[-1]["type"] == "alert_resolved"


def test_get_health_metrics_and_node_metrics() -> None:
    core = MonitorCore("n1")
    assert core.get_health()[0] == "degraded"  # nothing observed yet
    assert core.get_node_metrics("n1") is None  # not_found
    core.observe(healthy(), 0.0)
    health, details = core.get_health()
    assert (health, details["reasons"]) == ("healthy", [])
    core.observe(healthy(has_quorum=False), 1.0)
    health, details = core.get_health()
    assert health == "critical"
    assert "quorum lost" in details["reasons"] and "alert quorum_lost:n1" in details["reasons"]
    metrics = core.get_metrics()
    assert metrics["series"]["term{node=n1}"]["latest"] == 3.0
    assert metrics["series"]["has_quorum{node=n1}"]["count"] == 2
    assert metrics["alerts_active"] == 1 and metrics["nodes"] == ["n1"]
    node = core.get_node_metrics("n1")
    assert node is not None
    assert node["health"] == "critical" and node["observed_at"] == 1.0
    assert [a["rule"] for a in node["alerts"]] == ["quorum_lost"]
    assert node["observation"]["has_quorum"] is False


def test_cluster_overview_names_the_leader_and_spots_disagreement() -> None:
    core = MonitorCore()
    views = [healthy(node_id=n, leader="n1", term=5) for n in ("n1", "n2", "n3")]
    for o in views:
        core.observe(o, 0.0)
    overview = core.get_cluster_overview()
    assert overview["leader"] == "n1" and overview["term"] == 5
    assert overview["nodes"] == ["n1", "n2", "n3"] and overview["has_quorum"] is True
    assert overview["health"] == "healthy" and not overview["leaders_disagree"]
    split = [*views[:2], healthy(node_id="n3", leader="n3", term=5, has_quorum=False)]
    overview = core.get_cluster_overview(split)
    assert overview["leader"] is None and overview["leaders_disagree"]
    assert overview["health"] == "critical"
    stale = [views[0], healthy(node_id="n2", leader="n2", term=6)]  # n1 is behind
    assert core.get_cluster_overview(stale)["leader"] == "n2"
    core.observe(healthy(node_id="n2", has_quorum=False), 1.0)
    health, details = core.get_health()  # no own node: the worst of all
    assert health == "critical" and any(r.startswith("n2: ") for r in details["reasons"])
