"""``mnist-ignite visdom``: its server stops with it (signals, even kill -9 of its launcher), replay, errors."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mnist_ignite.cli import main

from conftest import ROOT

visdom = pytest.importorskip("visdom", reason="pip install 'mnist-ignite[visdom]'")

CLI = [sys.executable, str(ROOT / "examples" / "train_mnist.py")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_listening(port: int, proc: subprocess.Popen[Any], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not listening(port):
        assert proc.poll() is None, "the Visdom server exited at start-up"
        assert time.monotonic() < deadline, f"nothing listens on port {port} after {seconds} s"
        time.sleep(0.3)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited, waiting for its (dead) parent's reaper
            return True
        time.sleep(0.2)
    return False


def test_replay_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "visdom.log"
    log.write_text(json.dumps(["events", {"eid": "x", "win": "w", "data": []}]) + "\n")
    port = str(free_port())
    assert main(["visdom", "--replay", str(log), "--server", "http://127.0.0.1", "--port", port]) == 1
    assert capsys.readouterr().err == (
        f"mnist-ignite: error: no Visdom server answers at http://127.0.0.1:{port} (cannot connect); "
        f"start one with: mnist-ignite visdom --port {port}\n"
    )
    bad = tmp_path / "bad.log"
    bad.write_text(log.read_text() + "this is not json\n")
    assert main(["visdom", "--replay", str(bad), "--port", port]) == 1
    assert capsys.readouterr().err == (
        f"mnist-ignite: error: {bad}:2 is not a visdom log line (a JSON [endpoint, message] pair)\n"
    )
    assert main(["visdom", "--replay", str(tmp_path), "--port", port]) == 1
    assert capsys.readouterr().err == f"mnist-ignite: error: visdom log {tmp_path} is a directory, not a file\n"


@pytest.mark.integration  # starts a process
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_visdom_command_stops_its_server_on_a_signal(signum: int, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*CLI, "visdom", "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0
        assert "Visdom server stopped" in (proc.stdout.read() if proc.stdout else "")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not Path(f"/proc/{children[0]}").exists()  # gone, and reaped
    assert not listening(port)


def test_server_command_names_the_installer_when_assets_are_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("mnist_ignite.cli.commands.visdom.missing_assets", lambda: ["js/jquery.min.js"])
    assert main(["visdom", "--port", str(free_port())]) == 1
    assert capsys.readouterr().err == (
        "mnist-ignite: error: visdom's front-end (JS/CSS) is not installed; "
        "install it with: mnist-ignite visdom --install-assets\n"
    )


@pytest.mark.parametrize("port", ["99999", "0", "http"])
def test_a_bad_port_is_one_line(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["visdom", "--port", port]) == 2
    assert capsys.readouterr().err.startswith("mnist-ignite visdom: error: argument --port: ")


@pytest.mark.integration  # starts a process
def test_the_server_dies_with_its_launcher_even_by_kill_9(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*CLI, "visdom", "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        (child,) = _children(proc.pid)
        proc.kill()
        proc.wait(timeout=10)
        assert _gone(child), "the Visdom server outlived its launcher"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.integration  # starts a process
def test_the_dashboard_url_is_printed_and_linked_from_the_root_page(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*CLI, "visdom", "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()  # a reader thread: select() cannot see lines already buffered
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while not any("the dashboard:" in x for x in seen):  # visdom's own start-up lines come first
            assert time.monotonic() < deadline and proc.poll() is None, seen
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1.0))
        lines_read = seen
        line = next(x for x in lines_read if "the dashboard:" in x)
        assert f"http://127.0.0.1:{port}/env/mnist-ignite" in line, lines_read
        vis = visdom.Visdom(server="http://127.0.0.1", port=port, env="main", raise_exceptions=True)
        window = json.loads(vis.get_window_data("mnist-ignite", env="main"))
        assert '<a href="/env/mnist-ignite">mnist-ignite</a>' in window["content"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.integration  # starts a process
def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*CLI, "visdom", "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"port {port} on 127.0.0.1 is in use" in result.stderr
