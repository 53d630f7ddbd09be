"""Running the ASGI app: one uvicorn process, or several that share the port through ``SO_REUSEPORT``.

uvicorn's own ``--workers`` has all processes accept from one listening socket; with long-lived keep-alive connections
(what an EHR's integration engine keeps open) the first process to wake takes most of them and the other cores idle.
With ``SO_REUSEPORT`` each process has its own socket and the kernel spreads new connections across them. Where the
platform has no ``SO_REUSEPORT``, uvicorn's workers are used.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from types import FrameType

import uvicorn

APP = "carnet.asgi:app"
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
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_serve_one, args=(host, port), daemon=False) for _ in range(workers)]
    for p in procs:
        p.start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                try:
                    import os

                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for p in procs:
        p.join()
