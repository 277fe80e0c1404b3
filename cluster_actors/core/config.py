"""Cluster configuration: the model, its validation, and a versioned store.

:class:`ClusterConfig` carries the seed's keys (``version``, ``members``,
``quorum``, ``heartbeat_interval``, ``election_timeout``, the three strategy
names, ``metadata``). Times are integers in **milliseconds**, like the seed,
and mean what the running cluster does with them: ``heartbeat_interval`` is
the failure detector's heartbeat period (default 1 s, as Akka's) and
``election_timeout`` Raft's (default 200 ms; Raft's own leader heartbeat is the
``raft_heartbeat_ms`` option). They are independent, so no ratio between them
is required; the seed's 5 s / 15 s are valid input. A cluster records its
options' values as version 1 and hot-reloads changes to them.

:func:`check_config` returns ``(warnings, errors)``; :func:`validate_config`
returns the warnings or raises :class:`~cluster_actors.errors.ValidationFailed`
whose ``errors`` are ``(field_path, message)`` pairs. Rules:

- unknown keys, wrong types and out-of-range numbers are errors (pydantic's
  paths, e.g. ``members[1]``; an unknown key names the allowed ones);
- duplicate members are an error;
- ``quorum`` larger than the member count is an error, and so is a quorum that
  is not a strict majority (two disjoint groups could each reach it and elect
  two leaders: split brain); ``quorum`` equal to the member count is a warning;
- ``heartbeat_interval`` and ``election_timeout`` below 10 ms are errors (a
  running cluster also needs ``election_timeout`` at least 3x its
  ``raft_heartbeat_ms``: its stores get that floor as ``min_election_timeout``);
- an unknown strategy name is an error listing the available ones; a
  ``"package.module:Class"`` path is accepted with a warning (it is checked
  when loaded);
- no members, or an even member count, are warnings.

:class:`ConfigStore` keeps the versions. Every mutation goes through
:meth:`ConfigStore.apply` of a :class:`ConfigVersion` record, so a leader can
``prepare*`` a record, replicate it through consensus, and every replica
applies it in log order; ``set``/``propose``/``rollback``/``import_config``
prepare and apply at once. Each returns a :class:`ConfigChange` for the caller
to announce; the core calls nobody back. An invalid change raises and changes
nothing.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from cluster_actors.core.quorum import majority
from cluster_actors.errors import NotFound, ValidationFailed

BUILTIN_STRATEGIES: Mapping[str, tuple[str, ...]] = {
    "sync": ("anti_entropy", "merkle_tree", "vector_clock", "gossip", "last_write_wins",
             "causal"),
    "partition": ("majority_side", "leader_side", "quorum_side", "manual", "auto_merge"),
    "failover": ("automatic", "manual", "weighted", "load_aware", "geo_preferred"),
}
"""The seed's strategy names per kind, used when no ``known_strategies`` is given."""

STRATEGY_FIELDS: Mapping[str, str] = {
    "sync": "sync_strategy", "partition": "partition_strategy", "failover": "failover_strategy"}
MAX_MS = 60_000
"""The longest ``heartbeat_interval`` and ``election_timeout`` (one minute)."""
MAX_MEMBERS = 1000
MAX_NAME_CHARS = 256
"""The longest node id and strategy name (an import path)."""
MAX_METADATA_DEPTH = 32
MAX_METADATA_BYTES = 65_536
"""Metadata nests at most this deep and takes at most this many bytes as JSON."""
MAX_SYNC_MERKLE_DEPTH = 20
"""``metadata.sync_merkle_depth`` (the sync component's tree, ``2**depth``
leaves, ``32 * 2**depth`` bytes of hashes) lies in 1..this."""
PositiveInt = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]
Milliseconds = Annotated[int, Field(strict=True, ge=10, le=MAX_MS)]
NodeId = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_NAME_CHARS)]
StrategyName = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_NAME_CHARS)]


def _fail(path: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("json_value", "{message}", {"path": path, "message": message})


def _json_copy(value: Any, path: str, depth: int = 0, budget: list[int] | None = None) -> Any:
    """A fresh copy of ``value`` made of JSON types only; tuples become lists.
    Nesting deeper than :data:`MAX_METADATA_DEPTH`, or more than about
    :data:`MAX_METADATA_BYTES` of content, is refused (before recursing)."""
    if budget is None:
        budget = [MAX_METADATA_BYTES]
    budget[0] -= 1 + (len(value) if isinstance(value, str) else 0)
    if budget[0] < 0:
        raise _fail(path, f"metadata takes at most {MAX_METADATA_BYTES} bytes; keep large "
                          "data elsewhere and store a reference")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1024:
        raise _fail(path, "integers in metadata take at most 1024 bits")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (Mapping, list, tuple)) and depth >= MAX_METADATA_DEPTH:
        raise _fail(path, f"metadata nests at most {MAX_METADATA_DEPTH} levels deep")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(path, f"{value} is not a finite number; JSON cannot carry it")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(path, f"key {key!r} is not a string; JSON object keys are strings")
            budget[0] -= len(key)
            out[key] = _json_copy(item, f"{path}.{key}", depth + 1, budget)
        return out
    if isinstance(value, (list, tuple)):
        return [_json_copy(item, f"{path}[{i}]", depth + 1, budget)
                for i, item in enumerate(value)]
    raise _fail(path, f"a {type(value).__name__} is not a JSON value; use str, int, float, "
                      "bool, None, lists and dicts with string keys")


def _metadata(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise _fail("metadata", f"metadata must be a mapping, got {type(value).__name__}")
    copied = _json_copy(value, "metadata")
    depth = copied.get("sync_merkle_depth")
    if "sync_merkle_depth" in copied and (not isinstance(depth, int) or isinstance(depth, bool)
                                          or not 1 <= depth <= MAX_SYNC_MERKLE_DEPTH):
        raise _fail("metadata.sync_merkle_depth",
                    f"sync_merkle_depth is an integer in 1..{MAX_SYNC_MERKLE_DEPTH} (the sync "
                    f"tree has 2**depth leaves), got {depth!r}")
    return copied


def check_json(value: Any, path: str) -> Any:
    """A JSON copy of ``value`` (any JSON value, bounded in depth and size as
    metadata is); else raises ValueError naming the path under ``path`` and
    what to do."""
    try:
        return _json_copy(value, path)
    except PydanticCustomError as error:
        context = error.context or {}
        raise ValueError(f"{context.get('path', path)}: {context.get('message')}") from None


def check_metadata(value: Any) -> dict[str, Any]:
    """A JSON copy of ``value`` if it is valid metadata (a mapping of JSON
    values, bounded in depth and size, ``sync_merkle_depth`` in range); else
    raises ValueError with the path and what to do."""
    try:
        return _metadata(value)  # type: ignore[no-any-return]
    except PydanticCustomError as error:
        context = error.context or {}
        raise ValueError(f"{context.get('path', 'metadata')}: {context.get('message')}") from None


class ClusterConfig(BaseModel):
    """One version of the cluster configuration (immutable; times in ms)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: PositiveInt = 1
    members: list[NodeId] = Field(default_factory=list, max_length=MAX_MEMBERS)
    quorum: Annotated[int, Field(strict=True, ge=1, le=MAX_MEMBERS)] | None = None  # majority
    heartbeat_interval: Milliseconds = 1000    # the failure detector's period
    election_timeout: Milliseconds = 200       # Raft's (randomized up to 2x)
    sync_strategy: StrategyName = "anti_entropy"
    partition_strategy: StrategyName = "majority_side"
    failover_strategy: StrategyName = "automatic"
    metadata: Annotated[dict[str, Any], BeforeValidator(_metadata)] = Field(default_factory=dict)

    @property
    def quorum_size(self) -> int:
        """Votes needed: ``quorum`` if set, else a majority of ``members``."""
        return self.quorum if self.quorum is not None else majority(len(self.members))

    def content(self) -> dict[str, Any]:
        """Every field except ``version`` (what a rollback restores)."""
        return self.model_dump(exclude={"version"})


FIELDS: tuple[str, ...] = tuple(ClusterConfig.model_fields)
ConfigInput = ClusterConfig | Mapping[str, Any]
KnownStrategies = Mapping[str, Collection[str]] | None


def _path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _convert(error: ValidationError) -> list[tuple[str, str]]:
    out = []
    for item in error.errors():
        ctx = item.get("ctx") or {}
        path = str(ctx.get("path") or _path(item["loc"]))
        if item["type"] == "extra_forbidden":
            key = str(item["loc"][-1])
            close = difflib.get_close_matches(key, FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"unknown key {key!r}{hint}; allowed keys: {', '.join(FIELDS)}"
        elif "message" in ctx:
            message = str(ctx["message"])
        else:
            shown = repr(item["input"])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            message = f"{item['msg']} (got {type(item['input']).__name__} {shown})"
        out.append((path, message))
    return out


def _strategy_names(known: KnownStrategies) -> dict[str, Collection[str]]:
    names: dict[str, Collection[str]] = dict(BUILTIN_STRATEGIES)
    for kind, collection in (known or {}).items():
        if kind not in STRATEGY_FIELDS:
            raise ValueError(f"unknown strategy kind {kind!r}; kinds: {', '.join(STRATEGY_FIELDS)}")
        names[kind] = collection
    return names


def _semantic(config: ClusterConfig, known: KnownStrategies,
              warnings: list[str], errors: list[tuple[str, str]]) -> None:
    members, n = config.members, len(config.members)
    duplicates = sorted({m for m in members if members.count(m) > 1})
    if duplicates:
        errors.append(("members", "duplicate member ids "
                       + ", ".join(map(repr, duplicates)) + "; list each node once"))
    if n == 0:
        warnings.append("members is empty: the cluster has no voting members yet")
    elif n % 2 == 0:
        warnings.append(f"{n} members tolerate no more failures than {n - 1}; "
                        "an odd member count is recommended")
    if config.quorum is not None:
        q, least = config.quorum, majority(n)
        if q > n:
            errors.append(("quorum", f"quorum {q} is larger than the {n} members: it could "
                           f"never be reached; use at most {n} or leave quorum unset"))
        elif q < least:
            errors.append(("quorum", f"quorum {q} is not a majority of {n} members: two "
                           f"disjoint groups could each reach it and elect two leaders "
                           f"(split brain); use at least {least} or leave quorum unset"))
        elif q == n > 1:
            warnings.append(f"quorum {q} equals the member count: any one member down "
                            "stops progress")
    for kind, names in _strategy_names(known).items():
        field = STRATEGY_FIELDS[kind]
        name = getattr(config, field)
        if ":" in name:
            warnings.append(f"{field} {name!r} is an import path; it is checked when loaded")
        elif name not in names:
            errors.append((field, f"unknown {kind} strategy {name!r}; available: "
                           + ", ".join(sorted(names))))


def check_config(config: ConfigInput, known_strategies: KnownStrategies = None
                 ) -> tuple[list[str], list[tuple[str, str]]]:
    """``(warnings, errors)`` for a config mapping or model; never raises on bad input.

    ``known_strategies`` maps kind (``sync``, ``partition``, ``failover``) to
    the installed names; kinds it omits use :data:`BUILTIN_STRATEGIES`.
    """
    _, warnings, errors = _parse(config, known_strategies)
    return warnings, errors


def _parse(config: Any, known: KnownStrategies
           ) -> tuple[ClusterConfig | None, list[str], list[tuple[str, str]]]:
    warnings: list[str] = []
    errors: list[tuple[str, str]] = []
    if isinstance(config, ClusterConfig):
        model = config
    elif isinstance(config, Mapping):
        bad = [key for key in config if not isinstance(key, str)]
        if bad:
            return None, warnings, [("", f"config keys are strings; got {bad[0]!r}")]
        try:
            model = ClusterConfig.model_validate(dict(config))
        except ValidationError as error:
            return None, warnings, _convert(error)
    else:
        return None, warnings, [("", f"a config is a mapping of keys to values, got "
                                     f"{type(config).__name__}")]
    _semantic(model, known, warnings, errors)
    return (None if errors else model), warnings, errors


def parse_config(config: ConfigInput, known_strategies: KnownStrategies = None
                 ) -> tuple[ClusterConfig, list[str]]:
    """The validated model and its warnings; raises ValidationFailed with every error."""
    model, warnings, errors = _parse(config, known_strategies)
    if model is None:
        raise ValidationFailed(errors)
    return model, warnings


def validate_config(config: ConfigInput, known_strategies: KnownStrategies = None) -> list[str]:
    """The warnings of a valid config; raises ValidationFailed listing every error."""
    return parse_config(config, known_strategies)[1]


def export_config(config: ClusterConfig) -> str:
    """Stable JSON text of ``config`` (field order, metadata order kept; 2-space indent)."""
    return json.dumps(config.model_dump(mode="json"), indent=2, allow_nan=False)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def import_config(text: str, known_strategies: KnownStrategies = None) -> ClusterConfig:
    """Parse and validate JSON made by :func:`export_config`; exact round trip.

    ``export_config(import_config(export_config(c))) == export_config(c)``.
    Raises ValidationFailed for malformed JSON, duplicate keys or an invalid config.
    """
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, TypeError) as error:
        raise ValidationFailed([("", f"not a valid config JSON document: {error}")]) from None
    return parse_config(data, known_strategies)[0]


class ChangeKind(str, Enum):
    INITIAL = "initial"
    SET = "set"
    ROLLBACK = "rollback"
    IMPORT = "import"
    SNAPSHOT = "snapshot"  # only in a ConfigChange: a whole store installed from a snapshot


class ConfigVersion(BaseModel):
    """One entry of the config history, and the unit a consensus log carries.

    ``config.version == version``; ``source_version`` is the version a
    rollback restored; ``at`` is the caller's timestamp, if any.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: PositiveInt
    kind: ChangeKind
    config: ClusterConfig
    changed_keys: tuple[str, ...] = ()
    source_version: int | None = None
    at: float | None = None

    @model_validator(mode="after")
    def _versions_agree(self) -> ConfigVersion:
        if self.config.version != self.version:
            raise ValueError(f"config.version {self.config.version} != version {self.version}")
        return self


@dataclass(frozen=True)
class ConfigChange:
    """What a mutation did, for the runtime to announce (hot reload)."""

    version: int
    kind: ChangeKind
    old: ClusterConfig
    new: ClusterConfig
    changed_keys: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    source_version: int | None = None


class ConfigNotFound(NotFound):
    """No such config key or version (the seed's ``{error, not_found}``)."""


def _changed(old: ClusterConfig, new: ClusterConfig) -> tuple[str, ...]:
    return tuple(f for f in FIELDS if f != "version" and getattr(old, f) != getattr(new, f))


class ConfigStore:
    """Versioned configuration of one node: current config plus kept history.

    Versions grow by one per applied change; ``max_history`` bounds the kept
    records (oldest dropped first; a dropped version cannot be rolled back to).
    Returned configs and records are copies: mutating them changes nothing.
    """

    def __init__(self, initial: ConfigInput | None = None, *,
                 known_strategies: KnownStrategies = None, max_history: int | None = 1000,
                 at: float | None = None, min_election_timeout: int = 10) -> None:
        """``min_election_timeout`` (ms): the running cluster's floor (3x its Raft
        heartbeat); a change or an import below it is refused like any invalid one."""
        if max_history is not None and max_history < 1:
            raise ValueError("max_history must be at least 1 or None")
        self._known = known_strategies
        self._min_election_timeout = min_election_timeout
        config, warnings = parse_config(initial if initial is not None else {}, known_strategies)
        self._check_limits(config)
        self.initial_warnings: tuple[str, ...] = tuple(warnings)
        self._records: deque[ConfigVersion] = deque(maxlen=max_history)
        self._records.append(ConfigVersion(version=config.version, kind=ChangeKind.INITIAL,
                                           config=config.model_copy(deep=True), at=at))

    # --- reading ---------------------------------------------------------

    @property
    def version(self) -> int:
        return self._records[-1].version

    @property
    def config(self) -> ClusterConfig:
        return self._records[-1].config.model_copy(deep=True)

    def get(self, key: str) -> Any:
        """A field (``"quorum"``), ``"version"``, or a metadata path (``"metadata.a.b"``).

        Raises :class:`ConfigNotFound` for anything else.
        """
        if not isinstance(key, str):
            raise ConfigNotFound(f"a config key is a string, got {type(key).__name__}; keys: "
                                 f"{', '.join(FIELDS)} or metadata.<name>")
        head, _, rest = key.partition(".")
        if head not in FIELDS or (rest and head != "metadata"):
            raise ConfigNotFound(f"no config key {key!r}; keys: {', '.join(FIELDS)} "
                                 "or metadata.<name>")
        value = getattr(self._records[-1].config, head)
        for part in rest.split(".") if rest else ():
            if not isinstance(value, dict) or part not in value:
                raise ConfigNotFound(f"no config key {key!r}: {part!r} is not in the metadata")
            value = value[part]
        return copy.deepcopy(value)

    def history(self) -> list[ConfigVersion]:
        """Kept versions, oldest first."""
        return [r.model_copy(deep=True) for r in self._records]

    def record(self, version: int) -> ConfigVersion:
        """The kept record of ``version``; raises ConfigNotFound."""
        found = self._find(version)
        if found is None:
            raise ConfigNotFound(f"config version {str(version)[:80]} is not kept; kept versions: "
                                 f"{self._records[0].version}..{self.version}")
        return found.model_copy(deep=True)

    def change_from(self, old: ClusterConfig) -> ConfigChange | None:
        """What replacing ``old`` by the current config changed (a store installed
        from a snapshot), as one :class:`ConfigChange`; None at the same version."""
        new = self._records[-1].config
        if new.version == old.version:
            return None
        return ConfigChange(new.version, ChangeKind.SNAPSHOT, old, new.model_copy(deep=True),
                            _changed(old, new))

    def validate(self, config: Mapping[str, Any]) -> list[str]:
        """The warnings of ``config``; raises ValidationFailed listing every error.
        Changes nothing. With a ``version`` key it is a whole config; without, the
        keys to change in the current one (as :meth:`prepare` takes them)."""
        if isinstance(config, Mapping) and "version" in config:
            model, warnings = parse_config(config, self._known)
            self._check_limits(model)
            return warnings
        return validate_config(self.prepare(config).config, self._known)

    def export_config(self) -> str:
        """The current config as JSON (see :func:`export_config`)."""
        return export_config(self._records[-1].config)

    # --- preparing (no change) -------------------------------------------

    def prepare(self, changes: Mapping[str, Any], *, at: float | None = None) -> ConfigVersion:
        """The next version with ``changes`` merged in; raises ValidationFailed.

        Keys are field names or ``metadata.<path>`` (sets one nested metadata
        value). ``version`` is assigned here and may not be given.
        """
        if not isinstance(changes, Mapping) or not changes:
            raise ValidationFailed([("", "give a non-empty mapping of config keys to values")])
        data = self._records[-1].config.model_dump()
        for key, value in changes.items():
            if key == "version":
                raise ValidationFailed([("version", "the version is assigned by the store; "
                                                    "leave it out")])
            head, _, rest = str(key).partition(".")
            if head == "metadata" and rest:
                self._set_path(data["metadata"], rest, value)
            else:
                data[str(key)] = value
        data["version"] = self.version + 1
        return self._record(data, ChangeKind.SET, at)

    def prepare_rollback(self, version: int, *, at: float | None = None) -> ConfigVersion:
        """A new version whose content equals kept version ``version``."""
        data = self.record(version).config.model_dump()
        data["version"] = self.version + 1
        return self._record(data, ChangeKind.ROLLBACK, at, source_version=version)

    def prepare_import(self, text: str, *, at: float | None = None) -> ConfigVersion:
        """A new version holding the imported JSON config (its version is reassigned)."""
        imported = import_config(text, self._known)
        data = imported.model_dump()
        data["version"] = self.version + 1
        return self._record(data, ChangeKind.IMPORT, at)

    # --- mutating ----------------------------------------------------------

    def apply(self, record: ConfigVersion | Mapping[str, Any]) -> ConfigChange | None:
        """Apply a prepared (or consensus-decided) record; versions in log order.

        A record of an already applied version with the same config is a replay:
        None is returned and nothing changes (also for versions too old to be
        kept). A different config under an applied version, or a gap, raises
        ValidationFailed. A decided record is applied even if this node's
        validation disagrees (e.g. a strategy not installed here): its
        objections come back as warnings.
        """
        if not isinstance(record, ConfigVersion):
            try:
                record = ConfigVersion.model_validate(record)
            except ValidationError as error:
                raise ValidationFailed(_convert(error)) from None
        current = self._records[-1]
        if record.version <= current.version:
            kept = self._find(record.version)
            if kept is None or kept.config == record.config:
                return None
            raise ValidationFailed([("version", f"version {record.version} is already applied "
                                     "with a different config; nothing was changed")])
        if record.version != current.version + 1:
            raise ValidationFailed([("version", f"version {record.version} does not follow "
                                     f"the current version {current.version}; apply versions "
                                     "in log order")])
        warnings, errors = check_config(record.config, self._known)
        warnings += [f"applied despite: {path}: {message}" for path, message in errors]
        record = record.model_copy(update={"changed_keys": _changed(current.config,
                                                                     record.config)}, deep=True)
        self._records.append(record)
        return ConfigChange(version=record.version, kind=record.kind,
                            old=current.config.model_copy(deep=True),
                            new=record.config.model_copy(deep=True),
                            changed_keys=record.changed_keys, warnings=tuple(warnings),
                            source_version=record.source_version)

    def propose(self, changes: Mapping[str, Any], *, at: float | None = None) -> ConfigChange:
        """Validate and apply ``changes`` as the next version."""
        return self._apply_new(self.prepare(changes, at=at))

    def set(self, key: str, value: Any, *, at: float | None = None) -> ConfigChange:
        """``propose({key: value})``."""
        if not isinstance(key, str):
            raise ValidationFailed([("key", f"a config key is a string, got "
                                            f"{type(key).__name__}")])
        return self.propose({key: value}, at=at)

    def rollback(self, version: int, *, at: float | None = None) -> ConfigChange:
        """Restore kept version ``version`` as a NEW version; raises ConfigNotFound."""
        return self._apply_new(self.prepare_rollback(version, at=at))

    def import_config(self, text: str, *, at: float | None = None) -> ConfigChange:
        """Import JSON as the next version; invalid input raises and changes nothing."""
        return self._apply_new(self.prepare_import(text, at=at))

    # --- internals ---------------------------------------------------------

    def _apply_new(self, record: ConfigVersion) -> ConfigChange:
        change = self.apply(record)
        assert change is not None  # a freshly prepared record is never a replay
        return change

    def _record(self, data: dict[str, Any], kind: ChangeKind, at: float | None,
                source_version: int | None = None) -> ConfigVersion:
        config, _ = parse_config(data, self._known)
        self._check_limits(config)
        return ConfigVersion(version=config.version, kind=kind, config=config,
                             changed_keys=_changed(self._records[-1].config, config),
                             source_version=source_version, at=at)

    def _check_limits(self, config: ClusterConfig) -> None:
        floor = getattr(self, "_min_election_timeout", 10)  # absent in old snapshots
        if config.election_timeout < floor:
            raise ValidationFailed([("election_timeout", f"{config.election_timeout} ms is below "
                                     f"this cluster's floor of {floor} ms (3x its Raft "
                                     "heartbeat, raft_heartbeat_ms): use at least that")])

    def _find(self, version: int) -> ConfigVersion | None:
        if isinstance(version, bool) or not isinstance(version, int):
            return None  # not a version number: none is kept under it
        offset = version - self._records[0].version
        if 0 <= offset < len(self._records):
            return self._records[offset]
        return None

    @staticmethod
    def _set_path(metadata: dict[str, Any], path: str, value: Any) -> None:
        *parents, leaf = path.split(".")
        node: Any = metadata
        for depth, part in enumerate(["metadata", *parents]):
            if depth:
                node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValidationFailed([(f"metadata.{path}", f"{part!r} is not an object; "
                                         "set the whole value instead")])
        node[leaf] = value


__all__ = [
    "BUILTIN_STRATEGIES",
    "FIELDS",
    "STRATEGY_FIELDS",
    "ChangeKind",
    "ClusterConfig",
    "ConfigChange",
    "ConfigNotFound",
    "ConfigStore",
    "ConfigVersion",
    "check_config",
    "check_json",
    "check_metadata",
    "export_config",
    "import_config",
    "parse_config",
    "validate_config",
]
