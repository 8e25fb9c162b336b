"""A worker process for the risk periods' work that holds the GIL: the SVI fits.

A fit is a Nelder-Mead search (SciPy's, in Python) of a few thousand small kernel calls; in a
worker thread it held the GIL for tens of milliseconds per expiry, and the event loop waited for
it (up to the interpreter's 5 ms switch interval each time), so a quote's latency and the intake's
throughput paid for every skew period. In a process of its own it runs beside the loop.

The process is spawned at the first call (a daemon whose skew period never comes starts none),
ignores SIGINT (Ctrl-C in a terminal reaches the whole process group; the daemon itself shuts
it down), and is spawned again at the next call if it dies. What it runs must be a pure function
of picklable arguments (the portfolio's copies: arrays and frozen dataclasses).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

__all__ = ["WorkerProcess"]

logger = logging.getLogger(__name__)

R = TypeVar("R")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerProcess:
    """One worker process, started on first use; :meth:`close` stops it."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, fn: Callable[..., R], *args: object) -> R:
        """``fn(*args)`` in the worker process.

        Raises:
            BrokenProcessPool: the process died meanwhile (a new one serves the next call).
            Exception: what ``fn`` raised.
        """
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded process
                initializer=_ignore_sigint,
            )
            logger.info("risk worker process starting")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:
            logger.error("risk worker process died; a new one serves the next period")
            self.close()
            raise

    def close(self) -> None:
        """Stop the process (what it runs is abandoned)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
