"""``ClusterOptions``: every knob of a running cluster, validated up front.

Times are milliseconds, as in the seed's configuration. The defaults suit a
laptop: a 10 ms Raft tick, elections after 200-400 ms of silence (a dead
leader's actor is noticed within milliseconds anyway), failure-detector
heartbeats every second.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .core.config import MAX_MEMBERS, MAX_MS, MAX_NAME_CHARS, check_json, check_metadata
from .core.limits import (
    DEFAULT_MAX_VALUE_BYTES,
    MAX_ACCEPTABLE_PAUSE_MS,
    MAX_MAX_VALUE_BYTES,
    MAX_PATH_CHARS,
    MAX_PHI_THRESHOLD,
    MIN_MAX_VALUE_BYTES,
)
from .core.raft import RaftOptions
from .errors import ValidationFailed


class ClusterOptions(BaseModel):
    """Options of a cluster; unknown keys are rejected with the valid ones listed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tick_ms: int = Field(10, ge=1, le=1000, description="Raft logical tick")
    election_timeout: int = Field(
        200, ge=10, le=MAX_MS,
        description="ms without a leader before a pre-vote (randomized up to 2x)")
    raft_heartbeat_ms: int = Field(40, ge=1, le=MAX_MS // 3, description="leader heartbeat period")
    heartbeat_interval: int = Field(
        1000, ge=10, le=MAX_MS,
        description="failure-detector heartbeat period (seed: heartbeat_interval)")
    phi_threshold: float = Field(8.0, gt=0, le=MAX_PHI_THRESHOLD)
    acceptable_heartbeat_pause: int = Field(3000, ge=0, le=MAX_ACCEPTABLE_PAUSE_MS,
                                            description="ms, as Akka's")
    monitors_per_node: int = Field(9, ge=1, le=MAX_MEMBERS,
                                   description="k: how many nodes watch each node")
    quorum: int | None = Field(None, ge=1, le=MAX_MEMBERS,
                               description="static quorum; None = majority")
    sync_strategy: str = Field("anti_entropy", min_length=1, max_length=MAX_NAME_CHARS)
    partition_strategy: str = Field("majority_side", min_length=1, max_length=MAX_NAME_CHARS)
    failover_strategy: str = Field("automatic", min_length=1, max_length=MAX_NAME_CHARS)
    sync_interval: int = Field(2000, ge=10, le=3_600_000,
                               description="ms between anti-entropy rounds")
    failover_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the failover strategy, e.g. weights "
                                          "(JSON, bounded in depth and size as metadata)")
    partition_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the partition strategy, e.g. "
                                          "stable_after (JSON, bounded as metadata)")
    node_labels: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per node id: labels its heartbeats carry and the "
                                          "failover strategies read (region, weight); at most "
                                          f"{MAX_MEMBERS} nodes, each's labels JSON bounded "
                                          "as metadata")
    join_approval: bool = Field(
        False, description="a joining node waits until a quorum of the voters approved it "
                           "(approve_join/reject_join on their coordinators)")
    voters: int | None = Field(
        None, ge=1, le=MAX_MEMBERS,
        description="at most this many voters, the other nodes learners; the leader promotes "
                    "a caught-up learner when a voter stays down past voter_grace_ms "
                    "(Consul's autopilot); None: every node votes")
    voter_grace_ms: int = Field(
        2000, ge=10, le=3_600_000,
        description="ms a voter may stay down before the leader replaces it (with voters)")
    follow_ray_nodes: bool = Field(
        False, description="a Ray node that joins the Ray cluster becomes a node of this "
                           "cluster (add_node), one that leaves is removed after "
                           "ray_node_grace_ms")
    ray_node_grace_ms: int = Field(
        5000, ge=0, le=3_600_000,
        description="ms a followed Ray node may be gone before its node is removed")
    placement: Literal["per_component", "per_node"] = Field(
        default_factory=lambda: default_placement(), validate_default=True,
        description="per_component: each component its own supervised actor; per_node: one "
                    "actor per logical node; default: $CLUSTER_ACTORS_PLACEMENT, else "
                    "per_component")
    data_plane: bool = Field(
        True, description="Raft messages and heartbeats between nodes travel on streams "
                          "(Unix/TCP, authenticated with the cluster's secret), Ray calls "
                          "being the fallback; False: Ray calls only")
    data_dir: str | None = Field(
        None, min_length=1, max_length=MAX_PATH_CHARS, description="where each node keeps its SQLite files (one directory per cluster "
                          "below it); default: $CLUSTER_ACTORS_DATA_DIR, else "
                          "$XDG_DATA_HOME/cluster_actors, else ~/.local/share/cluster_actors")
    fsync: bool = Field(
        True, description="fsync the Raft log before acknowledging (SQLite synchronous=FULL); "
                          "False survives process crashes but not power loss, and is faster")
    snapshot_every: int = Field(10_000, ge=10, le=100_000_000,
                                description="applied entries between snapshots")
    mvcc_history: int = Field(
        10_000, ge=0, le=10_000_000,
        description="revisions of key changes kept for past reads and watches; older ones "
                    "are compacted")
    max_batch: int = Field(1024, ge=1, le=65_536, description="entries per append message")
    max_value_bytes: int = Field(
        DEFAULT_MAX_VALUE_BYTES, ge=MIN_MAX_VALUE_BYTES, le=MAX_MAX_VALUE_BYTES,
        description="the largest value (all values of one command together), pickled, a "
                    "client may write; larger ones are refused before they are proposed "
                    "(etcd's request limit, 1.5 MiB by default)")
    supervisor_intensity: int = Field(10, ge=0, le=10_000)
    supervisor_period: float = Field(10.0, gt=0, le=86_400)
    restart_delay_ms: int = Field(
        300, ge=0, le=60_000,
        description="how long a supervisor waits before restarting a component (or a "
                    "per_node host) that died: starting a Ray worker process takes about a "
                    "second of CPU, and on a small machine it would slow the survivors' "
                    "election; they elect first (Akka's backoff supervisor waits too)")
    detached: bool = Field(False, description="actors outlive the driver (for `cluster-actors up`)")
    prometheus_port: int | None = Field(None, ge=0, le=65535)
    tracing: Literal["none", "console", "memory", "otlp"] = Field(
        "none", description="OpenTelemetry span exporter of every actor process: console, "
                            "memory (tests: read back with finished_spans), otlp (needs "
                            "opentelemetry-exporter-otlp; endpoint from the OTEL_EXPORTER_OTLP_* "
                            "variables) or none")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="free JSON data of the config (bounded in depth and "
                                          "size); sync_merkle_depth sets the sync tree's depth")

    @model_validator(mode="after")
    def _check_timing(self) -> ClusterOptions:
        if self.election_timeout < 3 * self.raft_heartbeat_ms:
            raise ValueError(f"election_timeout ({self.election_timeout} ms) must be at least "
                             f"3x raft_heartbeat_ms ({self.raft_heartbeat_ms} ms)")
        if self.raft_heartbeat_ms < self.tick_ms:
            raise ValueError(f"raft_heartbeat_ms ({self.raft_heartbeat_ms}) must be >= tick_ms "
                             f"({self.tick_ms})")
        return self

    @field_validator("metadata", mode="before")
    @classmethod
    def _check_metadata(cls, metadata: Any) -> Any:
        return check_metadata(metadata)

    @field_validator("failover_options", "partition_options", mode="before")
    @classmethod
    def _check_strategy_options(cls, options: Any, info: ValidationInfo) -> Any:
        if not isinstance(options, dict):
            return options  # pydantic says what it expected
        return check_json(options, info.field_name or "options")

    @field_validator("node_labels", mode="before")
    @classmethod
    def _check_node_labels(cls, labels: Any) -> Any:
        if not isinstance(labels, dict):
            return labels
        if len(labels) > MAX_MEMBERS:
            raise ValueError(f"labels for at most {MAX_MEMBERS} nodes, got {len(labels)}")
        for node in labels:
            if not isinstance(node, str) or not 0 < len(node) <= MAX_NAME_CHARS:
                raise ValueError(f"a node id is a string of 1..{MAX_NAME_CHARS} characters, "
                                 f"got {str(node)[:80]!r}")
        return {node: check_json(node_labels, f"node_labels.{node}")
                if isinstance(node_labels, dict) else node_labels
                for node, node_labels in labels.items()}

    @field_validator("tracing")
    @classmethod
    def _check_tracing(cls, tracing: str) -> str:
        if tracing == "otlp" and not _otlp_installed():
            raise ValueError("OTLP export needs the exporter package: "
                             "pip install opentelemetry-exporter-otlp")
        return tracing

    @classmethod
    def parse(cls, options: ClusterOptions | dict[str, Any] | None = None,
              **overrides: Any) -> ClusterOptions:
        """Validate ``options`` (a ClusterOptions, a dict, or keywords);
        raise :class:`ValidationFailed` with field paths on bad input."""
        data: dict[str, Any] = {}
        if isinstance(options, ClusterOptions):
            data = options.model_dump()
        elif options:
            data = dict(options)
        data.update(overrides)
        try:
            parsed = cls(**data)
        except ValidationError as error:
            raise ValidationFailed(
                [(".".join(str(p) for p in e["loc"]) or "options", _message(e))
                 for e in error.errors()]) from None
        parsed.check_strategies()
        return parsed

    def check_strategies(self) -> None:
        """Raise UnknownStrategy if a strategy name is not installed (an
        import path ``"package.module:Class"`` is checked when loaded)."""
        import strategies

        from .errors import UnknownStrategy

        for kind in ("failover", "partition", "sync"):
            name = getattr(self, f"{kind}_strategy")
            available = strategies.available(kind)
            if name not in available and not strategies.is_import_path(name):
                raise UnknownStrategy(kind, name, available)
            options = getattr(self, f"{kind}_options", None)
            if options:
                strategies.load(kind, name, **options)  # ValidationFailed names the option

    def raft_options(self) -> RaftOptions:
        return RaftOptions(
            election_tick=max(2, round(self.election_timeout / self.tick_ms)),
            heartbeat_tick=max(1, round(self.raft_heartbeat_ms / self.tick_ms)),
            max_entries_per_message=self.max_batch)

    def data_root(self) -> str:
        """The directory that holds every cluster's files: ``data_dir`` if set,
        else a per-user data directory that survives reboots (never ``/tmp``):
        ``$CLUSTER_ACTORS_DATA_DIR``, else ``$XDG_DATA_HOME/cluster_actors``,
        else ``~/.local/share/cluster_actors``. ``Cluster.start`` resolves it once
        in the driver and hands the result to every actor in ``data_dir``."""
        if self.data_dir:
            return self.data_dir
        return default_data_root()

    def resolved_data_dir(self, cluster: str) -> str:
        return os.path.join(self.data_root(), cluster)


#: Environment variable that overrides the default data root (tests point it
#: at a temporary directory).
DATA_DIR_ENV = "CLUSTER_ACTORS_DATA_DIR"


#: Environment variable that sets the default placement on a machine (a small
#: one may prefer ``per_node``: a third of the processes, a cluster up in a
#: third of the time).
PLACEMENT_ENV = "CLUSTER_ACTORS_PLACEMENT"


def default_placement() -> str:
    """``$CLUSTER_ACTORS_PLACEMENT`` if set (validated like an option), else
    ``per_component``."""
    return os.environ.get(PLACEMENT_ENV) or "per_component"


def default_data_root() -> str:
    """The per-user data root of this process's environment (see
    :meth:`ClusterOptions.data_root`)."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg = os.environ.get("XDG_DATA_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(
        os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "cluster_actors")


def _otlp_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp") is not None
    except ImportError:
        return False


#: Keys of the seed's config map that are not options, and where they go instead.
_CONFIG_ONLY = {
    "members": "the members are the nodes: Cluster.start(name, nodes=[...]) (or a count)",
    "version": "the configuration's version is assigned by its log, starting at 1",
}


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        key = error["loc"][-1] if error.get("loc") else None
        if key in _CONFIG_ONLY:
            return f"not an option: {_CONFIG_ONLY[key]}"
        valid = ", ".join(sorted(ClusterOptions.model_fields))
        return f"unknown option; valid options are: {valid}"
    return str(error.get("msg", "invalid"))
