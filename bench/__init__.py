"""Benchmarks (`make bench`). They run the services on the built-in development secrets, so
they turn development mode on (shared/settings.py warns once per process)."""

import os

os.environ.setdefault("GRID_DEV_MODE", "1")
