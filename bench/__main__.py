"""``python -m bench``: the benchmark's command line (:func:`bench.cli.main`)."""

from __future__ import annotations

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
