"""Plug-in failover, partition and sync strategies for cluster_actors.

A strategy is found by name among the entry points of its kind's group
(``cluster_actors.failover``, ``cluster_actors.partition``,
``cluster_actors.sync``), so a third party adds one by installing a package
that declares, in its ``pyproject.toml``::

    [project.entry-points."cluster_actors.partition"]
    down_all = "my_package:DownAll"

An import path ``"package.module:Class"`` also works without any entry point.
Whatever is loaded is validated against the kind's abstract class
(:class:`~strategies.base.FailoverStrategy`,
:class:`~strategies.base.PartitionStrategy`, :class:`~strategies.base.SyncStrategy`)
before it is used. Every failure raises
:class:`~cluster_actors.errors.ValidationFailed` (an unknown name raises its
subclass :class:`~cluster_actors.errors.UnknownStrategy`, whose message lists
the available names) and changes nothing.

>>> import strategies
>>> strategies.available("partition")
['auto_merge', 'leader_side', 'majority_side', 'manual', 'quorum_side']
>>> strategies.load("partition", "quorum_side", quorum_size=3)
QuorumSide(stable_after=5.0, quorum_size=3)

Entry point look-ups are cached per kind; :func:`refresh` forgets them (after
installing a package into a running interpreter).
"""

from __future__ import annotations

import importlib
import inspect
import re
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from cluster_actors.errors import UnknownStrategy, ValidationFailed

from .base import FailoverStrategy, PartitionStrategy, SyncStrategy

__all__ = [
    "KINDS",
    "available",
    "base_class",
    "check_name",
    "entry_point_group",
    "is_import_path",
    "known_strategies",
    "load",
    "load_class",
    "refresh",
]

KINDS: tuple[str, ...] = ("failover", "partition", "sync")
"""The strategy kinds, in the order the config lists them."""

_BASES: dict[str, type] = {
    "failover": FailoverStrategy, "partition": PartitionStrategy, "sync": SyncStrategy}

_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")

_cache: dict[str, dict[str, tuple[EntryPoint, ...]]] = {}


def entry_point_group(kind: str) -> str:
    """The entry point group of ``kind``: ``cluster_actors.<kind>``."""
    _check_kind(kind)
    return f"cluster_actors.{kind}"


def base_class(kind: str) -> type:
    """The abstract class every strategy of ``kind`` must subclass."""
    _check_kind(kind)
    return _BASES[kind]


def refresh() -> None:
    """Forget the cached entry points, so newly installed plug-ins are seen."""
    _cache.clear()
    importlib.invalidate_caches()


def available(kind: str) -> list[str]:
    """The names of the installed strategies of ``kind``, sorted."""
    return sorted(_entry_points(kind))


def known_strategies() -> dict[str, list[str]]:
    """``{kind: available(kind)}`` for every kind (what config validation accepts)."""
    return {kind: available(kind) for kind in KINDS}


def is_import_path(name: str) -> bool:
    """True if ``name`` has the form ``"package.module:Class"``."""
    return ":" in name


def check_name(kind: str, name: str) -> None:
    """Raise unless ``name`` is an installed strategy of ``kind`` or a loadable import path.

    An import path is imported and validated (as :func:`load_class` does), so
    a typo in it is caught before it reaches a running cluster.
    """
    load_class(kind, name)


def load_class(kind: str, name_or_path: str | type) -> type:
    """The strategy class for ``name_or_path``, validated against ``base_class(kind)``.

    ``name_or_path`` is an entry point name (``"majority_side"``), an import
    path (``"package.module:Class"``), or a class. Raises
    :class:`~cluster_actors.errors.UnknownStrategy` for an unknown name and
    :class:`~cluster_actors.errors.ValidationFailed` for an unknown kind, a
    malformed or failing import path, or a class that is not a concrete
    subclass of the kind's abstract class.
    """
    field = f"{_check_kind(kind)}_strategy"
    if isinstance(name_or_path, type):
        return _validated(kind, name_or_path, name_or_path.__qualname__)
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ValidationFailed([(field, f"a {kind} strategy is a name or "
                                 f"'package.module:Class', got {name_or_path!r}")])
    if is_import_path(name_or_path):
        return _validated(kind, _import(field, name_or_path), name_or_path)
    found = _entry_points(kind).get(name_or_path)
    if not found:
        raise UnknownStrategy(kind, name_or_path, available(kind))
    if len({ep.value for ep in found}) > 1:
        where = "; ".join(f"{_dist_name(ep)} -> {ep.value}" for ep in found)
        raise ValidationFailed([(field, f"{kind} strategy {name_or_path!r} is registered by "
                                 f"more than one package ({where}); uninstall one or use "
                                 "an import path 'package.module:Class'")])
    try:
        obj = found[0].load()
    except Exception as error:  # a broken plug-in must not take the caller down
        raise ValidationFailed([(field, f"{kind} strategy {name_or_path!r} "
                                 f"({found[0].value}) failed to import: "
                                 f"{type(error).__name__}: {error}")]) from error
    return _validated(kind, obj, name_or_path)


def load(kind: str, name_or_path: str | type, **options: Any) -> Any:
    """An instance of the strategy ``name_or_path`` of ``kind``, built with ``options``.

    See :func:`load_class` for the accepted names and errors; unknown options
    or bad values raise :class:`~cluster_actors.errors.ValidationFailed` from
    the strategy's constructor, naming the valid options.
    """
    return load_class(kind, name_or_path)(**options)


# ---------------------------------------------------------------------------


def _check_kind(kind: str) -> str:
    if kind not in _BASES:
        raise ValidationFailed([("kind", f"unknown strategy kind {kind!r}; kinds: "
                                 + ", ".join(KINDS))])
    return kind


def _entry_points(kind: str) -> dict[str, tuple[EntryPoint, ...]]:
    group = entry_point_group(kind)
    if kind not in _cache:
        found: dict[str, list[EntryPoint]] = {}
        for ep in entry_points(group=group):
            found.setdefault(ep.name, []).append(ep)
        _cache[kind] = {name: tuple(eps) for name, eps in found.items()}
    return _cache[kind]


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "an unknown package"


def _import(field: str, path: str) -> Any:
    if not _IMPORT_PATH.match(path):
        raise ValidationFailed([(field, f"malformed import path {path!r}: use "
                                 "'package.module:Class'")])
    module_name, _, attr_path = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as error:
        raise ValidationFailed([(field, f"cannot import module {module_name!r} for {path!r}: "
                                 f"{type(error).__name__}: {error}")]) from error
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as error:
            raise ValidationFailed([(field, f"{path!r}: {module_name!r} has no attribute "
                                     f"{attr_path!r}")]) from error
    return obj


def _validated(kind: str, obj: Any, label: str) -> type:
    field = f"{kind}_strategy"
    base = _BASES[kind]
    if not isinstance(obj, type) or not issubclass(obj, base):
        what = obj.__qualname__ if isinstance(obj, type) else type(obj).__name__ + " object"
        raise ValidationFailed([(field, f"{label!r} is {what}, not a {base.__name__} subclass: "
                                 f"a {kind} strategy must subclass strategies.base."
                                 f"{base.__name__}")])
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise ValidationFailed([(field, f"{label!r} ({obj.__qualname__}) is abstract: it "
                                 f"does not implement {missing}")])
    if getattr(obj, "kind", kind) != kind:
        raise ValidationFailed([(field, f"{label!r} declares kind {obj.kind!r}, "
                                 f"expected {kind!r}")])
    return obj
