"""What the heartbeat, membership and sync components accept from peers.

A peer batch arrives through ``Transport.accept`` (``runtime/transport.py``),
which drops and counts it whole when it comes from a node the receiving
component does not count as a member (``dropped_non_member``), then drops and
counts each message whose shape is wrong (``dropped_malformed``) or whose own
``src`` is not the batch's sender (``dropped_spoofed``). This module decides
those three questions for the three components other than consensus (whose
checks are ``raft_types.validate_message`` and the consensus shell's
``_is_member``); the actors only call it. Nothing here changes state, and no
check raises: every answer is a bool or a reason string.

Who counts as a member, per component:

* **heartbeat**: the nodes it monitors among (the membership component's up,
  leaving and exiting members, pushed with ``set_nodes``), itself included;
* **membership**: a node this node's view lists as joining, up, leaving or
  exiting; a removed or down node, or one the view never heard of, is not
  (it enters through ``request_join``, which a member forwards);
* **sync**: a node of the Raft configuration (voters and learners) the sync
  component was last told of.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from .config import check_json
from .membership import MembershipView, MemberStatus

#: The largest integer a peer message may carry (what SQLite and Raft store).
MAX_WIRE_INT = 2**63 - 1
#: The longest node id a peer message may name.
MAX_NODE_ID_CHARS = 256

#: Member statuses whose nodes gossip and receive gossip.
GOSSIP_STATUSES = frozenset({MemberStatus.JOINING, MemberStatus.UP, MemberStatus.LEAVING,
                             MemberStatus.EXITING})


def message_src(message: Any) -> Any:
    """The sender a message claims: its ``src`` key (a dict) or attribute;
    None when it names none (then it cannot match a batch's sender)."""
    if isinstance(message, Mapping):
        return message.get("src")
    return getattr(message, "src", None)


def is_node_id(value: Any) -> bool:
    """Whether ``value`` can be a node id: a non-empty, bounded string."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NODE_ID_CHARS


def _is_wire_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WIRE_INT


def _is_finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


# ------------------------------------------------------------------ heartbeat
def heartbeat_problem(message: Any) -> str | None:
    """None if ``message`` is a well-formed heartbeat, else the reason.

    A heartbeat is a dict with ``type == "heartbeat"``, ``src`` (a node id),
    ``seq`` (an integer in ``0..2**63-1``), ``sent_at`` and ``interval``
    (finite numbers, or absent) and ``metadata`` (see :func:`metadata_problem`).
    """
    if not isinstance(message, dict) or message.get("type") != "heartbeat":
        return "not a heartbeat dict"
    if not is_node_id(message.get("src")):
        return "src must be a node id"
    if not _is_wire_int(message.get("seq")):
        return "seq must be an integer in 0..2**63-1"
    for field in ("sent_at", "interval"):
        if message.get(field) is not None and not _is_finite(message[field]):
            return f"{field} must be a finite number"
    return metadata_problem(message.get("metadata"))


def metadata_problem(metadata: Any) -> str | None:
    """None if ``metadata`` is what a heartbeat may carry: a dict of JSON
    values with string keys, bounded in depth and size as configuration
    metadata is (:func:`~.config.check_json`); else the reason. The sender
    checks its own metadata the same way, so nothing it sends is dropped."""
    if not isinstance(metadata, dict):
        return "metadata must be a dict"
    try:
        check_json(metadata, "metadata")
    except ValueError as error:
        return str(error)
    return None


def heartbeat_sender_allowed(src: str, nodes: Collection[str]) -> bool:
    """Whether a heartbeat batch from ``src`` may be recorded by a detector
    that monitors among ``nodes``: a member other than itself is."""
    return src in nodes


# ----------------------------------------------------------------- membership
def gossip_problem(message: Any) -> str | None:
    """None if ``message`` has the shape of a gossiped view (a dict with
    ``type == "view"``, a node id ``src``, a str ``digest`` and a dict
    ``view``), else the reason. The view itself is checked when merged."""
    if not isinstance(message, dict) or message.get("type") != "view":
        return "not a view message"
    if not is_node_id(message.get("src")):
        return "src must be a node id"
    if not isinstance(message.get("view"), dict) or not isinstance(message.get("digest"), str):
        return "a view message needs a dict view and a str digest"
    return None


def gossip_sender_allowed(view: MembershipView, src: str) -> bool:
    """Whether ``view`` takes gossip from ``src``: a member it lists as
    joining, up, leaving or exiting (not removed, down or unknown)."""
    info = view.get_member_info(src)
    return info is not None and info.status in GOSSIP_STATUSES


# ----------------------------------------------------------------------- sync
def sync_envelope_problem(dst: Any, kind: Any, me: str) -> str | None:
    """None if a sync message addressed to ``dst`` of ``kind`` may go to a
    strategy on node ``me``, else the reason (its payload is the strategy's
    to check)."""
    if dst != me:
        return f"addressed to {str(dst)[:80]!r}"
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_NODE_ID_CHARS:
        return "kind must be a non-empty bounded str"
    return None


def sync_sender_allowed(src: str, peers: Collection[str]) -> bool:
    """Whether a sync batch from ``src`` is from one of ``peers`` (the Raft
    configuration's voters and learners, as last learned)."""
    return src in peers


__all__ = ["GOSSIP_STATUSES", "MAX_NODE_ID_CHARS", "MAX_WIRE_INT", "gossip_problem", "gossip_sender_allowed",
           "heartbeat_problem", "heartbeat_sender_allowed", "is_node_id", "message_src",
           "metadata_problem", "sync_envelope_problem", "sync_sender_allowed"]
