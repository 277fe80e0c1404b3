"""Shared test configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Hermetic data: every cluster this test session starts (and every actor and
# subprocess it spawns, which inherit the environment) keeps its files in a
# directory of its own, so a fixed cluster name never resumes a previous run's
# data and nothing is written to the user's data directory.
# The driver resolves the data root and hands it to the actors, so this holds
# on a Ray that was started before the session too.
os.environ["CLUSTER_ACTORS_DATA_DIR"] = tempfile.mkdtemp(prefix="cluster-actors-tests-")


# A third-party strategy package (tests/data/thirdparty_strategy), pip-installed
# for real once per session: the plug-in loading tests and the Ray test that runs
# a cluster on it share the installation.
PLUGIN_SOURCE = PROJECT_ROOT / "tests" / "data" / "thirdparty_strategy"
PLUGIN_MODULE = "ca_thirdparty_strategy"


def _pip_install(source: Path, target: Path) -> subprocess.CompletedProcess[str]:
    """Install ``source`` into ``target``: offline without build isolation if the build
    backend allows, else with pip's isolated build (which fetches setuptools)."""
    base = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "--quiet", "--target", str(target)]
    result = subprocess.run([*base, "--no-build-isolation", "--no-index", str(source)],
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        result = subprocess.run([*base, str(source)],
                                capture_output=True, text=True, timeout=300, check=False)
    return result


@pytest.fixture(scope="session")
def thirdparty_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the plug-in package as pip installed it (not on
    ``sys.path``: the tests that use it put it there, or on a subprocess's path)."""
    root = tmp_path_factory.mktemp("thirdparty")
    source = root / "src"
    shutil.copytree(PLUGIN_SOURCE, source)  # the build writes into its source tree
    target = root / "site"
    result = _pip_install(source, target)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    assert list(target.glob(f"{PLUGIN_MODULE}-*.dist-info/entry_points.txt"))
    return target
