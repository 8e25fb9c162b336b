"""The risk worker process (engine.runtime.worker): runs pure functions beside the event loop,
survives Ctrl-C reaching the process group, and is replaced when it dies."""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from engine.runtime.worker import WorkerProcess


def _raise(text: str) -> None:
    raise ValueError(text)


def _ignores_sigint(pid: int) -> bool:
    """Whether the process ignores SIGINT: its bit in the kernel's ``SigIgn`` mask."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(mask, 16) >> (signal.SIGINT - 1) & 1)


async def test_it_runs_a_function_in_another_process_and_is_replaced_when_killed() -> None:
    worker = WorkerProcess()
    assert not _ignores_sigint(os.getpid())
    try:
        pid = await worker.run(os.getpid)
        assert pid != os.getpid()
        assert await worker.run(divmod, 7, 2) == (3, 1)
        assert await worker.run(os.getpid) == pid  # one process, kept
        with pytest.raises(ValueError, match="bad input"):
            await worker.run(_raise, "bad input")  # what the function raises comes back
        assert await worker.run(os.getpid) == pid
        assert _ignores_sigint(pid)  # Ctrl-C in a terminal: the daemon stops it, not the key
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await worker.run(os.getpid)
        again = await worker.run(os.getpid)
        assert again not in (pid, os.getpid())
    finally:
        worker.close()


async def test_a_closed_worker_starts_none_until_used() -> None:
    worker = WorkerProcess()
    worker.close()  # never started: nothing to stop
    assert await worker.run(abs, -3) == 3
    worker.close()
    worker.close()
