"""Running the app: binding (a port in use is one line), loopback hosts, exit codes, signals caught, a real socket.

Unit lane: the server runs in a thread of this process; the signal tests raise the signal in this
process. The command started as a real process and stopped by SIGINT/SIGTERM is in
``tests/cli/commands/test_serve.py``.
"""

from __future__ import annotations

import signal
import socket
import threading

import pytest

pytest.importorskip("uvicorn", reason="pip install 'mnist-ignite[serve]'")
import httpx
from fastapi import FastAPI

from mnist_ignite.errors import RunFailed
from mnist_ignite.serve.server import STOP_SIGNALS, Server, bind, exit_code, is_loopback, server_for


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("192.168.1.10", False), ("example.org", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_private(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("signum", "code"), [(None, 0), (signal.SIGINT, 0), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_exit_codes_follow_the_signal(signum: int | None, code: int) -> None:
    assert exit_code(signum) == code


def test_port_zero_picks_a_free_port_and_a_port_in_use_is_one_line() -> None:
    with bind("127.0.0.1", 0) as first:
        port = first.getsockname()[1]
        assert port > 0
        with pytest.raises(RunFailed) as caught:
            bind("127.0.0.1", port)
        message = str(caught.value)
        assert message.startswith(f"cannot listen on 127.0.0.1:{port}: ") and "--port" in message
        assert "\n" not in message


def test_an_unknown_host_is_one_line() -> None:
    with pytest.raises(RunFailed, match=r"^cannot bind no-such-host\.invalid:0: "):
        bind("no-such-host.invalid", 0)


def test_the_server_answers_on_its_socket_and_stops_when_told() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    started = threading.Event()
    server = server_for(app, on_started=started.set)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert started.wait(20) and server.started
    assert httpx.get(f"http://127.0.0.1:{port}/ping", timeout=5).json() == {"pong": "yes"}
    server.should_exit = True
    thread.join(timeout=20)
    assert not thread.is_alive() and server.stopped_by is None and exit_code(server.stopped_by) == 0
    sock.close()
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", port))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_asks_the_server_to_stop_and_is_not_raised_again(signum: int) -> None:
    """uvicorn's own handlers re-raise the signal after shutdown (a traceback, or death): ours keep the exit code."""
    server = Server(server_for(FastAPI()).config)
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with server.capture_signals():
        signal.raise_signal(signum)
        assert server.should_exit and not server.force_exit and server.stopped_by == signum
        signal.raise_signal(signal.SIGTERM)  # a second signal: stop at once
        assert server.force_exit and server.stopped_by == signum  # the first one decides the exit code
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before
