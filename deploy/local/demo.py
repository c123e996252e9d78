"""Kept for old habits: `python -m deploy.local.demo` loads the small district scenario
(`python -m scenario --scale small`), which is what `make up` runs."""

from __future__ import annotations

import asyncio
import logging
import sys

from scenario.__main__ import main, parse

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(main(parse(["--scale", "small", *sys.argv[1:]])))
