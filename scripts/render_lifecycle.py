"""Regenerate the lifecycle diagram block in the project's documents.

Usage::

    python scripts/render_lifecycle.py            # rewrite README.md and docs/lifecycle.md
    python scripts/render_lifecycle.py --check    # exit 1 if any block is stale
    python scripts/render_lifecycle.py FILE ...   # other files carrying the markers

The diagram is generated from ``cluster_actors.core.lifecycle.TRANSITIONS``;
only the text between ``<!-- lifecycle:begin -->`` and
``<!-- lifecycle:end -->`` is replaced. Files without the markers are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cluster_actors.core.lifecycle import has_markers, render_into  # noqa: E402

DEFAULT_FILES = (ROOT / "README.md", ROOT / "docs" / "lifecycle.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, default=list(DEFAULT_FILES))
    parser.add_argument("--check", action="store_true",
                        help="report stale blocks and exit 1 instead of rewriting")
    args = parser.parse_args(argv)
    stale = []
    for path in args.files:
        if not path.exists():
            print(f"skip {path}: no such file")
            continue
        text = path.read_text(encoding="utf-8")
        if not has_markers(text):
            print(f"skip {path}: no lifecycle markers")
            continue
        fresh = render_into(text)
        if fresh == text:
            print(f"ok   {path}")
        elif args.check:
            stale.append(path)
            print(f"stale {path}")
        else:
            path.write_text(fresh, encoding="utf-8")
            print(f"wrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
