"""Running on a Ray cluster with token authentication (``RAY_AUTH_MODE=token``).

The threat model is a trusted Ray cluster: whoever can connect a driver can
run code. Ray's token authentication is what keeps strangers from
connecting; this test starts a local Ray of its own with it enabled (in a
subprocess: the suite's session Ray is shared and stays untouched), then
shows that a driver without the token, or with a wrong one, is refused,
while a driver holding it starts a cluster and writes through it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

TOKEN = "cluster-actors-test-token-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]

HEAD = """
import sys, ray
ray.init(num_cpus=2, include_dashboard=False, _temp_dir=sys.argv[1])
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the test closes our stdin
ray.shutdown()
"""

DRIVER = """
import sys, ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
except Exception as error:
    print("REFUSED", type(error).__name__, repr(error.__cause__ or error)[:500], flush=True)
    sys.exit(0)
from cluster_actors import Cluster
cluster = Cluster.start("secure", nodes=3, options={"data_dir": sys.argv[2]})
try:
    cluster.kv.put("k", "v")
    print("WROTE", cluster.kv.get("k"), flush=True)
finally:
    cluster.shutdown()
"""


def _env(home: str, **auth: str) -> dict[str, str]:
    """The environment of a process of the test's Ray: no inherited Ray address
    or token, a HOME of its own (so no ~/.ray/auth_token is found), ``auth`` on top."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
    env.update(HOME=home, PYTHONPATH=str(REPO), **auth)
    return env


@pytest.fixture(scope="module")
def secured_ray() -> Iterator[str]:
    """The GCS address of a local Ray started with ``RAY_AUTH_MODE=token``."""
    with tempfile.TemporaryDirectory(prefix="rsec", dir="/tmp") as root:
        home, temp = Path(root, "home"), Path(root, "ray")
        home.mkdir()
        head = subprocess.Popen(
            [sys.executable, "-c", HEAD, str(temp)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=_env(str(home), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN))
        try:
            assert head.stdout is not None
            address = head.stdout.readline().strip()
            assert address, "the token-authenticated Ray did not start"
            yield address
        finally:
            assert head.stdin is not None
            head.stdin.close()  # the head driver shuts its Ray down
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                head.kill()
                head.wait()


def _driver(address: str, data_dir: str, home: str, **auth: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", DRIVER, address, data_dir],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=_env(home, **auth))


def test_a_driver_without_the_token_is_refused_and_one_with_it_runs_a_cluster(
        secured_ray: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    data = str(tmp_path / "data")
    # both strangers at once: each waits out Ray's connect timeout (about 20 s)
    plain = _driver(secured_ray, data, str(home))  # today's default driver: no auth at all
    wrong = _driver(secured_ray, data, str(home), RAY_AUTH_MODE="token",
                    RAY_AUTH_TOKEN="not-the-token")
    missing = _driver(secured_ray, data, str(home), RAY_AUTH_MODE="token")
    outputs = {name: process.communicate(timeout=120)[0]
               for name, process in (("plain", plain), ("wrong", wrong),
                                     ("missing", missing))}
    for name, output in outputs.items():
        assert output.startswith("REFUSED"), (name, output)
        assert "WROTE" not in output
    assert "AuthenticationError" in outputs["missing"]  # refused before it even connects
    trusted = _driver(secured_ray, data, str(home), RAY_AUTH_MODE="token",
                      RAY_AUTH_TOKEN=TOKEN)
    output = trusted.communicate(timeout=180)[0]
    assert "WROTE v" in output, output
