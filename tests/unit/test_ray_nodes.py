"""Following Ray's nodes (pure): which Ray nodes become logical nodes, and when
a followed one that left is removed."""

from __future__ import annotations

from cluster_actors.core.ray_nodes import RayNodeFollower, node_id_for


def test_only_a_ray_node_that_arrives_after_the_start_is_added() -> None:
    follower = RayNodeFollower(grace=5.0, baseline=frozenset({"head", "w1"}))
    assert follower.step(["head", "w1"], now=0.0) == ([], [])
    assert follower.step(["head", "w1", "w2"], now=1.0) == (["w2"], [])
    follower.added("w2", node_id_for("w2"))
    assert follower.step(["head", "w1", "w2"], now=2.0) == ([], [])


def test_a_failed_add_is_decided_again() -> None:
    follower = RayNodeFollower(grace=5.0, baseline=frozenset({"head"}))
    assert follower.step(["head", "w2"], now=0.0) == (["w2"], [])
    assert follower.step(["head", "w2"], now=1.0) == (["w2"], [])  # not reported added


def test_a_followed_node_is_removed_only_after_the_grace() -> None:
    follower = RayNodeFollower(grace=5.0, baseline=frozenset({"head"}))
    follower.added("w2", "ray-w2")
    assert follower.step(["head"], now=10.0) == ([], [])
    assert follower.step(["head"], now=14.9) == ([], [])
    assert follower.step(["head"], now=15.0) == ([], ["ray-w2"])
    follower.removed("ray-w2")
    assert follower.step(["head"], now=16.0) == ([], [])
    assert follower.followed == {} and follower.missing_since == {}


def test_a_followed_node_back_within_the_grace_is_kept() -> None:
    follower = RayNodeFollower(grace=5.0, baseline=frozenset({"head"}))
    follower.added("w2", "ray-w2")
    follower.step(["head"], now=0.0)
    assert follower.step(["head", "w2"], now=3.0) == ([], [])
    assert follower.step(["head"], now=7.0) == ([], [])  # the clock starts again
    assert follower.step(["head"], now=12.0) == ([], ["ray-w2"])


def test_a_baseline_node_that_leaves_is_left_alone() -> None:
    follower = RayNodeFollower(grace=0.0, baseline=frozenset({"head", "w1"}))
    assert follower.step(["head"], now=100.0) == ([], [])


def test_the_logical_id_is_named_after_the_ray_node() -> None:
    assert node_id_for("0123456789abcdef") == "ray-0123456789ab"
