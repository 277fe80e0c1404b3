"""The ``cluster-actors`` command (``app``: its parser and ``main``) and the commands it runs: ``demo``, ``chaos``,
``sim``, ``sim_demo``.

Re-exports what the module ``cluster_actors.cli`` exported before it became this
package."""

from __future__ import annotations

from .app import DEFAULT_NAME, bench_runner, build_parser, main

__all__ = ["DEFAULT_NAME", "bench_runner", "build_parser", "main"]
