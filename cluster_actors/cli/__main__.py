"""``python -m cluster_actors.cli``."""

import sys

from .app import main

sys.exit(main())
