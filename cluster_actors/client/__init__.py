"""Blocking clients: the session with the leader that the KV client and the recipes share
(``session``, with the pushed leader in ``leader_watch``), the KV client (``kv``, ``watch``),
the component clients and their event subscriptions (``components``), the coordinator,
configuration and CRDT store clients (``coordinator``, ``config``, ``data``).

Re-exports what the module ``cluster_actors.client`` exported before it became this
package."""

from __future__ import annotations

from .components import (
    DEFAULT_TIMEOUT,
    ComponentClient,
    Event,
    MonitorClient,
    Subscription,
    unwrap,
)
from .kv import KVClient
from .session import LeaderSession

__all__ = [
    "DEFAULT_TIMEOUT",
    "ComponentClient",
    "Event",
    "KVClient",
    "LeaderSession",
    "MonitorClient",
    "Subscription",
    "unwrap",
]
