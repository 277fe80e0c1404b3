"""The Raft core told by the death watch that a peer died (``report_peer_dead``):
the survivors elect a new leader within a few ticks instead of an election
timeout, a dead leader's last frames do not bring it back, and the survivors
take turns instead of splitting the vote."""

from __future__ import annotations

from cluster_actors.core.raft import RaftNode, RaftOptions
from cluster_actors.core.raft_types import Entry, EntryKind, Message, MessageType, Role
from tests.unit.test_raft import Net, put

MT = MessageType
ELECTION_TICK = 50  #: long, so that anything close to a timeout shows
FAST = 12  #: ticks: a failover that needed no election timeout


def _leader_dies(ids: list[str], seed: int = 0) -> tuple[Net, int]:
    """A cluster of ``ids`` led by the first, which has just died; its term."""
    net = Net(ids, options=RaftOptions(election_tick=ELECTION_TICK), seed=seed)
    leader = net.force_leader(ids[0])
    net.run(2)
    net.crash(ids[0])
    return net, leader.term


def _heartbeat_from(net: Net, src: str, dst: str, term: int) -> Message:
    return Message(MT.HEARTBEAT, src, dst, term, commit=net.nodes[dst].commit)


def test_a_dead_leaders_late_heartbeat_neither_restores_it_nor_delays_the_failover() -> None:
    net, term = _leader_dies(["n1", "n2", "n3"])
    for nid in ("n2", "n3"):
        net.nodes[nid].report_peer_dead("n1")
    n2 = net.nodes["n2"]
    dropped = n2.dropped_messages
    n2.step(_heartbeat_from(net, "n1", "n2", term))  # still on the wire when it died
    assert n2.lead is None and n2.dropped_messages == dropped + 1
    net.process("n2")
    ticks = net.run_until(lambda: net.leader() in ("n2", "n3"), max_ticks=ELECTION_TICK)
    assert ticks <= FAST


def test_a_peer_reported_dead_is_followed_again_once_it_leads_a_later_term() -> None:
    net, term = _leader_dies(["n1", "n2", "n3"])
    n2 = net.nodes["n2"]
    n2.report_peer_dead("n1")
    n2.step(_heartbeat_from(net, "n1", "n2", term + 1))  # restarted and elected since
    assert n2.lead == "n1" and n2.term == term + 1 and n2.role is Role.FOLLOWER


def test_a_survivor_not_yet_told_of_the_death_grants_the_campaign_despite_its_lease() -> None:
    net, term = _leader_dies(["n1", "n2", "n3"])
    net.nodes["n3"].report_peer_dead("n1")  # n2's death watch has not fired yet
    assert net.run_until(lambda: net.leader() == "n3", max_ticks=ELECTION_TICK) <= FAST
    assert net.nodes["n3"].term == term + 1


def test_the_death_of_a_leader_already_forgotten_by_a_pre_candidate_still_starts_a_campaign(
        ) -> None:
    net, _term = _leader_dies(["n1", "n2", "n3"])
    n2 = net.nodes["n2"]
    n2.randomized_timeout = n2.election_elapsed + 1  # its own timer runs out first
    net.run(1)
    assert n2.role is Role.PRE_CANDIDATE and n2.lead is None  # n3's lease refuses it
    net.run(1)
    n2.report_peer_dead("n1")  # n3's death watch has not fired yet
    assert net.run_until(lambda: net.leader() == "n2", max_ticks=ELECTION_TICK) <= FAST


def test_five_survivors_take_turns_so_one_campaign_wins_in_the_next_term() -> None:
    ids = [f"n{i}" for i in range(1, 7)]
    for seed in range(10):
        net, term = _leader_dies(ids, seed=seed)
        start = len(net.sent)
        for nid in ids[1:]:
            net.nodes[nid].report_peer_dead("n1")
        assert net.run_until(lambda net=net: net.leader() is not None,
                             max_ticks=ELECTION_TICK) <= FAST
        campaigners = {m.src for m in net.sent[start:] if m.type is MT.PRE_VOTE}
        assert campaigners == {"n2"}, seed  # the first survivor in id order goes first
        assert net.nodes[net.leader()].term == term + 1, seed


def test_a_less_up_to_date_first_survivor_is_refused_and_the_next_one_wins() -> None:
    net, term = _leader_dies(["n1", "n2", "n3"])
    n2: RaftNode = net.nodes["n2"]
    # n3 holds an entry n2 lacks (the dead leader's last append reached only n3)
    last = n2.log.last_index
    n3 = net.nodes["n3"]
    n3.step(Message(MT.APPEND, "n1", "n3", term, index=last, log_term=n3.log.last_term,
                    entries=(Entry(last + 1, term, EntryKind.NORMAL, put("k", 1)),),
                    commit=n3.commit))
    net.process("n3")
    net.queue.clear()
    for nid in ("n2", "n3"):
        net.nodes[nid].report_peer_dead("n1")
    assert net.run_until(lambda: net.leader() == "n3", max_ticks=ELECTION_TICK) <= FAST


def test_the_leader_ignores_a_followers_death_and_nobody_campaigns_over_it() -> None:
    net, _term = _leader_dies(["n1", "n2", "n3"])
    net.down.clear()
    net.run(1)
    net.crash("n3")
    for nid in ("n1", "n2"):
        net.nodes[nid].report_peer_dead("n3")
    start = len(net.sent)
    net.run(ELECTION_TICK // 2)
    assert net.leader() == "n1"
    assert not any(m.type in (MT.PRE_VOTE, MT.VOTE) for m in net.sent[start:])


def test_two_survivors_campaigning_at_once_do_not_split_the_vote() -> None:
    for seed in range(10):
        net, term = _leader_dies(["n1", "n2", "n3"], seed=seed)
        for nid in ("n2", "n3"):
            net.nodes[nid].report_peer_dead("n1", rank=0)  # as if the stagger were lost
        assert net.run_until(lambda net=net: net.leader() is not None,
                             max_ticks=ELECTION_TICK) <= FAST, seed
        assert net.leader() == "n2" and net.nodes["n2"].term == term + 1, seed
        assert not net.sent_of(MT.VOTE, "n3"), seed  # n3 withdrew after its pre-vote
