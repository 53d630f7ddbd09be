"""Running the ASGI app: one uvicorn process, or several that share the port through ``SO_REUSEPORT``.

uvicorn's own ``--workers`` has all processes accept from one listening socket; with long-lived keep-alive connections
(what an EHR's integration engine keeps open) the first process to wake takes most of them and the other cores idle.
With ``SO_REUSEPORT`` each process has its own socket and the kernel spreads new connections across them. Where the
platform has no ``SO_REUSEPORT``, uvicorn's workers are used.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

import structlog
import uvicorn

APP = "carnet.asgi:app"
RESTART_CHECK_SECONDS = 0.5
QUICK_DEATH_SECONDS = 10.0  # a worker that dies sooner after its start counts as a failure to start
MAX_QUICK_DEATHS = 5
logger = structlog.get_logger("carnet")
LOG = {"log_level": "warning", "access_log": False}


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_one(host: str, port: int) -> None:
    sock = _bind(host, port)
    uvicorn.Server(uvicorn.Config(APP, **LOG)).run(sockets=[sock])  # type: ignore[arg-type]


def serve(host: str, port: int, workers: int, *, with_worker: bool = False) -> None:
    if with_worker:  # the notification worker, as a thread of this (parent) process: for the embedded default
        from carnet.compose import build_services
        from carnet.config import Settings
        from carnet.notify.worker import start_in_thread

        start_in_thread(build_services(Settings()))
    if workers <= 1:
        uvicorn.run(APP, host=host, port=port, **LOG)  # type: ignore[arg-type]
        return
    if not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP, host=host, port=port, workers=workers, **LOG)  # type: ignore[arg-type]
        return
    from carnet.logs import configure as configure_logs

    configure_logs()  # the parent's own lines (a worker replaced) as the workers' are: allow-listed, flushed
    ctx = multiprocessing.get_context("spawn")

    def worker() -> multiprocessing.process.BaseProcess:
        p = ctx.Process(target=_serve_one, args=(host, port), daemon=False)
        p.start()
        return p

    procs = [worker() for _ in range(workers)]
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()
        for p in procs:
            if p.is_alive() and p.pid is not None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervise(procs, worker, stopping)


def supervise(procs: list[multiprocessing.process.BaseProcess],
              replacement: Callable[[], multiprocessing.process.BaseProcess], stopping: threading.Event,
              interval: float = RESTART_CHECK_SECONDS) -> None:
    """Until ``stopping``: a worker that died (killed, out of memory) is replaced, so that a node keeps its processes
    and its port answers; once stopping, wait for every worker to end. A worker that exits with an error soon after
    its start, again and again (a configuration error: its master key refused, say), is not replaced past
    :data:`MAX_QUICK_DEATHS` times in a row: then the node stops, with the worker's exit code. A worker killed by a
    signal is always replaced."""
    quick = 0
    born = [time.monotonic()] * len(procs)
    while not stopping.is_set():
        for i, p in enumerate(procs):
            if p.is_alive() or stopping.is_set():
                continue
            failed_start = (p.exitcode or 0) > 0 and time.monotonic() - born[i] < QUICK_DEATH_SECONDS
            quick = quick + 1 if failed_start else 0  # a kill (a signal) is no failure to start
            if quick > MAX_QUICK_DEATHS:
                stopping.set()
                for q in procs:
                    if q.is_alive() and q.pid is not None:
                        os.kill(q.pid, signal.SIGTERM)
                break
            logger.warning("server.worker_replaced", status=p.exitcode)
            procs[i], born[i] = replacement(), time.monotonic()
        stopping.wait(interval)
    for p in procs:
        p.join()
    codes = [p.exitcode for p in procs if p.exitcode]
    if quick > MAX_QUICK_DEATHS and codes:
        raise SystemExit(codes[0])
