"""Names of a cluster's actors: ``<cluster>:<node>:<component>`` in the
namespace ``cluster_actors.<cluster>``."""

from __future__ import annotations

import re

from ..errors import ValidationFailed

COMPONENTS = ("coordinator", "membership", "heartbeat", "consensus", "sync", "monitor")
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is a usable cluster or node name, else raise
    ValidationFailed (a ValueError too)."""
    if not isinstance(value, str) or not _VALID.match(value):
        raise ValidationFailed([(kind, f"invalid {kind} name {value!r}: use 1-63 letters, "
                                       "digits, '_', '.' or '-', starting with a letter or "
                                       "digit")])
    return value


def namespace(cluster: str) -> str:
    return f"cluster_actors.{cluster}"


def actor_name(cluster: str, node: str, component: str) -> str:
    return f"{cluster}:{node}:{component}"


def node_supervisor_name(cluster: str, node: str) -> str:
    return f"{cluster}:{node}:supervisor"


def root_supervisor_name(cluster: str) -> str:
    return f"{cluster}:root"


def registry_name(cluster: str) -> str:
    return f"{cluster}:registry"


def host_name(cluster: str, node: str) -> str:
    """The actor that hosts all of a node's components (``per_node`` placement)."""
    return f"{cluster}:{node}:host"
