"""The coordinator's configuration commands: read, propose (optionally held for
approval), approve, roll back and import the replicated configuration.

Reads run where the replicated :class:`~cluster_actors.core.config.ConfigStore`
lives (``consensus.query_config``), on this node. A change goes to the leader's
consensus actor in one call (``submit_config``): it is validated and prepared
against the leader's store there (invalid:
:class:`~cluster_actors.errors.ValidationFailed` with field paths, nothing is
proposed), then committed as one session command (``(client_id, seq)``, the
same seq on every retry, so it applies at most once). With no leader known it
is validated against this node's store first, so bad input fails at once. A
change that lost its version to a concurrent one is prepared again, up to
:data:`CONFIG_ATTEMPTS` times. The leader is the one this node's event stream
last named (no lookup call); a stale one answers NotLeader and is asked for.
Plain kv writes are not forwarded like this: a follower answers them with
:class:`~cluster_actors.errors.NotLeader`.

**Hot reload.** When this node applies a change to a key in :data:`HOT_KEYS`,
when the coordinator starts and when its heartbeat sibling restarts, it adopts
the applied config: the failover and partition strategies switch, and the
heartbeat actor gets ``heartbeat_interval`` (a fresh one runs the options'
period), and ``quorum`` becomes the quorum this coordinator and the membership
actor report (Raft itself commits by majority). The consensus actor adopts
``election_timeout`` itself, and the sync actor ``sync_strategy``. ``members``
is recorded, not enacted: Raft's membership changes through
``join_cluster``/``leave_cluster``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ray.exceptions import RayActorError

from ..core.config import ConfigChange, ConfigStore, ConfigVersion
from ..core.kv import shown
from ..core.limits import check_node_id, check_timeout
from ..core.quorum import majority
from ..errors import ClusterError, CoordinationTimeout, NotFound, NotLeader, ValidationFailed
from ..runtime.calls import bounded, task_cause
from ..telemetry.tracing import config_change_span

logger = logging.getLogger(__name__)

#: Attempts to commit a config change that lost its version to a concurrent one.
CONFIG_ATTEMPTS = 5
#: Config keys whose change the coordinator carries out (see the module doc).
HOT_KEYS = frozenset({"failover_strategy", "partition_strategy", "heartbeat_interval",
                      "quorum"})
#: Config keys a sibling runs: its component and how to hand it the value.
SIBLING_SETTINGS: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "heartbeat_interval": ("heartbeat",
                           lambda handle, ms: handle.configure.remote("heartbeat_interval", ms)),
    "quorum": ("membership", lambda handle, quorum: handle.set_quorum.remote(quorum)),
}
#: Seconds before adopting again when a sibling could not take a setting.
ADOPTION_RETRY_SECONDS = 0.5


class ConfigCommands:
    """Mixin of :class:`~cluster_actors.actors.coordinator.CoordinatorActor`; it
    uses the coordinator's leader lookup, consensus calls and lifecycle."""

    # provided by the coordinator
    node_id: str
    events: Any
    view: Any
    _peer_handles: dict[str, Any]
    _stats: dict[str, int]
    options: Any
    _consensus_call: Callable[..., Awaitable[Any]]
    _leader_handle: Callable[..., Awaitable[tuple[str, Any]]]
    _reconcile: Callable[[], None]
    _switch_strategy: Callable[[str, str], None]
    sibling: Callable[[str], Any]

    def _init_config_commands(self) -> None:
        #: ids of the replicated proposals awaiting approval, as last seen here
        self._pending: set[int] = set()
        self._client_id = f"coordinator-{self.node_id}-{uuid.uuid4().hex[:10]}"
        self._seq = itertools.count(1)
        self._config_lock = asyncio.Lock()
        #: the config's ``heartbeat_interval``: this coordinator's health round period
        self.heartbeat_interval_ms: int = self.options.heartbeat_interval
        #: the config's ``quorum`` as used here (None, a majority, where it is unsafe)
        self.quorum_setting: int | None = self.options.quorum
        self._pushed: dict[str, tuple[str, Any]] = {}  # key -> (sibling actor id, value)
        self._adoptions: set[asyncio.Future[None]] = set()  # referenced until done
        self._adoption_lock = asyncio.Lock()  # one adoption at a time, each reads afresh
        self._adoption_failures = 0
        self._retry: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ hot reload
    def _spawn_config_adoption(self) -> None:
        """Adopt the applied config (in a task: reading it is a call)."""
        self._retry = None
        task = asyncio.ensure_future(self._adopt_config())
        self._adoptions.add(task)
        task.add_done_callback(self._adoptions.discard)

    async def _adopt_config(self) -> None:
        async with self._adoption_lock:
            try:
                config = await self._query_config(lambda store: store.config)
            except Exception as error:  # consensus still starting or restarting
                self._retry_adoption("reading the config", error)
                return
            self._switch_strategy("failover", config.failover_strategy)
            self._switch_strategy("partition", config.partition_strategy)
            self.heartbeat_interval_ms = config.heartbeat_interval
            self.quorum_setting = self._safe_quorum(config.quorum)
            await self._push("heartbeat_interval", config.heartbeat_interval)
            await self._push("quorum", self.quorum_setting)

    def _safe_quorum(self, quorum: int | None) -> int | None:
        """``quorum``, or None (a majority) where it is unsafe for the voters Raft
        has now: the config's ``members`` are recorded at start and not kept in
        step with joins and leaves, so a quorum valid for them may not be."""
        voters = len(self.view.voters)
        if quorum is None or not voters or majority(voters) <= quorum <= voters:
            return quorum
        logger.warning("coordinator of %s: the configured quorum %s is unsafe for %s voters "
                       "(split brain or never reached); using a majority", self.node_id,
                       quorum, voters)
        return None

    def _retry_adoption(self, what: str, error: BaseException) -> None:
        """Adopt again in a moment (logged once per ten failures)."""
        self._adoption_failures += 1
        if self._adoption_failures % 10 == 1:
            logger.warning("coordinator of %s: %s failed, retrying: %s", self.node_id, what,
                           error)
        if self._retry is None:  # one retry at a time, however many adoptions failed
            self._retry = asyncio.get_running_loop().call_later(ADOPTION_RETRY_SECONDS,
                                                                self._spawn_config_adoption)

    async def _push(self, key: str, value: Any) -> None:
        """Give the sibling that runs ``key`` (see :data:`SIBLING_SETTINGS`) the
        config's ``value``, unless that actor has it already: pushed to it before
        or, for a fresh actor, the option of the same name it starts from. On a
        failure (still starting, restarting) adoption is tried again soon."""
        component, setter = SIBLING_SETTINGS[key]
        try:
            handle = self.sibling(component)
        except ClusterError:
            return  # not installed, or restarting: adopted when it is back
        actor = handle._actor_id.hex()
        pushed = self._pushed.get(key)
        fresh = pushed is None or pushed[0] != actor
        if pushed == (actor, value) or (fresh and value == getattr(self.options, key)):
            self._pushed[key] = (actor, value)
            return
        try:
            await bounded(setter(handle, value))
        except Exception as error:
            self._retry_adoption(f"{component}: {key}={value!r}", task_cause(error))
            return
        self._pushed[key] = (actor, value)
        self.events.publish("config_adopted", component=component, key=key, value=value)

    # --------------------------------------------------------------- commands
    async def get_config(self, key: str | None = None) -> Any:
        """This node's replicated configuration (as applied locally), or the value
        of one ``key``: a field, ``version`` or ``metadata.<path>``; an unknown key
        raises :class:`~cluster_actors.core.config.ConfigNotFound` (``not_found``)."""
        if key is None:
            return await self._query_config(lambda store: store.config.model_dump(mode="json"))
        return await self._query_config(lambda store: store.get(key))

    async def get_version(self) -> int:
        """The version of the configuration applied on this node."""
        return await self._query_config(lambda store: store.version)

    async def validate_config(self, config: dict[str, Any]) -> list[str]:
        """The warnings of ``config`` (a whole config with ``version``, or the keys
        to change); raises :class:`ValidationFailed` listing every error. Proposes
        nothing."""
        return await self._query_config(lambda store: store.validate(config))

    async def set_config(self, key: str, value: Any,
                         options: dict[str, Any] | None = None) -> int:
        """``propose_config({key: value}, **options)``: the version it got.
        ``options``: ``require_approval`` (bool), ``timeout`` (s)."""
        if not isinstance(key, str):
            raise ValidationFailed([("key", f"a config key is a field name or "
                                            f"'metadata.<path>' string, got {type(key).__name__}")])
        if options is not None and not isinstance(options, dict):
            raise ValidationFailed([("options", "a dict with require_approval and/or timeout, "
                                                f"got {type(options).__name__}")])
        options = dict(options or {})
        unknown = sorted(map(shown, set(options) - {"require_approval", "timeout"}))
        if unknown:
            raise ValidationFailed([("options", f"unknown option(s) {', '.join(unknown)}; "
                                     "valid: require_approval, timeout")])
        return await self.propose_config({key: value}, **options)

    async def get_config_history(self) -> list[dict[str, Any]]:
        """Kept versions, oldest first (also :meth:`get_history`)."""
        return await self._query_config(
            lambda store: [r.model_dump(mode="json") for r in store.history()])

    async def get_history(self) -> list[dict[str, Any]]:
        return await self.get_config_history()

    async def rollback(self, version: int, timeout: float = 10.0) -> int:
        """The seed's name for :meth:`rollback_config`."""
        return await self.rollback_config(version, timeout)

    async def export_config(self) -> str:
        return await self._query_config(lambda store: store.export_config())

    async def propose_config(self, new_config: dict[str, Any], require_approval: bool = False,
                             timeout: float = 10.0) -> int:
        """Validate, then replicate a config change; returns its version.

        ``new_config`` holds the keys to change. It is validated against the
        replicated store before anything is proposed (:class:`ValidationFailed`
        with field paths; nothing changes on any node). The prepared
        record is then committed through consensus; on a follower the
        coordinator forwards it to the leader's consensus actor (plain kv
        writes are not forwarded: they raise :class:`NotLeader`).

        With ``require_approval`` the change is replicated as a *pending
        proposal* instead (it survives restarts of any coordinator) and applies
        once a quorum of the voters approved it with :meth:`approve_config`
        on their own nodes; the returned id is the version it gets if approved
        before any other change. While proposals are pending every node's
        lifecycle is ``voting``.
        """
        def prepare(store: ConfigStore) -> ConfigVersion:
            return store.prepare(new_config)

        if not require_approval:
            return await self._commit_config(prepare, timeout)
        await self._query_config(prepare)  # validate first, locally
        action = {"action": "propose", "kind": "config", "subject": dict(new_config),
                  "proposer": self.node_id, "electorate": sorted(self.view.voters),
                  "quorum": self.quorum_setting}

        def propose(sm: Any) -> tuple[str, dict[str, Any]]:
            sm.config.prepare(new_config)  # still valid on the leader's store?
            return "approval", action

        proposal = (await self._commit_approval(propose, timeout))["proposal"]
        self.events.publish("config_proposed", version=proposal["id"],
                            changes=dict(new_config), needed=proposal["needed"],
                            electorate=proposal["electorate"])
        self._note_pending(proposal["id"], pending=True)
        return int(proposal["id"])

    async def approve_config(self, version: int, approve: bool = True,
                             timeout: float = 10.0, voter: str | None = None) -> int | None:
        """This node's vote on pending config proposal ``version`` (cast once
        per voter; a second vote replaces the first). The vote that completes
        the quorum applies the change in the same log entry and returns the
        version it got; otherwise None (still pending, or rejected once
        approval is out of reach). ``voter`` may only name this node: vote on
        a node's own coordinator. Raises NotFound for no such pending proposal,
        ValidationFailed when this node is not among its voters or the change
        no longer validates (it stays pending: reject it)."""
        result = await self._vote(version, "config", approve, timeout, voter)
        change = result["change"]
        return change.version if isinstance(change, ConfigChange) else None

    async def approve_join(self, node: str, timeout: float = 10.0) -> dict[str, Any]:
        """This node's approval of ``node``'s pending join (see ``join_approval``);
        returns the proposal as it now stands. NotFound if no join is pending."""
        return (await self._vote(await self._join_proposal(node), "join", True,
                                 timeout))["proposal"]

    async def reject_join(self, node: str, reason: str = "",
                          timeout: float = 10.0) -> dict[str, Any]:
        """This node's rejection of ``node``'s pending join; the proposal as it now stands."""
        return (await self._vote(await self._join_proposal(node), "join", False, timeout,
                                 reason=reason))["proposal"]

    async def _join_proposal(self, node: str) -> int:
        check_node_id(node)

        def find(sm: Any) -> int | None:
            proposal = sm.approvals.join_of(node)
            return proposal.id if proposal is not None and proposal.status == "pending" \
                else None

        found = await self._leader_read(find)
        if found is None:
            raise NotFound(f"no pending join of {node!r}")
        return int(found)

    async def _vote(self, proposal_id: int, kind: str, approve: bool, timeout: float,
                    voter: str | None = None, reason: str = "") -> dict[str, Any]:
        _check_proposal_id(proposal_id)
        if voter not in (None, self.node_id):
            raise ValidationFailed([("voter", f"this coordinator votes as {self.node_id}; "
                                              f"cast {voter!r}'s vote on its own node")])
        me = self.node_id

        def prepare(sm: Any) -> tuple[str, dict[str, Any]]:
            after = sm.approvals.after_vote(proposal_id, me, bool(approve))
            if after.kind != kind:
                raise ValidationFailed([("version", f"proposal {proposal_id} is a "
                                                    f"{after.kind} proposal, not a {kind} one")])
            record = None
            if after.status == "approved" and kind == "config":
                record = sm.config.prepare(after.subject).model_dump(mode="json")
            return "approval", {"action": "vote", "id": proposal_id, "voter": me,
                                "approve": bool(approve), "record": record}

        result = await self._commit_approval(prepare, timeout)
        proposal, change = result["proposal"], result["change"]
        self.events.publish("proposal_voted", id=proposal_id, kind=kind, voter=me,
                            approve=bool(approve), status=proposal["status"], reason=reason)
        if proposal["status"] != "pending":
            self.events.publish("config_decided" if kind == "config" else "join_decided",
                                version=proposal_id, approved=proposal["status"] == "approved",
                                committed_version=getattr(change, "version", None), voter=me,
                                subject=proposal["subject"])
        self._note_pending(proposal_id, pending=proposal["status"] == "pending")
        return result

    async def pending_proposals(self) -> list[dict[str, Any]]:
        """The replicated pending proposals (config changes and joins), oldest
        first: ``id``/``version``, ``kind``, ``subject``, ``electorate``,
        ``needed``, ``approvals``, ``rejections``, ``status``."""
        return await self._leader_read(
            lambda sm: [p.to_dict() for p in sm.approvals.pending.values()])

    async def get_proposal(self, proposal_id: int) -> dict[str, Any]:
        """A pending or recently decided proposal; NotFound if it is neither."""
        _check_proposal_id(proposal_id)

        def find(sm: Any) -> dict[str, Any] | None:
            proposal = sm.approvals.find(proposal_id)
            return proposal.to_dict() if proposal is not None else None

        found = await self._leader_read(find)
        if found is None:
            raise NotFound(f"no proposal {proposal_id!r} (pending or recently decided)")
        return found

    async def _leader_read(self, query: Callable[[Any], Any], timeout: float = 10.0) -> Any:
        """``query(state machine)`` read linearizably on the leader (ReadIndex):
        a vote acknowledged anywhere is seen, whichever node is asked."""
        deadline = time.monotonic() + timeout
        leader, handle = await self._leader_handle(deadline, known=self.view.leader)
        return await self._call_leader(
            lambda h, remaining: h.read_state.remote(query, remaining), leader, handle,
            deadline, "the leader did not confirm the read in time")

    def _note_pending(self, proposal_id: int, pending: bool) -> None:
        """Update the pending ids this node saw (the health round refreshes them)."""
        if pending:
            self._pending.add(proposal_id)
        else:
            self._pending.discard(proposal_id)
        self._reconcile()

    async def rollback_config(self, version: int, timeout: float = 10.0) -> int:
        """Restore kept version ``version`` as a new version (returned);
        raises ConfigNotFound (``not_found``) if it is not kept."""
        return await self._commit_config(lambda store: store.prepare_rollback(version), timeout)

    async def import_config(self, text: str, timeout: float = 10.0) -> int:
        """Replicate a config exported as JSON as the next version (returned)."""
        return await self._commit_config(lambda store: store.prepare_import(text), timeout)

    async def _query_config(self, query: Callable[[ConfigStore], Any], handle: Any = None,
                            timeout: float = 10.0) -> Any:
        """``query(store)`` run where the replicated config store lives: this
        node's consensus actor, or the one behind ``handle`` (e.g. the leader's)."""
        if handle is None:
            return await self._consensus_call("query_config", query)
        try:
            return await bounded(handle.query_config.remote(query), timeout)
        except asyncio.TimeoutError:
            raise CoordinationTimeout("the leader did not answer a config query in time; "
                                      "retry") from None
        except Exception as error:
            raise task_cause(error) from None

    async def _commit_config(self, prepare: Callable[[ConfigStore], ConfigVersion],
                             timeout: float) -> int:
        """Prepare on the leader's store and commit through its consensus actor,
        in one call (``submit_config``: an invalid change raises there, before
        anything is proposed); prepare again when a concurrent change took the
        version. With no leader known, the change is validated here first, so
        invalid input fails at once instead of after waiting for an election."""
        deadline = time.monotonic() + check_timeout(timeout)
        async with self._config_lock:
            if self.view.leader is None:
                await self._query_config(prepare)
            result: Any = None
            for _ in range(CONFIG_ATTEMPTS):
                leader, handle = await self._leader_handle(deadline, known=self.view.leader)
                seq = next(self._seq)
                with config_change_span(self.node_id, None, self.view.term, leader=leader,
                                        forwarded=leader != self.node_id) as span:
                    version, result = await self._submit(prepare, seq, leader, handle,
                                                         deadline)
                    span.set_attribute("version", version)
                if isinstance(result, ConfigChange):
                    self._stats["config_committed"] += 1
                    self._stats["config_forwarded"] += leader != self.node_id
                    return result.version
                if result is None:  # the same record was already applied: a replay
                    return version
                self._stats["config_rejected"] += 1
            raise result if isinstance(result, Exception) else ClusterError(
                f"config change not committed after {CONFIG_ATTEMPTS} attempts: {result!r}")

    async def _commit_approval(self, prepare: Callable[[Any], Any], timeout: float
                               ) -> dict[str, Any]:
        """Commit the approval op ``prepare(state machine)`` builds on the leader
        (its raise leaves nothing proposed and is re-raised here); prepared again
        when a concurrent change made the committed one not fit."""
        deadline = time.monotonic() + check_timeout(timeout)
        async with self._config_lock:
            result: Any = None
            for _ in range(CONFIG_ATTEMPTS):
                leader, handle = await self._leader_handle(deadline, known=self.view.leader)
                _, result = await self._submit(prepare, next(self._seq), leader, handle,
                                               deadline, method="submit_internal")
                if isinstance(result, dict):
                    return result
            raise result if isinstance(result, Exception) else ClusterError(
                f"approval not committed after {CONFIG_ATTEMPTS} attempts: {result!r}")

    async def _submit(self, prepare: Callable[[Any], Any], seq: int, leader: str,
                      handle: Any, deadline: float, method: str = "submit_config"
                      ) -> tuple[int, Any]:
        """``(version, result)`` of ``prepare`` committed by the leader as session
        command ``seq`` (the same on every retry, so it applies at most once),
        following leader changes until ``deadline``. ``method``: the leader's
        ``submit_config`` or ``submit_internal`` (no version: 0)."""
        answer = await self._call_leader(
            lambda h, remaining: getattr(h, method).remote(prepare, self._client_id, seq,
                                                           remaining),
            leader, handle, deadline,
            "the change was not acknowledged in time; its outcome is unknown: check get_config")
        return answer if method == "submit_config" else (0, answer)

    async def _call_leader(self, call: Callable[[Any, float], Any], leader: str, handle: Any,
                         deadline: float, late: str) -> Any:
        """``await call(leader's consensus handle, seconds left)``, following
        leader changes until ``deadline`` (then CoordinationTimeout(``late``))."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CoordinationTimeout(late)
            try:
                return await bounded(call(handle, remaining), remaining + 1.0)
            except asyncio.TimeoutError:
                continue
            except Exception as error:
                cause = task_cause(error)
                if not isinstance(cause, (NotLeader, CoordinationTimeout, RayActorError)):
                    raise cause from None
                self._peer_handles.pop(leader, None)
                await asyncio.sleep(0.02)
                leader, handle = await self._leader_handle(deadline)


def _check_proposal_id(proposal_id: Any) -> None:
    """Raise NotFound unless ``proposal_id`` is an integer (as answered)."""
    if not isinstance(proposal_id, int) or isinstance(proposal_id, bool):
        raise NotFound(f"no proposal {shown(proposal_id)}: proposal ids are the integers "
                       "propose_config and join_cluster answered")
