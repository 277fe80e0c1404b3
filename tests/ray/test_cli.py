"""The ``cluster-actors`` command, run as a new user runs it: as a subprocess.

The Ray part starts its own Ray head with ``ray start --head --block`` in a
fresh process group (a private ``--temp-dir``, free ports, its own token for
Ray's token authentication), so it neither touches nor depends on any Ray this
test session may already run in-process, nor on a token in ``~/.ray``; teardown
ends that process group (and any straggler whose command line names the
private temp dir) by process id. Nothing here calls ``ray.init``: ``up``,
``status`` and ``down`` run against the head through the console script,
exactly as documented in docs/deployment.md. The same head shows the security
posture: Python drivers without the token, or with a wrong one, are refused,
while one holding it starts a cluster and writes through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CLI = BIN / "cluster-actors"
RAY = BIN / "ray"
CLUSTER = "clitest"
COMMANDS = ("demo", "up", "status", "down", "config", "kv", "member", "lock", "election",
            "chaos", "sim")
TOKEN = secrets.token_hex(32)

# Hang bounds only: a healthy run takes a fraction of these.
RAY_START_BOUND_S = 90.0
UP_BOUND_S = 240.0
COMMAND_BOUND_S = 90.0


def _env(**overrides: str) -> dict[str, str]:
    """The environment of every command: this module's head and token only."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN,
               COLUMNS="160", NO_COLOR="1", TERM="dumb")
    env.update(overrides)
    return env


def run_cli(*args: str, timeout: float = COMMAND_BOUND_S, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=timeout,
                          env=env or _env(), stdin=subprocess.DEVNULL, check=False)


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return (f"`{' '.join(map(str, result.args))}` exited {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}")


def table_rows(output: str) -> dict[str, dict[str, str]]:
    """Body rows of the last rich status table (the one whose first column is
    ``node``), keyed by node id, as {column: cell}."""
    header: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃]", line.strip())[1:-1]]
        if line.startswith("┃"):
            header = cells
            if header[:1] == ["node"]:
                rows = {}
        elif line.startswith("│") and header[:1] == ["node"]:
            rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def assert_cluster_table(output: str) -> None:
    rows = table_rows(output)
    assert set(rows) == {"n1", "n2", "n3"}, output
    roles = {node: row["role"] for node, row in rows.items()}
    assert "unreachable" not in roles.values(), output
    assert "leader" in roles.values(), f"no leader in\n{output}"
    assert {row["leader"] for row in rows.values()} <= {"n1", "n2", "n3", "-"}, output


# ---------------------------------------------------------------- no Ray needed
def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, explain(result)
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), result.stdout


def test_demo_help() -> None:
    result = run_cli("demo", "--help")
    assert result.returncode == 0, explain(result)
    assert "--nodes" in result.stdout
    assert "--simulated" in result.stdout


@pytest.mark.parametrize(("command", "option"), [("sim", "--seeds"), ("chaos", "--seed")])
def test_passthrough_commands_show_their_own_help(command: str, option: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0, explain(result)
    assert option in result.stdout


def test_sim_runs_seeds_and_prints_the_summary() -> None:
    result = run_cli("sim", "--seeds", "3", "--steps", "200", "--jobs", "1")
    assert result.returncode == 0, explain(result)
    assert "3 seeds x 200 steps" in result.stdout, explain(result)
    violations = re.search(r"violations\s*│\s*(\d+)", result.stdout)
    assert violations and violations.group(1) == "0", explain(result)


def test_a_bad_sim_option_fails_with_usage() -> None:
    result = run_cli("sim", "--seeds", "0")
    assert result.returncode != 0
    assert "must be positive" in result.stderr


def test_an_unknown_command_fails_with_usage() -> None:
    result = run_cli("launch")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


# ------------------------------------------------------- a live local Ray head
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pids_naming(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` (our temp dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


@dataclass(frozen=True)
class RayHead:
    address: str
    temp_dir: str


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    temp_dir = tempfile.mkdtemp(prefix="ca-cli-", dir="/tmp")
    log_path = Path(temp_dir) / "ray-start.log"
    port = _free_port()
    command = [str(RAY), "start", "--head", "--block", f"--port={port}",
               "--num-cpus=2", "--include-dashboard=false",
               "--disable-usage-stats", f"--temp-dir={temp_dir}",
               "--object-store-memory=100000000",
               f"--dashboard-agent-listen-port={_free_port()}",
               f"--ray-client-server-port={_free_port()}"]
    with log_path.open("w") as log:
        head = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=_env(RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0"))
    try:
        deadline = time.monotonic() + RAY_START_BOUND_S
        while "Ray runtime started" not in log_path.read_text():
            assert head.poll() is None, f"ray start exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"ray start hangs:\n{log_path.read_text()}"
            time.sleep(0.05)
        yield RayHead(f"127.0.0.1:{port}", temp_dir)
    finally:
        _stop_head(head, temp_dir)


def _stop_head(head: subprocess.Popen[bytes], temp_dir: str) -> None:
    """End the head's process group, then any process still naming our temp dir."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
    for pid in _pids_naming(temp_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_up(ray_head: RayHead, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[subprocess.CompletedProcess[str]]:
    data_dir = tmp_path_factory.mktemp("cli-data")
    result = run_cli("up", "--address", ray_head.address, "--name", CLUSTER, "--nodes", "3",
                     "--data-dir", str(data_dir), "--placement", "per_node",
                     timeout=UP_BOUND_S)
    yield result
    # normally test_down already stopped it; this only matters when it failed
    run_cli("down", "--address", ray_head.address, "--name", CLUSTER)


def test_up_starts_three_nodes_and_a_leader(
        ray_head: RayHead, cluster_up: subprocess.CompletedProcess[str]) -> None:
    assert cluster_up.returncode == 0, explain(cluster_up)
    assert f"cluster '{CLUSTER}' is up" in cluster_up.stdout, explain(cluster_up)
    assert_cluster_table(cluster_up.stdout)
    # the hint names the address, so it works when copied as printed
    assert (f"cluster-actors status --name {CLUSTER} --address {ray_head.address}"
            in cluster_up.stdout), explain(cluster_up)


def test_status_shows_the_nodes_and_a_leader(
        ray_head: RayHead, cluster_up: subprocess.CompletedProcess[str]) -> None:
    assert cluster_up.returncode == 0, explain(cluster_up)
    result = run_cli("status", "--address", ray_head.address, "--name", CLUSTER)
    assert result.returncode == 0, explain(result)
    assert f"cluster '{CLUSTER}'" in result.stdout
    assert_cluster_table(result.stdout)


def test_up_refuses_a_second_cluster_of_the_same_name(
        ray_head: RayHead, cluster_up: subprocess.CompletedProcess[str]) -> None:
    assert cluster_up.returncode == 0, explain(cluster_up)
    result = run_cli("up", "--address", ray_head.address, "--name", CLUSTER, "--nodes", "3")
    assert result.returncode != 0, explain(result)
    assert "already running" in result.stderr and CLUSTER in result.stderr, explain(result)
    assert "Traceback" not in result.stderr, explain(result)


def test_status_of_an_unknown_cluster_fails_naming_it(ray_head: RayHead) -> None:
    result = run_cli("status", "--address", ray_head.address, "--name", "nosuch")
    assert result.returncode != 0, explain(result)
    assert "no cluster named 'nosuch'" in result.stderr, explain(result)
    assert "Traceback" not in result.stderr, explain(result)


def test_a_client_without_the_token_is_told_to_provide_it(ray_head: RayHead) -> None:
    # one connection attempt instead of Ray's default ~20 s of retries
    env = _env(RAY_AUTH_MODE="disabled", RAY_gcs_server_port_wait_time_s="1")
    del env["RAY_AUTH_TOKEN"]
    result = run_cli("status", "--address", ray_head.address, "--name", CLUSTER, env=env)
    assert result.returncode == 2, explain(result)
    assert "requires token authentication" in result.stderr, explain(result)
    assert "RAY_AUTH_MODE=token" in result.stderr, explain(result)
    assert "Traceback" not in result.stderr, explain(result)


# The threat model is a trusted Ray cluster: whoever can connect a driver can run
# code. Ray's token authentication (this module's head runs with it) is what
# keeps strangers from connecting.
DRIVER = """
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
except Exception as error:
    print("REFUSED", type(error).__name__, repr(error.__cause__ or error)[:500], flush=True)
    sys.exit(0)
from cluster_actors import Cluster
cluster = Cluster.start("secure", nodes=3, options={"data_dir": sys.argv[2], "placement": "per_node"})
try:
    cluster.kv.put("k", "v")
    print("WROTE", cluster.kv.get("k"), flush=True)
finally:
    cluster.shutdown()
"""


def _driver(address: str, data_dir: str, home: str, **auth: str) -> subprocess.Popen[str]:
    """A Python driver (``ray.init``, then ``Cluster.start``) in an environment
    with no inherited Ray address or token, a HOME of its own (so no
    ``~/.ray/auth_token`` is found), and ``auth`` on top."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    env.update(HOME=home, PYTHONPATH=str(Path(__file__).resolve().parents[2]), **auth)
    return subprocess.Popen([sys.executable, "-c", DRIVER, address, data_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)


def test_a_driver_without_the_token_is_refused_and_one_with_it_runs_a_cluster(
        ray_head: RayHead, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    data = str(tmp_path / "data")
    # all three strangers at once, each with one connection attempt instead of
    # Ray's default ~20 s of retries
    plain = _driver(ray_head.address, data, str(home), RAY_gcs_server_port_wait_time_s="1")
    wrong = _driver(ray_head.address, data, str(home), RAY_AUTH_MODE="token",
                    RAY_AUTH_TOKEN="not-the-token", RAY_gcs_server_port_wait_time_s="1")
    missing = _driver(ray_head.address, data, str(home), RAY_AUTH_MODE="token")
    outputs = {name: process.communicate(timeout=120)[0]
               for name, process in (("plain", plain), ("wrong", wrong),
                                     ("missing", missing))}
    for name, output in outputs.items():
        assert output.startswith("REFUSED"), (name, output)
        assert "WROTE" not in output
    assert "AuthenticationError" in outputs["missing"]  # refused before it even connects
    trusted = _driver(ray_head.address, data, str(home), RAY_AUTH_MODE="token",
                      RAY_AUTH_TOKEN=TOKEN)
    output = trusted.communicate(timeout=180)[0]
    assert "WROTE v" in output, output


def test_config_reads_changes_and_rolls_back_the_replicated_configuration(
        ray_head: RayHead, cluster_up: subprocess.CompletedProcess[str]) -> None:
    assert cluster_up.returncode == 0, explain(cluster_up)
    where = ("--address", ray_head.address, "--name", CLUSTER)
    whole = run_cli("config", *where, "get")
    assert whole.returncode == 0, explain(whole)
    assert json.loads(whole.stdout)["members"] == ["n1", "n2", "n3"], explain(whole)
    changed = run_cli("config", *where, "--node", "n2", "set", "heartbeat_interval", "700")
    assert changed.returncode == 0, explain(changed)
    version = int(re.search(r"version (\d+)", changed.stdout).group(1))
    one = run_cli("config", *where, "get", "heartbeat_interval")
    assert one.returncode == 0 and json.loads(one.stdout) == 700, explain(one)
    history = run_cli("config", *where, "history")
    assert re.search(rf"^\s*{version}\s+set\s+heartbeat_interval$", history.stdout,
                     re.MULTILINE), explain(history)
    back = run_cli("config", *where, "rollback", str(version - 1))
    assert back.returncode == 0 and f"version {version + 1}" in back.stdout, explain(back)
    invalid = run_cli("config", *where, "set", "quorum", "9")
    assert invalid.returncode == 2, explain(invalid)
    assert "quorum 9 is larger than the 3 members" in invalid.stderr, explain(invalid)
    missing = run_cli("config", *where, "get", "colour")
    assert missing.returncode == 2 and "no config key 'colour'" in missing.stderr, \
        explain(missing)
    assert "Traceback" not in invalid.stderr + missing.stderr


def test_kv_commands_put_get_list_and_delete_keys(
        ray_head: RayHead, cluster_up: subprocess.CompletedProcess[str]) -> None:
    assert cluster_up.returncode == 0, explain(cluster_up)
    where = ("--address", ray_head.address, "--name", CLUSTER)
    put = run_cli("kv", *where, "put", "jobs/a", '{"n": 1}')
    assert put.returncode == 0 and re.search(r"jobs/a at revision \d+", put.stdout), explain(put)
    got = run_cli("kv", *where, "get", "jobs/a")
    assert got.returncode == 0 and json.loads(got.stdout) == {"n": 1}, explain(got)
    listed = run_cli("kv", *where, "list", "jobs/")
    assert listed.returncode == 0 and "jobs/a" in listed.stdout, explain(listed)
    deleted = run_cli("kv", *where, "del", "jobs/a")
    assert deleted.returncode == 0 and "deleted jobs/a" in deleted.stdout, explain(deleted)
    gone = run_cli("kv", *where, "get", "jobs/a")
    assert gone.returncode == 1 and "no key 'jobs/a'" in gone.stderr, explain(gone)
    revision = re.search(r"at revision (\d+)", put.stdout).group(1)
    watched = run_cli("kv", *where, "watch", "jobs/", "--rev", revision, "--count", "2")
    assert watched.returncode == 0, explain(watched)
    assert re.search(rf"PUT\s+rev\s+{revision}\s+jobs/a\s+{{\"n\": 1}}", watched.stdout), \
        explain(watched)
    assert re.search(r"DELETE\s+rev\s+\d+\s+jobs/a", watched.stdout), explain(watched)


def test_lock_runs_a_command_holding_the_lock_with_its_fencing_token(
        ray_head: RayHead, cluster_up: subprocess.CompletedProcess[str]) -> None:
    assert cluster_up.returncode == 0, explain(cluster_up)
    where = ("--address", ray_head.address, "--name", CLUSTER)
    result = run_cli("lock", *where, "deploy", "--", sys.executable, "-c",
                     "import os; print('token', os.environ['CLUSTER_ACTORS_FENCING_TOKEN'])")
    assert result.returncode == 0, explain(result)
    token = re.search(r"fencing token (\d+)", result.stdout)
    assert token and f"token {token.group(1)}" in result.stdout, explain(result)
    assert "released lock 'deploy'" in result.stdout, explain(result)
    nobody = run_cli("election", *where, "leader", "nobody-ran")
    assert nobody.returncode == 1 and "nobody leads" in nobody.stdout, explain(nobody)
    observed = run_cli("election", *where, "observe", "nobody-ran", "--count", "1")
    assert observed.returncode == 0 and "nobody leads" in observed.stdout, explain(observed)


def test_member_commands_add_list_and_remove_a_node(
        ray_head: RayHead, cluster_up: subprocess.CompletedProcess[str]) -> None:
    assert cluster_up.returncode == 0, explain(cluster_up)
    where = ("--address", ray_head.address, "--name", CLUSTER)
    added = run_cli("member", *where, "add", "n4", timeout=UP_BOUND_S)
    assert added.returncode == 0 and "members n1, n2, n3, n4" in added.stdout, explain(added)
    listed = run_cli("member", *where, "list")
    assert listed.returncode == 0, explain(listed)
    assert re.search(r"n4\s.*voter", listed.stdout), explain(listed)
    removed = run_cli("member", *where, "remove", "n4")
    assert removed.returncode == 0 and "members n1, n2, n3" in removed.stdout, explain(removed)
    unknown = run_cli("member", *where, "remove", "n9")
    assert unknown.returncode == 2 and "no node 'n9'" in unknown.stderr, explain(unknown)


# Runs last in this module (pytest keeps file order): it stops the cluster the
# tests above inspect.
def test_down_stops_the_cluster(ray_head: RayHead,
                                cluster_up: subprocess.CompletedProcess[str]) -> None:
    assert cluster_up.returncode == 0, explain(cluster_up)
    result = run_cli("down", "--address", ray_head.address, "--name", CLUSTER)
    assert result.returncode == 0, explain(result)
    assert f"cluster '{CLUSTER}' stopped" in result.stdout
    after = run_cli("status", "--address", ray_head.address, "--name", CLUSTER)
    assert after.returncode != 0, explain(after)
    assert f"no cluster named '{CLUSTER}'" in after.stderr, explain(after)


def test_the_demo_leaves_its_cluster_for_status_and_down(ray_head: RayHead) -> None:
    demo = run_cli("demo", "--address", ray_head.address, "--nodes", "3", "--writes", "200",
                   timeout=UP_BOUND_S, env=_env(CLUSTER_ACTORS_PLACEMENT="per_node"))
    assert demo.returncode == 0, explain(demo)
    assert "summary" in demo.stdout and "keeps running" in demo.stdout, explain(demo)
    # the live table's last frame has every column filled, the slow ones too
    assert all(row["state"] and row["phi"] and row["health"]
               for row in table_rows(demo.stdout).values()), explain(demo)
    status = run_cli("status", "--address", ray_head.address, "--name", "demo")
    assert status.returncode == 0, explain(status)
    assert_cluster_table(status.stdout)
    down = run_cli("down", "--address", ray_head.address, "--name", "demo")
    assert down.returncode == 0 and "cluster 'demo' stopped" in down.stdout, explain(down)
