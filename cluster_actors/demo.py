"""``make demo``: the main job. Runs the simulated cluster demo."""

from __future__ import annotations

from .sim_demo import main

if __name__ == "__main__":
    main()
