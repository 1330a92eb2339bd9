"""The timed Visdom client against an in-process HTTP server: it checks the server, remembers its windows, gives up."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("visdom", reason="pip install 'mnist-ignite[visdom]'")
import requests

import mnist_ignite.handlers.visdom.client as timed


class FakeVisdom:
    """Answers POSTs as a Visdom server does (``win_exists`` from ``windows``), or never (``hang``), in a thread."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.windows: set[tuple[str, str]] = set()  # (env, window)
        self.win_exists_answer: str | None = None  # None: true/false from self.windows
        self.hang = False
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                fake.posts.append((self.path, body))
                if fake.hang:
                    fake.release.wait(10)
                    return
                answer = ""
                if self.path == "/win_exists":
                    known = "true" if (body["eid"], body["win"]) in fake.windows else "false"
                    answer = known if fake.win_exists_answer is None else fake.win_exists_answer
                elif self.path == "/events":
                    fake.windows.add((body["eid"], body["win"]))
                    answer = body["win"]
                data = answer.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.posts]

    def stop(self) -> None:
        self.release.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVisdom]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # never a proxy between the client and a local server
    fake = FakeVisdom()
    yield fake
    fake.stop()


def test_the_client_checks_the_server_and_remembers_the_windows_it_made(server: FakeVisdom, tmp_path: Path) -> None:
    """win_exists asks the server only about windows this client did not make (one request per append, not two)."""
    vis = timed.client("http://127.0.0.1", server.port, "run-env", log=tmp_path / "visdom.log")
    assert server.paths() == ["/env/run-env", "/win_exists"]
    vis.text("hello", win="notes")
    assert vis.win_exists("notes") is True and server.paths()[-1] == "/events"  # no request
    assert vis.win_exists("notes", env="other-env") is False and server.paths()[-1] == "/win_exists"
    server.windows.add(("run-env", "someone-elses"))
    assert vis.win_exists("someone-elses") is True
    [(endpoint, message)] = [json.loads(line) for line in (tmp_path / "visdom.log").read_text().splitlines()]
    assert endpoint == "events" and message["win"] == "notes"  # the log replays what was sent


def test_a_server_that_does_not_answer_as_visdom_is_refused(server: FakeVisdom) -> None:
    server.win_exists_answer = "<html>a proxy's page</html>"
    with pytest.raises(ConnectionError, match="it did not answer as a Visdom server does"):
        timed.client("http://127.0.0.1", server.port, "main")


def test_win_exists_is_none_when_the_server_cannot_say(server: FakeVisdom) -> None:
    vis = timed.client("http://127.0.0.1", server.port, "main")
    server.win_exists_answer = "maybe"
    assert vis.win_exists("w") is None
    server.stop()  # gone: no print, no exception, just "cannot say"
    assert vis.win_exists("w") is None


def test_a_server_that_never_answers_costs_the_timeout_not_the_run(
    server: FakeVisdom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timed, "TIMEOUT_S", 0.6)
    server.hang = True
    with pytest.raises(ConnectionError) as err:
        timed.client("http://127.0.0.1", server.port, "main")
    assert timed.reason(err.value) == "no answer within 1 s" and server.paths() == ["/env/main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_is_cannot_connect() -> None:
    with pytest.raises(ConnectionError) as err:
        timed.client("http://127.0.0.1", _free_port(), "main")
    assert timed.reason(err.value) == "cannot connect"


def _during(cause: BaseException | None, err: BaseException) -> BaseException:
    """``err`` as raised while handling ``cause`` (visdom replaces an HTTP error by a bare ConnectionError)."""
    err.__context__ = cause
    return err


@pytest.mark.parametrize(
    ("cause", "err", "why"),
    [
        (requests.ReadTimeout(), ConnectionError("Error connecting"), f"no answer within {timed.TIMEOUT_S:.0f} s"),
        (requests.ConnectionError(), ConnectionError("Error connecting"), "cannot connect"),
        (None, ValueError("bad answer " + "x" * 300), "ValueError: bad answer " + "x" * 189),
        (None, RuntimeError(), "RuntimeError"),
        (KeyError("w"), ConnectionError("lost"), "ConnectionError: lost"),  # a context that is not HTTP's
    ],
)
def test_reason_says_why_in_a_few_words(cause: BaseException | None, err: BaseException, why: str) -> None:
    assert timed.reason(_during(cause, err)) == why


def test_the_default_port_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISDOM_PORT", raising=False)
    assert timed.default_port() == 8097
    monkeypatch.setenv("VISDOM_PORT", "9011")
    assert timed.default_port() == 9011
