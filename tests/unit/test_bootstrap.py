"""The start decision of a consensus node (core/bootstrap.py), as a table.

Each row: what the node's own storage holds, the cluster id handed out for
this start, whether the start is fresh, whether the node may still found the
cluster, what each peer answered (a cluster id, EMPTY, or None: no answer
yet), and the action expected.
"""

from __future__ import annotations

import pytest

from cluster_actors.core.bootstrap import EMPTY, Action, PeerReport, decide

U, V, W = "uuid-u", "uuid-v", "uuid-w"
ON_U = PeerReport(U)

ROWS = [
    # id, own, given, fresh, founder, peers, action, cluster id
    ("all empty: a brand-new cluster", None, V, False, True,
     {"n2": EMPTY, "n3": EMPTY}, Action.BOOTSTRAP, V),
    ("a peer has not answered yet: wait", None, V, False, True,
     {"n2": EMPTY, "n3": None}, Action.WAIT, None),
    ("no peer answered yet: wait", None, V, False, True,
     {"n2": None, "n3": None}, Action.WAIT, None),
    ("a single node founds at once", None, V, False, True, {}, Action.BOOTSTRAP, V),
    ("own state: resume without waiting for anyone", U, V, False, True,
     {"n2": None, "n3": None}, Action.RESUME, U),
    ("own state, peers agree: resume", U, V, False, True,
     {"n2": ON_U, "n3": EMPTY}, Action.RESUME, U),
    ("own state, a peer of another incarnation: refuse", U, V, False, True,
     {"n2": PeerReport(W), "n3": ON_U}, Action.REFUSE, None),
    ("own state of an old incarnation in a fresh start: refuse", U, V, True, True,
     {}, Action.REFUSE, None),
    ("own state of this fresh incarnation (a supervisor restart): resume", V, V, True,
     True, {"n2": PeerReport(V)}, Action.RESUME, V),
    ("empty, one peer holds the cluster: rejoin (never a founding voter)", None, V, False,
     True, {"n2": ON_U, "n3": None}, Action.REJOIN, U),
    ("empty, a wiped majority: still rejoin, never bootstrap", None, V, False, True,
     {"n2": EMPTY, "n3": ON_U}, Action.REJOIN, U),
    ("empty after founding this incarnation (wiped while running): rejoin", None, V, True,
     False, {"n2": PeerReport(V), "n3": PeerReport(V)}, Action.REJOIN, V),
    ("empty founder, co-founders already founded this start: bootstrap", None, V, True,
     True, {"n2": PeerReport(V), "n3": EMPTY}, Action.BOOTSTRAP, V),
    ("empty, peers of two incarnations: refuse", None, V, False, True,
     {"n2": ON_U, "n3": PeerReport(W)}, Action.REFUSE, None),
    ("fresh start, a peer still holds the old incarnation: wait", None, V, True, True,
     {"n2": ON_U, "n3": EMPTY}, Action.WAIT, None),
    ("every node lost the data it founded: refuse", None, V, False, False,
     {"n2": EMPTY, "n3": EMPTY}, Action.REFUSE, None),
    ("no cluster id handed out and nothing anywhere: refuse", None, None, False, True,
     {"n2": EMPTY}, Action.REFUSE, None),
]


@pytest.mark.parametrize(("own", "given", "fresh", "founder", "peers", "action", "cluster"),
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_the_start_decision_follows_the_table(
        own: str | None, given: str | None, fresh: bool, founder: bool,
        peers: dict[str, PeerReport | None], action: Action, cluster: str | None) -> None:
    decision = decide(own, given, peers, fresh=fresh, founder=founder)
    assert decision.action is action, decision.reason
    assert decision.cluster_id == cluster
    assert decision.reason


def test_an_empty_node_never_bootstraps_while_any_peer_holds_state_of_another_start() -> None:
    # exhaustive over three peers' answers: BOOTSTRAP only by a founder, when every
    # peer answered empty, or (a late founder) the peers that hold state hold the
    # id handed out for this very start
    answers = [None, EMPTY, ON_U, PeerReport(V)]
    for a in answers:
        for b in answers:
            for c in answers:
                peers = {"n2": a, "n3": b, "n4": c}
                for founder in (True, False):
                    decision = decide(None, V, peers, founder=founder)
                    if decision.action is Action.BOOTSTRAP:
                        assert founder
                        assert all(p is None or p.cluster_id in (None, V)
                                   for p in peers.values()), peers
                        assert all(p is not None for p in peers.values()) or any(
                            p is not None and p.cluster_id == V for p in peers.values())


def test_refusals_say_what_to_do() -> None:
    mixed = decide(U, V, {"n2": PeerReport(W)})
    assert "remove this node" in mixed.reason and "learner" in mixed.reason
    stale = decide(U, V, {}, fresh=True)
    assert "delete this node's data directory" in stale.reason
