"""Shared test configuration."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
