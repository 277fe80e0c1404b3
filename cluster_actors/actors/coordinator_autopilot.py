"""The leader coordinator's autopilot (``ClusterOptions(voters=N)``): each health
round it observes the voters, learners and how long each member has been
unreachable, asks :func:`~cluster_actors.core.autopilot.plan` for one
membership change and makes it through its consensus actor (in a task, one at
a time; a failed change is planned again next round). Published as an
``autopilot`` event with the ``changes``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.autopilot import Observation, down_durations, plan
from ..runtime.calls import task_cause

logger = logging.getLogger(__name__)

#: A learner within this many entries of the commit index counts as caught up.
CATCH_UP_SLACK = 50


class AutopilotRunner:
    """Mixin of the coordinator; it uses the coordinator's view and consensus calls."""

    node_id: str
    options: Any
    view: Any
    events: Any
    _consensus_call: Callable[..., Awaitable[Any]]

    def _init_autopilot(self) -> None:
        self._down_since: dict[str, float] = {}
        self._autopilot_task: asyncio.Task[None] | None = None

    def _run_autopilot(self) -> None:
        """One round (called after each health round's view update)."""
        if self.options.voters is None:
            return
        view, status = self.view, self.view.status
        members = set(view.voters) | set(view.learners)
        self._down_since, down_for = down_durations(
            self._down_since, sorted(members - view.reachable), time.monotonic())
        if status.get("role") != "leader" or (
                self._autopilot_task is not None and not self._autopilot_task.done()):
            return
        commit, progress = status.get("commit", 0), status.get("progress") or {}
        caught_up = frozenset(n for n in view.learners
                              if (progress.get(n) or {}).get("match", -1) + CATCH_UP_SLACK
                              >= commit)
        seen = Observation(self.node_id, frozenset(view.voters), frozenset(view.learners),
                           down_for, caught_up, joint=bool(status.get("voters_outgoing")))
        changes = plan(seen, self.options.voters, self.options.voter_grace_ms / 1000)
        if changes:
            self._autopilot_task = asyncio.ensure_future(self._change(changes))

    async def _change(self, changes: list[tuple[str, str]]) -> None:
        try:
            result = await self._consensus_call("change_membership", changes)
        except Exception as error:
            logger.warning("coordinator of %s: autopilot change %s failed: %s", self.node_id,
                           changes, task_cause(error))
            return
        logger.info("coordinator of %s: autopilot made %s", self.node_id, changes)
        self.events.publish("autopilot", changes=[list(c) for c in changes],
                            voters=result.get("voters"), learners=result.get("learners"))
