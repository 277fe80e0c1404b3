"""The OTP supervisor over Ray actors, in three parts.

* :mod:`.protocol`: what every supervised actor speaks (:class:`SupervisedActor`)
  and how a child is described (:class:`ChildSpec`, :class:`ActorFactory`);
  a component shell imports only this part.
* :mod:`.actor`: the :class:`Supervisor` actor that carries out the pure
  :class:`~cluster_actors.core.supervision.SupervisorCore`'s decisions.
* :mod:`.spares`: warm spares, children created ahead of their start.

Names are loaded on first use, so importing the protocol does not import the
supervisor actor (or OpenTelemetry).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .actor import Supervisor
    from .protocol import (
        DEFAULT_SUPERVISOR_SHUTDOWN,
        DEFAULT_WORKER_SHUTDOWN,
        ActorFactory,
        ChildCrashed,
        ChildSpec,
        SupervisedActor,
        SupervisorEscalated,
    )

_PROTOCOL = f"{__name__}.protocol"
_LAZY = {
    "Supervisor": f"{__name__}.actor",
    **dict.fromkeys(("DEFAULT_SUPERVISOR_SHUTDOWN", "DEFAULT_WORKER_SHUTDOWN", "ActorFactory",
                     "ChildCrashed", "ChildSpec", "SupervisedActor", "SupervisorEscalated"),
                    _PROTOCOL),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_SUPERVISOR_SHUTDOWN", "DEFAULT_WORKER_SHUTDOWN", "ActorFactory", "ChildCrashed",
    "ChildSpec", "SupervisedActor", "Supervisor", "SupervisorEscalated",
]
