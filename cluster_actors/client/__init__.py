"""Blocking clients: the component clients and their event subscriptions (``components``),
the batching KV client (``kv``), the coordinator, configuration and CRDT store clients
(``coordinator``, ``config``, ``data``).

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

__all__ = [
    "DEFAULT_TIMEOUT",
    "ComponentClient",
    "Event",
    "KVClient",
    "MonitorClient",
    "Subscription",
    "unwrap",
]
