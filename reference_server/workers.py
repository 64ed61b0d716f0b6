# --workers N: N server processes on one machine, as nodes of one cluster. Each is
# a whole server (gateway, API, timers, webhook worker) started with the same
# configuration plus its own node id; they share the device and HTTP ports through
# SO_REUSEPORT, so the kernel spreads connections over them, and any of them takes
# any API call (a device call is forwarded to the device's owner).
#
# This process only supervises: it starts the workers, restarts one that exits on
# its own (after a pause, so a worker failing at start does not spin), and passes
# SIGINT/SIGTERM on to all of them on shutdown. A service manager (systemd) can do
# the same with one unit per worker; the server guide shows both layouts.
from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Sequence

import trio

from .cluster import default_node_id
from .config import Config
from .logs import Logger

__all__ = ["run_workers", "worker_command"]

#: Seconds before a worker that exited on its own is started again.
RESTART_PAUSE = 2.0
#: prctl(2) option: the signal a process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def worker_command(args: Sequence[str], node_id: str) -> list[str]:
    """The command line of one worker: the supervisor's own server flags, then the
    worker's (the last occurrence of a flag wins)."""
    return [sys.executable, "-m", "reference_server", "serve", *args,
            "--workers", "1", "--reuse-port", "true", "--node-id", node_id]


async def run_workers(config: Config, args: Sequence[str]) -> None:
    """Run ``config.workers`` servers until SIGINT or SIGTERM, then stop them."""
    log = Logger(config.log_level, log_format=config.log_format)
    base = config.node_id or default_node_id()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            processes: list[trio.Process | None] = [None] * config.workers
            stopping = trio.Event()
            for index in range(config.workers):
                nursery.start_soon(_keep_running, worker_command(args, f"{base}-{index + 1}"),
                                   processes, index, stopping, log)
            log.info("workers started", workers=config.workers, node_prefix=base)
            async for signum in signals:
                log.info("stopping workers", signal=signal.Signals(signum).name)
                stopping.set()
                for process in processes:
                    if process is not None and process.returncode is None:
                        process.send_signal(signal.SIGTERM)
                break


def _die_with_parent() -> None:
    """In the worker, before it runs: the kernel sends it SIGTERM if the supervisor
    dies (killed outright, it cannot pass a signal on), so no worker outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def _keep_running(command: list[str], processes: list[trio.Process | None],
                        index: int, stopping: trio.Event, log: Logger) -> None:
    while not stopping.is_set():
        process = await trio.lowlevel.open_process(
            command, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        processes[index] = process
        code = await process.wait()
        if stopping.is_set():
            return
        log.error("worker exited; restarting it", worker=index + 1, code=code,
                  pause_s=RESTART_PAUSE)
        with trio.move_on_after(RESTART_PAUSE):
            await stopping.wait()
