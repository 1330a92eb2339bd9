"""Running the app: one uvicorn process on a socket bound first, stopped cleanly by a signal.

The socket is bound before uvicorn starts, so a port in use is one line (not a traceback from
inside the event loop) and ``--port 0`` can print the port the system chose. SIGINT (Ctrl-C) and
SIGTERM stop the server gracefully: it stops accepting, lets requests in flight finish (at most
:data:`GRACE_S`), and the command exits 0 for SIGINT and 128 + N for the others (143 for
SIGTERM), like every mnist-ignite command. A second signal stops it at once. uvicorn's own
handlers would re-raise the signal after shutting down (a KeyboardInterrupt traceback, or death
by SIGTERM); :class:`Server` keeps the exit code instead. There are no worker processes: requests
run on the event loop and its thread pool, which end with the process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from mnist_ignite.errors import RunFailed

__all__ = ["GRACE_S", "STOP_SIGNALS", "Server", "bind", "exit_code", "is_loopback", "run", "server_for"]

GRACE_S = 5  # requests in flight get this long to finish after a stop signal
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MAX_CONNECTIONS = 64  # more at once are answered 503: each may hold a body of up to the size cap in memory


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: one the system picks).

    Raises:
        RunFailed: the address cannot be bound (in use, not this machine's, not allowed).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise RunFailed(f"cannot bind {host}:{port}: {err.strerror or err}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as err:
        sock.close()
        hint = ": choose another with --port (0 picks a free one)" if err.errno == 98 else ""
        raise RunFailed(f"cannot listen on {host}:{port}: {err.strerror or err}{hint}") from None
    return sock


def exit_code(signum: int | None) -> int:
    """0 when nothing stopped the server or Ctrl-C did; 128 + N for any other signal (143 for SIGTERM)."""
    return 0 if signum in (None, signal.SIGINT) else 128 + int(signum)


class Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT, SIGTERM or SIGHUP without re-raising the signal afterwards.

    ``on_started`` runs once it accepts connections, its signal handlers in place: a client (or a test)
    told the address from there can stop it with a signal at once.
    """

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.stopped_by: int | None = None
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return

        def stop(signum: int, _frame: Any) -> None:
            if self.should_exit:  # a second signal: do not wait for the requests in flight
                self.force_exit = True
            self.stopped_by = self.stopped_by or signum
            self.should_exit = True

        previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def server_for(app: Any, on_started: Callable[[], None] | None = None) -> Server:
    """A :class:`Server` for ``app``: quiet (warnings only, no access log), bounded, with a grace period."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=GRACE_S,
        server_header=False,
    )
    return Server(config, on_started)


def run(app: Any, sock: socket.socket, on_started: Callable[[], None] | None = None) -> int:
    """Serve ``app`` on ``sock`` until a signal stops it; the command's exit code (see :func:`exit_code`)."""
    server = server_for(app, on_started)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return exit_code(server.stopped_by)
