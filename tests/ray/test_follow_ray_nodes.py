"""``ClusterOptions(follow_ray_nodes=True)`` on a multi-node Ray cluster started
on this machine: a Ray node added becomes a logical node that votes and serves
reads, and once the Ray node is removed its logical node leaves the cluster
after the grace period while the others keep a leader and serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("follow_run.py")
ROOT = SCRIPT.parents[2]


def test_a_ray_node_added_and_removed_is_followed_by_the_cluster() -> None:
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["start"] == ["n1", "n2", "n3"]
    added = result["added"]
    assert added == "ray-" + result["worker"][:12]
    # the added Ray node's logical node runs there, votes and serves reads
    assert result["added_runs_on"] == result["worker"]
    assert result["voters_after_add"] == sorted(["n1", "n2", "n3", added])
    assert result["read_on_added"] == "from n1"
    assert result["members_on_added"] == sorted(["n1", "n2", "n3", added])
    # its Ray node removed: gone from the nodes, the registry and the voters;
    # the three left keep a leader and serve writes and reads
    assert result["node_ids_after_removal"] == ["n1", "n2", "n3"]
    assert result["registry_after_removal"] == ["n1", "n2", "n3"]
    assert result["voters_after_removal"] == ["n1", "n2", "n3"]
    assert result["leader_after_removal"] in {"n1", "n2", "n3"}
    assert result["write_after_removal"] is True
    assert result["read_after_removal"] == [1, 2]
