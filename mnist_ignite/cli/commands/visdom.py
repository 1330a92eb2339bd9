"""``mnist-ignite visdom``: start a local Visdom server, replay a run's ``visdom.log`` into one, install its front-end.

The dashboard itself is the ``visdom`` handler (:mod:`mnist_ignite.handlers.visdom`); this command
serves it. The server runs as a child process in its own session and stops with this command
(SIGINT, SIGTERM). visdom loads after the arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mnist_ignite.cli.commands.common import command_parser
from mnist_ignite.config.argv import flag_type
from mnist_ignite.config.toml import read_text_file
from mnist_ignite.errors import AssetsError, ConfigError, MissingExtraError, RunFailed
from mnist_ignite.handlers.visdom.assets import install_assets, missing_assets
from mnist_ignite.handlers.visdom.client import client, default_port, reason
from mnist_ignite.handlers.visdom.plugin import DEFAULT_ENV
from mnist_ignite.log import warn

__all__ = ["HELP", "main", "replay", "serve"]

HELP = "start a local Visdom server for the live dashboard, or replay a run's visdom.log into one"

STARTUP_WAIT_S = 15.0  # what the launcher waits for the server to answer before it prints the dashboard's URL
MAX_LOG_BYTES = 1 << 30  # a visdom log larger than this is no run's log
STOP_WAIT_S = 10.0  # what `mnist-ignite visdom` gives its server to exit after a signal


ASSETS_HINT = "visdom's front-end (JS/CSS) is not installed; install it with: mnist-ignite visdom --install-assets"


_PORT = flag_type(int, lambda port: 1 <= port <= 65535, "must be between 1 and 65535")


def _die_with_parent(parent: int) -> Callable[[], None]:
    """In the server's process, before it runs: the kernel sends it SIGTERM when this launcher dies, even
    by SIGKILL (Linux ``PR_SET_PDEATHSIG``), so no server is left behind."""

    def prepare() -> None:
        if sys.platform.startswith("linux"):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the launcher died before the line above
                os._exit(1)

    return prepare


def _check_port(host: str, port: int) -> None:
    """A port that something already listens on is one line, not a server that dies at start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host if host not in ("localhost", "") else "127.0.0.1", port))
        except OSError as err:
            raise RunFailed(
                f"port {port} on {host} is in use ({err.strerror or err}); another Visdom may be running there: "
                f"open it, or choose another port with --port"
            ) from None


def _link_the_dashboards(host: str, port: int) -> list[str]:
    """Once the server answers: a window on its root page linking the mnist-ignite environments; their URLs."""
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    deadline = time.monotonic() + STARTUP_WAIT_S
    while True:
        try:
            vis = client(base.rsplit(":", 1)[0], port, "main")
            break
        except Exception:
            if time.monotonic() > deadline:
                return [f"{base}/env/{quote(DEFAULT_ENV)}"]
            time.sleep(0.25)
    envs = sorted({DEFAULT_ENV, *(e for e in vis.get_env_list() if str(e).startswith(DEFAULT_ENV))})
    links = "".join(f'<li><a href="/env/{quote(e)}">{e}</a></li>' for e in envs)
    vis.text(
        f"<b>mnist-ignite</b>: each run's dashboard is an environment of its own (--visdom-env, "
        f"default {DEFAULT_ENV}):<ul>{links}</ul>",
        win="mnist-ignite",
        env="main",
        opts={"title": "mnist-ignite dashboards", "width": 420, "height": 200},
    )
    return [f"{base}/env/{quote(e)}" for e in envs]


def serve(port: int, host: str = "127.0.0.1") -> int:
    """Run ``python -m visdom.server`` until it exits, or until SIGINT/SIGTERM/SIGHUP, which it forwards and waits on.

    Raises:
        AssetsError: visdom's front-end is not installed.
        RunFailed: the port is in use.
    """
    if missing_assets():
        raise AssetsError(ASSETS_HINT)
    _check_port(host, port)
    cmd = [sys.executable, "-m", "visdom.server", "-port", str(port), "--hostname", host]
    if host in ("127.0.0.1", "localhost"):
        cmd.append("-bind_local")
    # its own session: a terminal's Ctrl-C reaches only us, and we pass it on once; it dies with us
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
    stop_by: list[float] = []

    def forward(signum: int, _frame: Any) -> None:
        stop_by.append(time.monotonic() + STOP_WAIT_S)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        if host == "0.0.0.0":
            warn("visdom: --host 0.0.0.0: the dashboard is open to the network, with no password")
        urls = _link_the_dashboards(host, port) if proc.poll() is None else []
        if urls:
            print(f"Visdom on http://{host}:{port} (Ctrl-C stops it); the dashboard: {', '.join(urls)}", flush=True)
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stop_by and time.monotonic() > stop_by[0]:
                    proc.kill()  # it ignored the signal
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if proc.poll() is None:  # an exception here: never leave the server behind
            proc.kill()
            proc.wait()
    if stop_by:
        print("Visdom server stopped", flush=True)
        return 0
    if code:
        raise RunFailed(f"the Visdom server exited with code {code}")
    return 0


def _read_log(log: Path) -> list[tuple[str, dict[str, Any]]]:
    """The events of a visdom log, checked before anything is sent."""
    try:
        lines = read_text_file(log, "visdom log", MAX_LOG_BYTES).splitlines()
    except ConfigError as err:
        raise RunFailed(str(err)) from None
    events = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            endpoint, msg = json.loads(line)
            if not isinstance(endpoint, str) or not isinstance(msg, dict):
                raise ValueError
        except ValueError:
            raise RunFailed(f"{log}:{n} is not a visdom log line (a JSON [endpoint, message] pair)") from None
        events.append((endpoint, msg))
    if not events:
        raise RunFailed(f"{log} holds no events")
    return events


def replay(log: Path, server: str, port: int, env: str | None = None) -> int:
    """Send every logged event to the server (optionally into another environment)."""
    events = _read_log(log)
    try:
        vis = client(server, port, env or "main")
    except Exception as err:
        raise RunFailed(
            f"no Visdom server answers at {server}:{port} ({reason(err)}); "
            f"start one with: mnist-ignite visdom --port {port}"
        ) from None
    envs = set()
    for i, (endpoint, msg) in enumerate(events):
        if env:
            msg["eid"] = env
        envs.add(str(msg.get("eid")))
        try:
            vis._send(msg, endpoint, from_log=True)  # what Visdom.replay_log does, one event at a time
        except Exception as err:
            raise RunFailed(f"the server stopped answering after {i} of {len(events)} events ({reason(err)})") from None
    urls = ", ".join(f"{server}:{port}/env/{quote(e)}" for e in sorted(envs))
    print(f"replayed {len(events)} events: {urls}")
    return 0


# command: mnist-ignite visdom ---------------------------------------------------------
def main(argv: list[str]) -> int:
    """``mnist-ignite visdom``: start a local server, replay a run's log into one, or install the front-end."""
    parser = command_parser(
        "visdom",
        "Start a Visdom server (bound to 127.0.0.1 unless --host says otherwise), "
        "replay a run's OUTPUT/visdom.log into a running server, or install visdom's front-end.",
    )
    parser.add_argument("--port", type=_PORT, default=default_port(), help="port (env VISDOM_PORT)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network")
    parser.add_argument("--replay", metavar="VISDOM.log", help="send a run's logged events to the server")
    parser.add_argument(
        "--server", default=os.environ.get("VISDOM_SERVER_URL", "http://localhost"), help="server URL for --replay"
    )
    parser.add_argument("--env", help="with --replay: put the events in this environment instead")
    parser.add_argument(
        "--install-assets",
        action="store_true",
        help="install visdom's JS/CSS (from the npm registry with npm, else visdom's own download) and exit",
    )
    args = parser.parse_args(argv)
    if importlib.util.find_spec("visdom") is None:
        raise MissingExtraError("the visdom package is missing: pip install 'mnist-ignite[visdom]'")
    if args.install_assets:
        install_assets()
        return 0
    if args.replay:
        return replay(Path(args.replay), args.server, args.port, args.env)
    return serve(args.port, args.host)
