"""A Visdom client that gives up: every HTTP call to the server times out after ``TIMEOUT_S``.

``visdom.Visdom`` sets no timeout, so a server that stops answering would hang a run (and its
end). Used by the ``visdom`` plugin and by ``mnist-ignite visdom --replay``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from pathlib import Path
from typing import Any

__all__ = ["TIMEOUT_S", "client", "default_port", "reason"]

TIMEOUT_S = 5.0  # one HTTP call to the server (connect, then wait for the answer)


def default_port() -> int:
    return int(os.environ.get("VISDOM_PORT", "8097"))


@functools.cache
def _client_class() -> type:
    import visdom

    class TimedVisdom(visdom.Visdom):
        """``visdom.Visdom`` whose POSTs give up after ``TIMEOUT_S`` (visdom sets no timeout)."""

        def __init__(self, **kwargs: Any) -> None:
            self.made: set[tuple[str, str]] = set()  # (env, window) this client created
            super().__init__(**kwargs)

        def _handle_post(self, url: str, data: Any = None) -> str:  # visdom's documented override point
            return self.session.post(url, data=data if data is not None else {}, timeout=TIMEOUT_S).text

        def _send(self, msg: dict[str, Any], endpoint: str = "events", *args: Any, **kwargs: Any) -> Any:
            # every visdom call goes through _send (private, but the one place to see which windows exist)
            answer = super()._send(msg, endpoint, *args, **kwargs)
            if endpoint == "events" and msg.get("win") and not self.offline:
                self.made.add((msg["eid"], msg["win"]))
            return answer

        def win_exists(self, win: str, env: str | None = None) -> bool | None:
            """As visdom's, but without a request for a window this client made, nor a print on a failure.

            ``line(update="append")`` asks this before every append: one request instead of two, and
            on a failure the append that follows is still logged, then fails and says so.
            """
            if (env or self.env, win) in self.made:
                return True
            try:
                answer = self._win_exists_wrap(win, env)
            except ConnectionError:
                return None
            return answer == "true" if answer in ("true", "false") else None

    return TimedVisdom


def client(server: str, port: int, env: str, log: Path | None = None) -> Any:
    """A visdom client on the server, with a timeout on every call.

    Raises:
        ConnectionError: the server did not answer within ``TIMEOUT_S``, or not as Visdom does.
    """
    quiet = io.StringIO()  # visdom prints session chatter of its own
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        vis = _client_class()(
            server=server,
            port=port,
            env=env,
            log_to_filename=str(log) if log else None,
            use_incoming_socket=False,
            raise_exceptions=True,
        )  # its constructor POSTs the env: the first call that can fail
        # the request win_exists() makes, without its print on a failure: a Visdom server answers true/false
        if vis._win_exists_wrap("") not in ("true", "false"):
            raise ConnectionError("it did not answer as a Visdom server does")
    return vis


def reason(err: BaseException) -> str:
    """Why a call failed, in a few words (visdom replaces the HTTP error by a bare ConnectionError)."""
    import requests

    cause = err.__context__ if isinstance(err.__context__, requests.RequestException) else err
    if isinstance(cause, requests.Timeout):
        return f"no answer within {TIMEOUT_S:.0f} s"
    if isinstance(cause, requests.ConnectionError):
        return "cannot connect"
    text = str(cause)
    return f"{type(cause).__name__}: {text[:200]}" if text else type(cause).__name__
