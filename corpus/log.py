"""Logging and progress bars shared by every stage; `--quiet` silences both."""
from __future__ import annotations

import logging
import os
import sys

_QUIET_ENV = "K2FORGE_QUIET"


def setup_logging(level: str = "INFO", quiet: bool = False) -> None:
    """Configure the root logger once; quiet means warnings only and no progress bars (also for subprocesses)."""
    if quiet:
        os.environ[_QUIET_ENV] = "1"
        level = "WARNING"
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True)


def is_quiet() -> bool:
    return os.environ.get(_QUIET_ENV) == "1"


def progress(iterable=None, **kw):
    """A tqdm bar on stderr, disabled under --quiet or when stderr is not a terminal and K2FORGE_PROGRESS != 1."""
    from tqdm.auto import tqdm
    disable = is_quiet() or (not sys.stderr.isatty() and os.environ.get("K2FORGE_PROGRESS") != "1")
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kw)
