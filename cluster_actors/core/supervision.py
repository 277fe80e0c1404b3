"""OTP supervision decisions as a pure state machine.

:class:`SupervisorCore` knows the ordered child list of one supervisor, which
children are running, each child's restart type and the supervisor's restart
history. Told that a child exited (:meth:`SupervisorCore.child_exited`), it
answers what to do: a :class:`RestartPlan` (stop these siblings in reverse
start order, then start these children in start order) or :class:`Escalate`
(too many restarts: stop everything and let the parent decide).

Nothing here starts, stops or watches anything. The Ray shell
(``cluster_actors.runtime.supervisor``) carries plans out on actors; an
in-process shell (one actor hosting a node's components) can carry out the
same plans on objects. Time comes in as ``now`` (seconds on any monotonic
clock, the same clock for every call).

Semantics follow Erlang/OTP's ``supervisor`` module:

* restart types: ``permanent`` children are always restarted, ``transient``
  ones only after an abnormal exit (any reason other than ``"normal"`` or
  ``"shutdown"``), ``temporary`` ones never, and a temporary child that exits
  or is stopped by a restart plan is removed from the child list;
* strategies: ``one_for_one`` restarts the exited child only;
  ``one_for_all`` stops every other child and restarts all of them;
  ``rest_for_one`` stops and restarts the exited child and the children
  started after it. As in OTP, a child of the restarted range that was not
  running (terminated on request, or a transient child that ended normally)
  is started again too, because the range is restarted as a unit;
* intensity: every restart decision (one per exit, whatever the strategy)
  is recorded at ``now``; a restart at time ``t`` counts while
  ``t >= now - period``. When more than ``intensity`` restarts count, the
  decision is :class:`Escalate` instead of a plan, and the core refuses any
  further input: the supervisor is expected to stop its children and die;
* a child that cannot be placed any more (reason :data:`UNPLACEABLE`: the
  shell found that it can never start, say, the Ray node it is pinned to is
  gone) is left stopped whatever its restart type, nothing else is stopped
  or restarted, and it does not count against the intensity: retrying it
  could only fail, and counting the failures would make one lost machine
  take every sibling down with the supervisor. It stays in the child list
  (not running) until it is terminated, deleted or started again on request.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from cluster_actors.errors import ClusterError, ValidationFailed

#: Exit reasons after which a transient child is not restarted.
NORMAL_EXIT_REASONS: frozenset[str] = frozenset({"normal", "shutdown"})


#: Exit reason of a child that can never start again where it must run (see
#: the module doc): it is left stopped and not counted.
UNPLACEABLE = "unplaceable"


def is_normal_exit(reason: str) -> bool:
    """True if ``reason`` is an orderly end (``"normal"`` or ``"shutdown"``)."""
    return reason in NORMAL_EXIT_REASONS


class Restart(str, enum.Enum):
    """When a child that exited is started again."""

    PERMANENT = "permanent"  #: always
    TRANSIENT = "transient"  #: only after an abnormal exit
    TEMPORARY = "temporary"  #: never; the child is removed when it exits


class Strategy(str, enum.Enum):
    """Which children a restart involves."""

    ONE_FOR_ONE = "one_for_one"  #: the exited child only
    ONE_FOR_ALL = "one_for_all"  #: every child
    REST_FOR_ONE = "rest_for_one"  #: the exited child and those started after it


@dataclass(frozen=True, slots=True)
class SupervisorFlags:
    """How a supervisor restarts: the strategy and the restart intensity.

    More than ``intensity`` restarts within ``period`` seconds make the
    supervisor give up (escalate). ``intensity=0`` escalates on the first
    restart. Strings are accepted for ``strategy`` and converted.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 3
    period: float = 5.0

    def __post_init__(self) -> None:
        errors: list[tuple[str, str]] = []
        try:
            object.__setattr__(self, "strategy", Strategy(self.strategy))
        except ValueError:
            errors.append(("strategy", f"unknown strategy {self.strategy!r}; expected one of "
                           + ", ".join(s.value for s in Strategy)))
        if isinstance(self.intensity, bool) or not isinstance(self.intensity, int) \
                or self.intensity < 0:
            errors.append(("intensity", f"must be an integer >= 0, got {self.intensity!r}"))
        if isinstance(self.period, bool) or not isinstance(self.period, (int, float)) \
                or not self.period > 0:
            errors.append(("period", f"must be a number of seconds > 0, got {self.period!r}"))
        if errors:
            raise ValidationFailed(errors)


@dataclass(frozen=True, slots=True)
class RestartPlan:
    """What to do after ``child_id`` exited with ``reason``.

    Carry it out in this order: stop the children in ``stop`` (already in
    reverse start order; all were running), then start the children in
    ``restart`` (in start order). ``removed`` lists temporary children that
    the core dropped from the child list (the exited one and/or stopped
    siblings); they are not started again. An empty plan means: nothing to do.
    """

    child_id: str
    reason: str
    stop: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when nothing has to be stopped or started."""
        return not self.stop and not self.restart


@dataclass(frozen=True, slots=True)
class Escalate:
    """The restart intensity was exceeded: give up and let the parent decide.

    Stop the children in ``stop`` (every running child, in reverse start
    order), then terminate the supervisor abnormally. ``restarts`` is the
    number of restarts within the window, which exceeded ``intensity``.
    """

    child_id: str
    reason: str
    stop: tuple[str, ...]
    restarts: int
    intensity: int
    period: float


Decision = RestartPlan | Escalate


class SupervisorCore:
    """Restart decisions for one supervisor's ordered children.

    The shell reports facts (:meth:`child_started`, :meth:`child_exited`,
    :meth:`child_terminated`) and gets decisions back. After a
    :class:`RestartPlan` the core already counts the stopped siblings as not
    running; the shell reports :meth:`child_started` for each child it
    starts. A child that fails to start is reported as an exit (reason
    ``"start_failed"`` for example), which counts as a restart and yields the
    next decision.
    """

    def __init__(self, flags: SupervisorFlags,
                 children: Iterable[tuple[str, Restart | str]] = ()) -> None:
        self._flags = flags
        self._order: list[str] = []
        self._restart_type: dict[str, Restart] = {}
        self._running: set[str] = set()
        self._restart_times: list[float] = []  # oldest first
        self._escalated = False
        for child_id, restart in children:
            self.add_child(child_id, restart)

    # -- queries ---------------------------------------------------------

    @property
    def flags(self) -> SupervisorFlags:
        return self._flags

    @property
    def escalated(self) -> bool:
        """True once an :class:`Escalate` decision was returned."""
        return self._escalated

    @property
    def child_ids(self) -> tuple[str, ...]:
        """Every known child, in start order."""
        return tuple(self._order)

    def has_child(self, child_id: str) -> bool:
        return child_id in self._restart_type

    def restart_type(self, child_id: str) -> Restart:
        self._require_child(child_id)
        return self._restart_type[child_id]

    def is_running(self, child_id: str) -> bool:
        self._require_child(child_id)
        return child_id in self._running

    def running(self) -> tuple[str, ...]:
        """Running children in start order."""
        return tuple(c for c in self._order if c in self._running)

    def shutdown_order(self) -> tuple[str, ...]:
        """Running children in the order to stop them: reverse start order."""
        return tuple(reversed(self.running()))

    def restarts_in_window(self, now: float) -> int:
        """How many recorded restarts still count against the intensity at ``now``."""
        threshold = now - self._flags.period
        return sum(1 for t in self._restart_times if t >= threshold)

    # -- child list ------------------------------------------------------

    def add_child(self, child_id: str, restart: Restart | str) -> None:
        """Append a child (not running yet) at the end of the start order."""
        self._require_alive()
        if not isinstance(child_id, str) or not child_id:
            raise ValidationFailed([("id", f"a child id must be a non-empty string, got "
                                           f"{child_id!r}")])
        if child_id in self._restart_type:
            raise ValidationFailed([("id", f"a child with id {child_id!r} already exists")])
        try:
            restart_type = Restart(restart)
        except ValueError:
            raise ValidationFailed([("restart", f"unknown restart type {restart!r}; expected "
                                     + ", ".join(r.value for r in Restart))]) from None
        self._order.append(child_id)
        self._restart_type[child_id] = restart_type

    def remove_child(self, child_id: str) -> None:
        """Forget a child that is not running (OTP's ``delete_child``)."""
        self._require_child(child_id)
        if child_id in self._running:
            raise ClusterError(f"child {child_id!r} is running; terminate it before deleting it")
        self._order.remove(child_id)
        del self._restart_type[child_id]

    # -- facts from the shell --------------------------------------------

    def child_started(self, child_id: str) -> None:
        """The child was started and answered; it is now running."""
        self._require_alive()
        self._require_child(child_id)
        self._running.add(child_id)

    def child_terminated(self, child_id: str) -> None:
        """The child was stopped on request (not an exit: nothing is restarted).

        A temporary child is removed from the child list, as in OTP.
        """
        self._require_child(child_id)
        self._running.discard(child_id)
        if self._restart_type[child_id] is Restart.TEMPORARY:
            self.remove_child(child_id)

    def child_exited(self, child_id: str, reason: str, now: float) -> Decision:
        """The child ended on its own (or failed to start): decide what to do.

        ``reason`` is ``"normal"``/``"shutdown"`` for an orderly end and
        anything else (``"killed"``, ``"crashed"``, ``"start_failed"`` …) for
        an abnormal one; :data:`UNPLACEABLE` leaves the child stopped (an
        empty plan, not counted).
        """
        self._require_alive()
        self._require_child(child_id)
        self._running.discard(child_id)
        restart_type = self._restart_type[child_id]
        if restart_type is Restart.TEMPORARY:
            self.remove_child(child_id)
            return RestartPlan(child_id, reason, removed=(child_id,))
        if reason == UNPLACEABLE:
            return RestartPlan(child_id, reason)
        if restart_type is Restart.TRANSIENT and is_normal_exit(reason):
            return RestartPlan(child_id, reason)

        self._restart_times = [t for t in self._restart_times
                               if t >= now - self._flags.period]
        self._restart_times.append(now)
        if len(self._restart_times) > self._flags.intensity:
            self._escalated = True
            stop = self.shutdown_order()
            self._running.clear()
            return Escalate(child_id, reason, stop, len(self._restart_times),
                            self._flags.intensity, self._flags.period)
        return self._plan(child_id, reason)

    # -- internals ---------------------------------------------------------

    def _plan(self, child_id: str, reason: str) -> RestartPlan:
        strategy = self._flags.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return RestartPlan(child_id, reason, restart=(child_id,))
        position = self._order.index(child_id)
        affected = list(self._order) if strategy is Strategy.ONE_FOR_ALL \
            else self._order[position:]
        stop = tuple(c for c in reversed(affected) if c in self._running)
        removed = tuple(c for c in affected
                        if c != child_id and self._restart_type[c] is Restart.TEMPORARY)
        for c in stop:
            self._running.discard(c)
        for c in removed:
            self.remove_child(c)
        restart = tuple(c for c in affected if c not in removed)
        return RestartPlan(child_id, reason, stop=stop, restart=restart, removed=removed)

    def _require_child(self, child_id: str) -> None:
        if child_id not in self._restart_type:
            raise ValidationFailed([("id", f"no child with id {child_id!r}; known: "
                                           + (", ".join(self._order) or "none"))])

    def _require_alive(self) -> None:
        if self._escalated:
            raise ClusterError("this supervisor has escalated (restart intensity exceeded); "
                               "it takes no more input: its parent restarts it")


__all__ = [
    "NORMAL_EXIT_REASONS",
    "UNPLACEABLE",
    "Decision",
    "Escalate",
    "Restart",
    "RestartPlan",
    "Strategy",
    "SupervisorCore",
    "SupervisorFlags",
    "is_normal_exit",
]
