"""The Ray seam the component shells stand on; it knows no component.

``supervisor/`` holds the OTP supervisor actor (``actor``), the protocol
every supervised actor speaks (``protocol``) and warm spares (``spares``). Names are loaded on first use, so importing a
sibling module (storage, for instance) does not import Ray.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cluster_actors.runtime.supervisor import (
        ActorFactory,
        ChildSpec,
        SupervisedActor,
        Supervisor,
        SupervisorEscalated,
    )

_LAZY = {
    "ActorFactory": "cluster_actors.runtime.supervisor",
    "ChildSpec": "cluster_actors.runtime.supervisor",
    "SupervisedActor": "cluster_actors.runtime.supervisor",
    "Supervisor": "cluster_actors.runtime.supervisor",
    "SupervisorEscalated": "cluster_actors.runtime.supervisor",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["ActorFactory", "ChildSpec", "SupervisedActor", "Supervisor", "SupervisorEscalated"]
