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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mnist_ignite.cli.commands.common import command_parser
from mnist_ignite.config.argv import flag_type
from mnist_ignite.errors import AssetsError
from mnist_ignite.handlers.visdom.assets import install_assets, missing_assets
from mnist_ignite.handlers.visdom.client import client, default_port, reason

__all__ = ["HELP", "main", "replay", "serve"]

HELP = "start a local Visdom server for the live dashboard, or replay a run's visdom.log into one"

STOP_WAIT_S = 10.0  # what `mnist-ignite visdom` gives its server to exit after a signal


ASSETS_HINT = "visdom's front-end (JS/CSS) is not installed; install it with: mnist-ignite visdom --install-assets"


_PORT = flag_type(int, lambda port: 1 <= port <= 65535, "must be between 1 and 65535")


def _error(message: str) -> int:
    print(f"mnist-ignite visdom: error: {message}", file=sys.stderr)
    return 1


def serve(port: int, host: str = "127.0.0.1") -> int:
    """Run ``python -m visdom.server`` until it exits, or until SIGINT/SIGTERM, which it forwards and waits on."""
    if missing_assets():
        return _error(ASSETS_HINT)
    cmd = [sys.executable, "-m", "visdom.server", "-port", str(port), "--hostname", host]
    if host in ("127.0.0.1", "localhost"):
        cmd.append("-bind_local")
    # its own session: a terminal's Ctrl-C reaches only us, and we pass it on once
    proc = subprocess.Popen(cmd, start_new_session=True)
    print(f"Visdom on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    stop_by: list[float] = []

    def forward(signum: int, _frame: Any) -> None:
        stop_by.append(time.monotonic() + STOP_WAIT_S)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
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
    if stop_by:
        print("Visdom server stopped", flush=True)
        return 0
    return code


def _read_log(log: Path) -> list[tuple[str, dict[str, Any]]]:
    """The events of a visdom log, checked before anything is sent."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {log}: {getattr(err, 'strerror', None) or err}") from None
    events = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            endpoint, msg = json.loads(line)
            if not isinstance(endpoint, str) or not isinstance(msg, dict):
                raise ValueError
        except ValueError:
            raise ValueError(f"{log}:{n} is not a visdom log line (a JSON [endpoint, message] pair)") from None
        events.append((endpoint, msg))
    if not events:
        raise ValueError(f"{log} holds no events")
    return events


def replay(log: Path, server: str, port: int, env: str | None = None) -> int:
    """Send every logged event to the server (optionally into another environment)."""
    try:
        events = _read_log(log)
    except ValueError as err:
        return _error(str(err))
    try:
        vis = client(server, port, env or "main")
    except Exception as err:
        return _error(
            f"no Visdom server answers at {server}:{port} ({reason(err)}); "
            f"start one with: mnist-ignite visdom --port {port}"
        )
    envs = set()
    for i, (endpoint, msg) in enumerate(events):
        if env:
            msg["eid"] = env
        envs.add(str(msg.get("eid")))
        try:
            vis._send(msg, endpoint, from_log=True)  # what Visdom.replay_log does, one event at a time
        except Exception as err:
            return _error(f"the server stopped answering after {i} of {len(events)} events ({reason(err)})")
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
        return _error("the visdom package is missing: pip install 'mnist-ignite[visdom]'")
    if args.install_assets:
        try:
            install_assets()
        except AssetsError as err:
            return _error(str(err))
        return 0
    if args.replay:
        return replay(Path(args.replay), args.server, args.port, args.env)
    return serve(args.port, args.host)
