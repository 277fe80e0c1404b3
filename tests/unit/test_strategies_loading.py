"""Strategy plug-in machinery: discovery by entry point, import paths, validation, errors."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import strategies
from cluster_actors.core.config import BUILTIN_STRATEGIES, check_config
from cluster_actors.errors import UnknownStrategy, ValidationFailed
from strategies.base import FailoverStrategy, PartitionStrategy, PartitionView, SideAction
from strategies.failover import AutomaticFailover, WeightedFailover
from strategies.partition import MajoritySide, QuorumSide
from tests.conftest import PLUGIN_MODULE

FAILOVER = ["automatic", "geo_preferred", "load_aware", "manual", "weighted"]
PARTITION = ["auto_merge", "leader_side", "majority_side", "manual", "quorum_side"]


@pytest.fixture(autouse=True)
def _fresh_entry_point_cache() -> Iterator[None]:
    strategies.refresh()
    yield
    strategies.refresh()


# --- discovery --------------------------------------------------------------------------


def test_available_lists_the_builtins_sorted() -> None:
    assert strategies.available("failover") == FAILOVER
    assert strategies.available("partition") == PARTITION
    assert strategies.available("sync") == sorted(BUILTIN_STRATEGIES["sync"])


def test_known_strategies_agree_with_the_config_builtins() -> None:
    known = strategies.known_strategies()
    assert list(known) == list(strategies.KINDS)
    for kind, names in BUILTIN_STRATEGIES.items():
        assert set(names) <= set(known[kind]), kind


@pytest.mark.parametrize(("kind", "name"), [("failover", n) for n in FAILOVER]
                         + [("partition", n) for n in PARTITION])
def test_every_builtin_loads_by_name_and_describes_itself(kind: str, name: str) -> None:
    strategy = strategies.load(kind, name)
    assert isinstance(strategy, strategies.base_class(kind))
    assert strategy.name == name and strategy.kind == kind
    description = strategy.describe()
    assert description["name"] == name and description["kind"] == kind
    assert description["options"] == strategy.options
    assert description["summary"]


def test_import_path_and_class_load_the_same_class_as_the_name() -> None:
    by_name = strategies.load_class("partition", "majority_side")
    assert by_name is MajoritySide
    assert strategies.load_class("partition", "strategies.partition:MajoritySide") is MajoritySide
    assert strategies.load_class("partition", MajoritySide) is MajoritySide
    loaded = strategies.load("partition", "strategies.partition:QuorumSide", quorum_size=3)
    assert isinstance(loaded, QuorumSide) and loaded.options["quorum_size"] == 3


def test_options_reach_the_instance_and_survive_pickling() -> None:
    weights = {"n1": 3.0, "n2": 1.0}
    strategy = strategies.load("failover", "weighted", weights=weights, rebalance=True)
    weights["n1"] = 0.0  # the caller's dict is copied, not shared
    assert strategy.options["weights"] == {"n1": 3.0, "n2": 1.0}
    clone = pickle.loads(pickle.dumps(strategy))
    assert clone == strategy and clone is not strategy
    assert clone != WeightedFailover()


# --- errors -----------------------------------------------------------------------------


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(UnknownStrategy) as raised:
        strategies.load("partition", "majority")
    error = raised.value
    assert isinstance(error, ValidationFailed) and error.code == "validation_failed"
    assert error.kind == "partition" and error.name == "majority"
    assert error.available == PARTITION
    for name in PARTITION:
        assert name in str(error)
    assert error.errors[0][0] == "partition_strategy"


def test_check_name_accepts_installed_names_and_rejects_others() -> None:
    strategies.check_name("failover", "geo_preferred")
    strategies.check_name("failover", "strategies.failover:GeoPreferredFailover")
    with pytest.raises(UnknownStrategy, match="automatic, geo_preferred, load_aware"):
        strategies.check_name("failover", "geo")
    with pytest.raises(ValidationFailed, match="cannot import module"):
        strategies.check_name("failover", "no_such_package_xyz.mod:Thing")


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ValidationFailed, match="kinds: failover, partition, sync"):
        strategies.available("election")
    with pytest.raises(ValidationFailed, match="unknown strategy kind 'election'"):
        strategies.load("election", "automatic")


@pytest.mark.parametrize(("path", "message"), [
    ("collections:OrderedDict", "not a PartitionStrategy subclass"),
    ("strategies.failover:AutomaticFailover", "not a PartitionStrategy subclass"),
    ("strategies.partition:StableAfterWindow", "not a PartitionStrategy subclass"),
    ("math:pi", "float object, not a PartitionStrategy subclass"),
    ("strategies.base:PartitionStrategy", "is abstract: it does not implement resolve"),
    ("strategies.partition:NoSuchClass", "has no attribute 'NoSuchClass'"),
    ("no_such_package_xyz:Thing", "cannot import module 'no_such_package_xyz'"),
    ("strategies.partition:Majority:Side", "malformed import path"),
    ("strategies partition:MajoritySide", "malformed import path"),
])
def test_bad_import_paths_are_rejected_clearly(path: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as raised:
        strategies.load_class("partition", path)
    assert not isinstance(raised.value, UnknownStrategy)


def test_a_class_of_another_kind_is_rejected_even_when_passed_directly() -> None:
    with pytest.raises(ValidationFailed, match="not a FailoverStrategy subclass"):
        strategies.load("failover", MajoritySide)
    with pytest.raises(ValidationFailed, match="a failover strategy is a name or"):
        strategies.load("failover", AutomaticFailover())  # type: ignore[arg-type]


def test_empty_or_non_string_names_are_rejected() -> None:
    for bad in ("", None, 3):
        with pytest.raises(ValidationFailed, match="a partition strategy is a name"):
            strategies.load("partition", bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "name", "options", "message"), [
    ("partition", "majority_side", {"stable_afer": 1}, "valid options: stable_after"),
    ("partition", "quorum_side", {"size": 3}, "valid options: quorum_size, stable_after"),
    ("failover", "automatic", {"x": 1}, "valid options: none"),
    ("partition", "majority_side", {"stable_after": -1}, "must be >= 0"),
    ("partition", "majority_side", {"stable_after": float("nan")}, "finite number"),
    ("partition", "quorum_side", {"quorum_size": 0}, "must be >= 1"),
    ("partition", "quorum_side", {"quorum_size": 2.5}, "must be an int or None"),
    ("partition", "leader_side", {"down_if_alone": "yes"}, "true or false"),
    ("failover", "weighted", {"weights": {"n1": -1}}, "weight must be a finite number >= 0"),
    ("failover", "weighted", {"weights": ["n1"]}, "must be a mapping"),
    ("failover", "weighted", {"min_timeout_scale": 0}, "must be > 0"),
    ("failover", "load_aware", {"load_ratio": 0.5}, "must be >= 1"),
    ("failover", "geo_preferred", {"preferred_region": ""}, "region label or None"),
])
def test_bad_options_are_rejected_naming_the_option(kind: str, name: str, options: dict,
                                                    message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as raised:
        strategies.load(kind, name, **options)
    (field, _), = raised.value.errors
    assert field == f"{kind}.{next(iter(options))}"


def test_config_validation_uses_the_installed_names() -> None:
    known = strategies.known_strategies()
    base = {"members": ["n1", "n2", "n3"]}
    _, errors = check_config({**base, "failover_strategy": "heaviest"}, known)
    assert len(errors) == 1 and errors[0][0] == "failover_strategy"
    for name in FAILOVER:
        assert name in errors[0][1]
    _, errors = check_config({**base, "partition_strategy": "quorum_side"}, known)
    assert errors == []


class _FakeEntryPoint:
    """Stands in for an installed package's entry point (name, value, dist, load)."""

    def __init__(self, name: str, value: str, dist: str) -> None:
        self.name, self.value = name, value
        self.dist = type("Dist", (), {"name": dist})()

    def load(self) -> object:
        return EntryPoint(self.name, self.value, "cluster_actors.partition").load()


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, *values: tuple[str, str, str]) -> None:
    """Make the partition group hold only the given (name, value, distribution) triples."""
    eps = [_FakeEntryPoint(*value) for value in values]
    monkeypatch.setattr(strategies, "entry_points",
                        lambda group: eps if group == "cluster_actors.partition" else [])
    strategies.refresh()


def test_a_name_registered_twice_with_different_targets_is_ambiguous(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch,
                       ("keep", "strategies.partition:MajoritySide", "pkg-a"),
                       ("keep", "strategies.partition:QuorumSide", "pkg-b"))
    assert strategies.available("partition") == ["keep"]
    with pytest.raises(ValidationFailed, match=r"more than one package \(pkg-a -> "):
        strategies.load("partition", "keep")


def test_a_plugin_that_fails_to_import_gives_a_clear_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch, ("broken", "no_such_package_xyz:Broken", "pkg-c"))
    with pytest.raises(ValidationFailed, match=r"'broken' .* failed to import: "
                                               "ModuleNotFoundError"):
        strategies.load("partition", "broken")


def test_entry_points_are_cached_until_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "majority_side" in strategies.available("partition")
    monkeypatch.setattr(strategies, "entry_points", lambda group: [])
    assert "majority_side" in strategies.available("partition")  # cached
    strategies.refresh()
    assert strategies.available("partition") == []


# --- a third-party package installed for real ------------------------------------------


@pytest.fixture(scope="module")
def thirdparty_installed(thirdparty_site: Path) -> Iterator[Path]:
    """The plug-in package, pip-installed into a temporary directory, on ``sys.path``."""
    strategies.refresh()
    assert "down_all" not in strategies.available("partition")
    sys.path.insert(0, str(thirdparty_site))
    strategies.refresh()
    try:
        yield thirdparty_site
    finally:
        sys.path.remove(str(thirdparty_site))
        for module in [m for m in sys.modules if m.split(".")[0] == PLUGIN_MODULE]:
            del sys.modules[module]
        strategies.refresh()


def test_thirdparty_strategy_is_found_and_loaded_by_name(thirdparty_installed: Path) -> None:
    assert strategies.available("partition") == sorted([*PARTITION, "down_all"])
    strategy = strategies.load("partition", "down_all", stable_after=1.0)
    assert isinstance(strategy, PartitionStrategy) and not isinstance(strategy, FailoverStrategy)
    assert type(strategy).__module__ == PLUGIN_MODULE
    assert Path(sys.modules[PLUGIN_MODULE].__file__ or "").is_relative_to(thirdparty_installed)
    view = PartitionView("n4", (frozenset({"n1", "n2", "n3"}), frozenset({"n4", "n5"})),
                         ("n1", "n2", "n3", "n4", "n5"), leader="n1", stable_for=2.0)
    decision = strategy.decide(view)
    assert set(decision.actions.values()) == {SideAction.DOWN}
    assert decision.strategy == "down_all"


def test_thirdparty_name_is_accepted_by_config_validation(thirdparty_installed: Path) -> None:
    known = strategies.known_strategies()
    _, errors = check_config({"members": ["n1"], "partition_strategy": "down_all"}, known)
    assert errors == []
    _, errors = check_config({"members": ["n1"], "partition_strategy": "down_some"}, known)
    assert "down_all" in errors[0][1]
