"""Chaos: the fault injector (``monkey``), the read-only cluster probe (``probe``),
recorded workloads (``workload``) and the checks run on their histories (``checker``).

Re-exports what the module ``cluster_actors.chaos`` exported before it became this
package."""

from __future__ import annotations

from .monkey import (
    ACTIONS,
    FAULT_FAMILIES,
    ChaosMonkey,
    FaultEvent,
    PlannedFault,
    Timeline,
    expand_faults,
    plan_schedule,
)
from .probe import ClusterProbe

__all__ = [
    "ACTIONS",
    "FAULT_FAMILIES",
    "ChaosMonkey",
    "ClusterProbe",
    "FaultEvent",
    "PlannedFault",
    "Timeline",
    "expand_faults",
    "plan_schedule",
]
