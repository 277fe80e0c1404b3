"""``ConfigClient``: the seed's Configuration API for one node, as blocking calls.

The replicated configuration lives in every node's consensus state machine;
changes are validated, then committed through Raft by the node's coordinator
(forwarded to the leader), so this client talks to the coordinator::

    config = cluster.node("n1").config
    config.get_config()                      # the whole config, as applied on n1
    config.get_config("quorum")              # one key; metadata paths: "metadata.team"
    config.validate_config({"quorum": 9})    # raises ValidationFailed, proposes nothing
    version = config.set_config("sync_strategy", "merkle_tree")
    config.subscribe_changes(print)          # each committed change, as applied on n1
    config.rollback(version - 1)             # the old content as a new version

Reading an unknown key raises :class:`~cluster_actors.core.config.ConfigNotFound`
(``code == "not_found"``); setting one, or an invalid value, raises
:class:`~cluster_actors.errors.ValidationFailed` with field paths, and changes
nothing on any node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.limits import check_timeout
from ..errors import ValidationFailed
from .components import DEFAULT_TIMEOUT, ComponentClient, Event, Subscription

#: The event a committed configuration change publishes on every node.
CHANGE_EVENT = "config_changed"


class ConfigClient(ComponentClient):
    """Blocking calls of the seed's Configuration API on ``node_id`` (see the module doc)."""

    def __init__(self, cluster: str, node_id: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(cluster, node_id, "coordinator", timeout)

    def _seconds(self, timeout: float | None) -> float:
        return self._timeout if timeout is None else timeout

    def get_config(self, key: str | None = None) -> Any:
        """The whole configuration (a dict), or the value of ``key``."""
        return self.call("get_config", key)

    def set_config(self, key: str, value: Any, options: dict[str, Any] | None = None) -> int:
        """Change one key through consensus; the new version. ``options``:
        ``require_approval`` (wait for ``approve_config`` on this node), ``timeout``."""
        if options is not None and not isinstance(options, dict):
            raise ValidationFailed([("options", "a dict with require_approval and/or timeout, "
                                                f"got {type(options).__name__}")])
        seconds = self._seconds((options or {}).get("timeout"))
        return int(self.call("set_config", key, value, options, timeout=check_timeout(seconds) + 5.0))

    def validate_config(self, config: dict[str, Any]) -> list[str]:
        """Warnings of ``config`` (whole, with ``version``, or the keys to change);
        raises ValidationFailed listing every error."""
        return list(self.call("validate_config", config))

    def get_version(self) -> int:
        return int(self.call("get_version"))

    def rollback(self, version: int, timeout: float | None = None) -> int:
        """Restore kept ``version``'s content as a new version (returned)."""
        seconds = self._seconds(timeout)
        return int(self.call("rollback", version, seconds, timeout=check_timeout(seconds) + 5.0))

    def export_config(self) -> str:
        return str(self.call("export_config"))

    def import_config(self, text: str, timeout: float | None = None) -> int:
        """Replicate a config exported as JSON as the next version (returned)."""
        seconds = self._seconds(timeout)
        return int(self.call("import_config", text, seconds, timeout=check_timeout(seconds) + 5.0))

    def get_history(self) -> list[dict[str, Any]]:
        """Kept versions, oldest first: ``version``, ``kind``, ``config``,
        ``changed_keys``, ``source_version``, ``at``."""
        return list(self.call("get_history"))

    def subscribe_changes(self, subscriber: Callable[[Event], Any] | Any
                          ) -> Subscription | None:
        """Each committed change as this node applies it (a ``config_changed``
        event: ``version``, ``kind``, ``changed_keys``). A callable gets it from a
        daemon thread (returns the Subscription); a Ray actor handle gets it
        pushed to ``on_event``."""
        return self._subscribe("subscribe_events", subscriber, [CHANGE_EVENT])

    def unsubscribe_changes(self, subscriber: Callable[[Event], Any] | Any) -> bool:
        return self._unsubscribe("unsubscribe_events", subscriber)

    def __repr__(self) -> str:
        return f"<ConfigClient of {self._cluster}:{self._node_id}>"


__all__ = ["CHANGE_EVENT", "ConfigClient"]
