"""Fixtures for the integration tests on a real local Ray.

Every test collected under ``tests/ray`` is marked ``ray`` here (so
``-m "not ray"`` skips them all), whether or not its module also sets
``pytestmark = pytest.mark.ray``. Tests that need Ray request the
session-scoped ``ray_local`` fixture; Ray is started once per session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.ray)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray with 2 CPUs, started once per session (or reused if running)."""
    started_here = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
        started_here = True
    yield
    if started_here:
        ray.shutdown()


@pytest.fixture(scope="session")
def ray_address(ray_local: None) -> str:
    """The GCS address of the session's local Ray, for a subprocess that runs
    its own driver on it (``ray.init(address=...)``) instead of starting a Ray."""
    return str(ray.get_runtime_context().gcs_address)
