"""Cluster configuration: validation rules and paths, the versioned store, JSON round trip."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_actors.core.config import (
    BUILTIN_STRATEGIES,
    FIELDS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_MS,
    MAX_SYNC_MERKLE_DEPTH,
    ChangeKind,
    ClusterConfig,
    ConfigNotFound,
    ConfigStore,
    ConfigVersion,
    check_config,
    export_config,
    import_config,
    parse_config,
    validate_config,
)
from cluster_actors.errors import ClusterError, ValidationFailed

THREE = {"members": ["n1", "n2", "n3"]}


def errors_of(config, **kwargs) -> dict[str, str]:
    return dict(check_config(config, **kwargs)[1])


# --- the model and validation ------------------------------------------------

def test_defaults_are_valid_and_laptop_friendly():
    config, warnings = parse_config(THREE)
    assert (config.version, config.quorum, config.quorum_size) == (1, None, 2)
    assert (config.heartbeat_interval, config.election_timeout) == (1000, 200)
    assert (config.sync_strategy, config.partition_strategy, config.failover_strategy) == (
        "anti_entropy", "majority_side", "automatic")
    assert warnings == []
    assert any("members is empty" in w for w in validate_config({}))


def test_the_seeds_example_config_is_accepted_without_warnings():
    seed = {"version": 1, "members": ["node1@host", "node2@host", "node3@host"], "quorum": 2,
            "heartbeat_interval": 5000, "election_timeout": 15000,
            "sync_strategy": "anti_entropy", "partition_strategy": "majority_side",
            "failover_strategy": "automatic", "metadata": {}}
    assert validate_config(seed) == []


@pytest.mark.parametrize(("config", "path", "fragment"), [
    ({"version": 0}, "version", "greater than or equal to 1"),
    ({"heartbeat_interval": "5000"}, "heartbeat_interval", "valid integer (got str '5000')"),
    ({"election_timeout": 1500.0}, "election_timeout", "valid integer"),
    ({"quorum": True}, "quorum", "valid integer"),
    ({"members": ["n1", 2]}, "members[1]", "valid string (got int 2)"),
    ({"members": ["n1", ""]}, "members[1]", "at least 1 character"),
    ({"members": "n1,n2"}, "members", "valid list"),
    ({"sync_strategy": ""}, "sync_strategy", "at least 1 character"),
    ({"metadata": {"a": [1, {"b": float("inf")}]}}, "metadata.a[1].b", "not a finite number"),
    ({"metadata": {"a": {1: "x"}}}, "metadata.a", "key 1 is not a string"),
    ({"metadata": {"a": {1, 2}}}, "metadata.a", "a set is not a JSON value"),
    ({"metadata": []}, "metadata", "must be a mapping"),
    ({"members": ["n1", "n2", "n1", "n2"]}, "members", "duplicate member ids 'n1', 'n2'"),
    ({**THREE, "quorum": 4}, "quorum", "larger than the 3 members"),
    ({**THREE, "quorum": 1}, "quorum", "split brain"),
    ({"members": ["a", "b", "c", "d"], "quorum": 2}, "quorum", "use at least 3"),
    ({"heartbeat_interval": 5}, "heartbeat_interval", "greater than or equal to 10"),
    ({"election_timeout": 9}, "election_timeout", "greater than or equal to 10"),
    ({"sync_strategy": "rsync"}, "sync_strategy",
     "unknown sync strategy 'rsync'; available: anti_entropy, causal, gossip"),
    ({"partition_strategy": "keep_oldest"}, "partition_strategy", "auto_merge, leader_side"),
    ({"failover_strategy": "random"}, "failover_strategy", "available: automatic"),
])
def test_each_error_names_its_field_path(config, path, fragment):
    errors = errors_of(config)
    assert path in errors, errors
    assert fragment in errors[path]
    with pytest.raises(ValidationFailed) as info:
        validate_config(config)
    assert (path, errors[path]) in info.value.errors
    assert info.value.code == "validation_failed" and isinstance(info.value, ClusterError)


def test_unknown_keys_are_rejected_with_a_suggestion_and_the_allowed_keys():
    errors = errors_of({"hearbeat_interval": 100, "colour": "blue"})
    assert "did you mean 'heartbeat_interval'?" in errors["hearbeat_interval"]
    assert "did you mean" not in errors["colour"]
    assert all(field in errors["colour"] for field in FIELDS)
    assert errors_of({1: 2}) == {"": "config keys are strings; got 1"}
    assert "a mapping" in errors_of(["members"])[""]


def test_all_errors_are_reported_together():
    errors = errors_of({"members": ["a", "a", "b"], "quorum": 5,
                        "sync_strategy": "x", "failover_strategy": "y"})
    assert set(errors) == {"members", "quorum", "sync_strategy", "failover_strategy"}


def test_quorum_rules():
    assert errors_of({**THREE, "quorum": 2}) == {}
    warnings, errors = check_config({**THREE, "quorum": 3})
    assert errors == [] and any("any one member down stops progress" in w for w in warnings)
    assert ClusterConfig(members=["a", "b", "c", "d", "e"]).quorum_size == 3
    assert ClusterConfig(members=["a", "b", "c", "d", "e"], quorum=4).quorum_size == 4
    assert "quorum" in errors_of({"quorum": 1})  # no members: nothing to reach
    even = validate_config({"members": ["a", "b", "c", "d"]})
    assert any("4 members tolerate no more failures than 3" in w for w in even)


def test_the_failure_detector_period_and_the_election_timeout_are_independent():
    # the failure detector's heartbeats do not drive Raft elections: any pair is valid
    for hb, et in ((1000, 200), (200, 1000), (5000, 15000), (10, 10)):
        assert check_config({**THREE, "heartbeat_interval": hb, "election_timeout": et}) == (
            [], [])


def test_known_strategies_replace_the_builtins_per_kind():
    known = {"sync": ["crdt_delta"]}
    assert errors_of({**THREE, "sync_strategy": "crdt_delta"}, known_strategies=known) == {}
    errors = errors_of(THREE, known_strategies=known)
    assert errors == {"sync_strategy": "unknown sync strategy 'anti_entropy'; available: "
                                       "crdt_delta"}
    other_kinds_keep_builtins = {**THREE, "sync_strategy": "crdt_delta",
                                 "failover_strategy": "weighted"}
    assert errors_of(other_kinds_keep_builtins, known_strategies=known) == {}
    warnings, errors = check_config({**THREE, "partition_strategy": "my.pkg:Resolver"})
    assert errors == [] and any("import path" in w for w in warnings)
    with pytest.raises(ValueError, match="unknown strategy kind"):
        check_config(THREE, known_strategies={"routing": ["x"]})
    assert set(BUILTIN_STRATEGIES) == {"sync", "partition", "failover"}


def test_a_model_is_immutable_and_its_metadata_is_a_copy():
    source = {"tags": ["a"], "nested": {"k": (1, 2)}}
    config = ClusterConfig(metadata=source)
    source["tags"].append("b")
    assert config.metadata == {"tags": ["a"], "nested": {"k": [1, 2]}}
    with pytest.raises(ValueError):
        config.quorum = 3  # type: ignore[misc]


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from([*FIELDS, "extra"]),
                       st.none() | st.booleans() | st.integers() | st.floats() | st.text()
                       | st.lists(st.integers() | st.text(), max_size=3), max_size=6))
def test_check_config_reports_junk_as_errors_never_exceptions(data):
    _warnings, errors = check_config(data)
    assert all(isinstance(p, str) and isinstance(m, str) and m for p, m in errors)
    if errors:
        with pytest.raises(ValidationFailed):
            validate_config(data)


# --- JSON export and import --------------------------------------------------

json_leaves = (st.none() | st.booleans() | st.integers() | st.text(max_size=8)
               | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                           max_leaves=10)


@st.composite
def valid_configs(draw) -> ClusterConfig:
    members = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=7, unique=True))
    n = len(members)
    heartbeat = draw(st.integers(10, 10_000))
    return ClusterConfig(
        version=draw(st.integers(1, 2**40)),
        members=members,
        quorum=draw(st.none() | st.integers(n // 2 + 1, n)),
        heartbeat_interval=heartbeat,
        election_timeout=draw(st.integers(min(2 * heartbeat, MAX_MS), min(20 * heartbeat, MAX_MS))),
        sync_strategy=draw(st.sampled_from(BUILTIN_STRATEGIES["sync"])),
        partition_strategy=draw(st.sampled_from(BUILTIN_STRATEGIES["partition"])),
        failover_strategy=draw(st.sampled_from(BUILTIN_STRATEGIES["failover"])),
        metadata=draw(st.dictionaries(st.text(max_size=6), json_values, max_size=4)),
    )


@settings(max_examples=1000)
@given(valid_configs())
def test_export_import_round_trips_exactly(config):
    assert check_config(config)[1] == []
    text = export_config(config)
    again = import_config(text)
    assert again == config
    assert export_config(again) == text
    store = ConfigStore(THREE)
    change = store.import_config(text)
    assert (change.version, change.kind, store.version) == (2, ChangeKind.IMPORT, 2)
    assert store.config.content() == config.content()
    assert store.export_config() == export_config(config.model_copy(update={"version": 2}))


def test_export_is_readable_stable_json():
    config = ClusterConfig(members=["n1"], metadata={"z": 1, "a": -0.0})
    text = export_config(config)
    assert list(json.loads(text)) == list(FIELDS)
    assert '"metadata": {\n    "z": 1,\n    "a": -0.0\n  }' in text


# --- the versioned store -----------------------------------------------------

def test_set_records_versions_and_reports_the_change():
    store = ConfigStore(THREE, at=0.0)
    change = store.set("heartbeat_interval", 150, at=1.5)
    assert (change.version, change.kind, change.changed_keys) == (2, ChangeKind.SET,
                                                                  ("heartbeat_interval",))
    assert (change.old.heartbeat_interval, change.new.heartbeat_interval) == (1000, 150)
    assert change.new.version == 2 and change.old.version == 1
    assert store.get("heartbeat_interval") == 150 and store.get("version") == 2
    change = store.propose({"quorum": 3, "metadata.region.zone": "eu-1"})
    assert change.changed_keys == ("quorum", "metadata")
    assert any("equals the member count" in w for w in change.warnings)
    assert store.get("metadata.region") == {"zone": "eu-1"}
    assert store.get("metadata.region.zone") == "eu-1"
    history = store.history()
    assert [(r.version, r.kind, r.at) for r in history] == [
        (1, ChangeKind.INITIAL, 0.0), (2, ChangeKind.SET, 1.5), (3, ChangeKind.SET, None)]
    assert [r.config.version for r in history] == [1, 2, 3]


def test_get_unknown_keys_raises_not_found():
    store = ConfigStore(THREE)
    for key in ("colour", "members.0", "metadata.absent", "metadata"):
        if key == "metadata":
            assert store.get(key) == {}
            continue
        with pytest.raises(ConfigNotFound) as info:
            store.get(key)
        assert isinstance(info.value, KeyError) and isinstance(info.value, ClusterError)
        assert info.value.code == "not_found" and repr(key) in str(info.value)


def _snapshot(store: ConfigStore):
    return store.version, store.export_config(), [r.model_dump() for r in store.history()]


@pytest.mark.parametrize("changes", [
    {"quorum": 7},
    {"colour": "blue"},
    {"version": 9},
    {},
    {"heartbeat_interval": 9},                   # below 10 ms
    {"metadata.a": float("nan")},
    {"metadata": 5, "metadata.a": 1},
    {"sync_strategy": "rsync", "quorum": 2},     # one bad key spoils the whole change
])
def test_an_invalid_change_raises_and_changes_nothing(changes):
    store = ConfigStore(THREE)
    store.set("metadata.a", {"b": 1})
    before = _snapshot(store)
    with pytest.raises(ValidationFailed):
        store.propose(changes)
    assert _snapshot(store) == before


def test_rollback_is_recorded_as_a_new_version_equal_to_the_old_one():
    store = ConfigStore(THREE)
    store.set("election_timeout", 2000)
    store.set("members", ["n1", "n2", "n3", "n4", "n5"])
    change = store.rollback(1)
    assert (change.version, change.kind, change.source_version) == (4, ChangeKind.ROLLBACK, 1)
    assert set(change.changed_keys) == {"election_timeout", "members"}
    assert store.config.content() == store.record(1).config.content()
    assert store.config.version == 4 and len(store.history()) == 4
    assert store.history()[-1].source_version == 1
    before = _snapshot(store)
    for bad in (0, 5, 99):
        with pytest.raises(ConfigNotFound):
            store.rollback(bad)
    assert _snapshot(store) == before


def test_an_invalid_import_raises_and_changes_nothing():
    store = ConfigStore(THREE)
    good = json.loads(store.export_config())
    before = _snapshot(store)
    for text in ("{not json", "[1, 2]", '{"members": [], "members": ["a"]}',
                 json.dumps({**good, "quorum": 9}), json.dumps({**good, "extra": 1}),
                 '{"metadata": {"x": NaN}}'):
        with pytest.raises(ValidationFailed):
            store.import_config(text)
        assert _snapshot(store) == before


def test_returned_configs_and_values_are_copies():
    store = ConfigStore({**THREE, "metadata": {"tags": ["a"]}})
    store.config.metadata["tags"].append("evil")
    store.get("metadata.tags").append("evil")
    store.get("members").append("evil")
    store.history()[0].config.members.append("evil")
    store.record(1).config.metadata.clear()
    assert store.get("metadata") == {"tags": ["a"]} and store.get("members") == THREE["members"]


def test_replicas_apply_decided_records_in_log_order_idempotently():
    leader, replica = ConfigStore(THREE), ConfigStore(THREE)
    log = []
    for changes in ({"quorum": 2}, {"metadata.owner": "ops"}, {"election_timeout": 3000}):
        record = leader.prepare(changes)
        leader.apply(record)
        log.append(record.model_dump(mode="json"))  # as a consensus log would carry it
    log.append(leader.prepare_rollback(2).model_dump(mode="json"))
    leader.apply(log[-1])
    for entry in log:
        assert replica.apply(entry) is not None
    assert replica.export_config() == leader.export_config()
    assert [r.kind for r in replica.history()] == [r.kind for r in leader.history()]
    before = _snapshot(replica)
    assert all(replica.apply(entry) is None for entry in log)  # replays change nothing
    assert _snapshot(replica) == before
    forged = ConfigVersion.model_validate({**log[0], "config": {**log[0]["config"], "quorum": 3}})
    with pytest.raises(ValidationFailed, match="already applied with a different config"):
        replica.apply(forged)
    future = leader.prepare({"quorum": 3}).model_copy(update={"version": 9})
    with pytest.raises(ValidationFailed, match="does not follow the current version 5"):
        replica.apply(future)
    with pytest.raises(ValidationFailed):
        replica.apply({"version": 6, "kind": "set", "config": {"version": 7}})
    assert _snapshot(replica) == before


def test_a_decided_record_is_applied_even_if_this_node_disagrees():
    leader = ConfigStore(THREE, known_strategies={"sync": ["anti_entropy", "crdt_delta"]})
    record = leader.prepare({"sync_strategy": "crdt_delta"})
    replica = ConfigStore({**THREE})
    change = replica.apply(record)
    assert change is not None and replica.get("sync_strategy") == "crdt_delta"
    assert any(w.startswith("applied despite: sync_strategy") for w in change.warnings)


def test_prepare_changes_nothing_and_a_stale_prepare_conflicts():
    store = ConfigStore(THREE)
    first = store.prepare({"quorum": 2})
    second = store.prepare({"quorum": 3})
    assert store.version == 1 and first.version == second.version == 2
    store.apply(first)
    with pytest.raises(ValidationFailed, match="already applied"):
        store.apply(second)
    assert store.get("quorum") == 2


def test_history_is_bounded_and_old_versions_cannot_be_restored():
    store = ConfigStore(THREE, max_history=3)
    first = store.prepare({"metadata.i": 0})
    store.apply(first)
    for i in range(1, 5):
        store.set("metadata.i", i)
    assert [r.version for r in store.history()] == [4, 5, 6]
    with pytest.raises(ConfigNotFound, match=r"kept versions: 4\.\.6"):
        store.rollback(2)
    assert store.apply(first) is None  # a replay of a dropped version is ignored
    assert store.rollback(4).version == 7


def test_the_initial_config_is_validated_and_its_warnings_kept():
    with pytest.raises(ValidationFailed):
        ConfigStore({"quorum": 2})
    store = ConfigStore({"version": 5, "members": ["a", "b"]})
    assert store.version == 5 and store.history()[0].kind == ChangeKind.INITIAL
    assert any("2 members" in w for w in store.initial_warnings)
    assert store.set("quorum", 2).version == 6


def test_errors_survive_pickling():
    with pytest.raises(ValidationFailed) as info:
        validate_config({"quorum": 0})
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.errors == info.value.errors
    error = ConfigNotFound("no config key 'x'")
    assert str(pickle.loads(pickle.dumps(error))) == "no config key 'x'"


def test_a_clusters_election_timeout_floor_refuses_changes_rollbacks_and_imports_below_it():
    store = ConfigStore({**THREE, "election_timeout": 200}, min_election_timeout=120)
    with pytest.raises(ValidationFailed, match="floor of 120 ms"):
        store.propose({"election_timeout": 119})
    with pytest.raises(ValidationFailed, match="floor of 120 ms"):
        store.validate({"election_timeout": 119})
    with pytest.raises(ValidationFailed, match="floor"):
        store.validate({**THREE, "version": 7, "election_timeout": 50})
    assert store.validate({"election_timeout": 120}) == [] and store.version == 1
    text = store.export_config().replace('"election_timeout": 200', '"election_timeout": 60')
    with pytest.raises(ValidationFailed, match="floor"):
        store.import_config(text)
    with pytest.raises(ValidationFailed, match="floor"):
        ConfigStore({**THREE, "election_timeout": 100}, min_election_timeout=120)
    assert store.version == 1


def test_validate_takes_a_whole_config_or_the_keys_to_change_and_changes_nothing():
    store = ConfigStore(THREE)
    assert any("equals the member count" in w for w in store.validate({"quorum": 3}))
    assert store.validate({**THREE, "version": 3}) == []
    with pytest.raises(ValidationFailed) as error:
        store.validate({"quorum": 9})
    assert [path for path, _ in error.value.errors] == ["quorum"]
    with pytest.raises(ValidationFailed):
        store.validate({})
    assert store.version == 1 and store.config.quorum is None


def test_a_state_machine_restored_from_a_newer_snapshot_reports_the_config_change():
    from cluster_actors.core.cluster_state import ClusterStateMachine

    ahead = ClusterStateMachine(THREE)
    ahead.config.set("heartbeat_interval", 600)
    ahead.config.set("metadata.team", "infra")
    behind = ClusterStateMachine(THREE)
    behind.restore(ahead.snapshot())
    [change] = behind.take_config_changes()
    assert (change.version, change.kind, change.changed_keys) == (
        3, ChangeKind.SNAPSHOT, ("heartbeat_interval", "metadata"))
    assert change.old.heartbeat_interval == 1000 and change.new.heartbeat_interval == 600
    behind.restore(ahead.snapshot())  # the same version again: nothing to announce
    assert behind.take_config_changes() == []


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("config", "path", "fragment"), [
    ({"election_timeout": 10**30}, "election_timeout", f"less than or equal to {MAX_MS}"),
    ({"heartbeat_interval": MAX_MS + 1}, "heartbeat_interval", "less than or equal"),
    ({"quorum": 10**9}, "quorum", "less than or equal"),
    ({"version": 2**64}, "version", "less than or equal"),
    ({"members": ["n" * 300]}, "members[0]", "at most 256"),
    ({"members": [f"n{i}" for i in range(1001)]}, "members", "at most 1000"),
    ({"sync_strategy": "x" * 300}, "sync_strategy", "at most 256"),
    ({"metadata": _nested(10_000)}, "metadata", f"at most {MAX_METADATA_DEPTH} levels"),
    ({"metadata": {"blob": "x" * MAX_METADATA_BYTES}}, "metadata.blob",
     f"at most {MAX_METADATA_BYTES} bytes"),
    ({"metadata": {"list": list(range(100_000))}}, "metadata.list", "at most"),
    ({"metadata": {"n": 10**400}}, "metadata.n", "1024 bits"),
    ({"metadata": {"sync_merkle_depth": 99}}, "metadata.sync_merkle_depth",
     f"1..{MAX_SYNC_MERKLE_DEPTH}"),
    ({"metadata": {"sync_merkle_depth": "16"}}, "metadata.sync_merkle_depth", "integer"),
])
def test_config_values_out_of_their_bounds_are_validation_errors_not_crashes(
        config: dict, path: str, fragment: str) -> None:
    errors = errors_of(config)
    assert any(p.startswith(path) and fragment in m for p, m in errors.items()), errors
    with pytest.raises(ValidationFailed):
        ConfigStore(config)


def test_deep_metadata_set_on_a_store_is_refused_and_changes_nothing() -> None:
    store = ConfigStore(THREE)
    before = store.export_config()
    with pytest.raises(ValidationFailed, match="levels deep"):
        store.set("metadata.deep", _nested(5000))
    with pytest.raises(ValidationFailed, match="sync_merkle_depth"):
        store.set("metadata.sync_merkle_depth", 99)
    assert store.export_config() == before and store.version == 1
    assert store.set("metadata.sync_merkle_depth", 12).new.metadata == {"sync_merkle_depth": 12}
