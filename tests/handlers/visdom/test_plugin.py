"""Against real Visdom servers that the tests start on free localhost ports (and one fake that never answers)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mnist_ignite.cli import main

from conftest import ROOT, small_args

visdom = pytest.importorskip("visdom", reason="pip install 'mnist-ignite[visdom]'")

from mnist_ignite.handlers.visdom.assets import missing_assets  # noqa: E402
from mnist_ignite.handlers.visdom.client import TIMEOUT_S  # noqa: E402
from mnist_ignite.handlers.visdom.plugin import CLOSE_WAIT_S, VisdomPlugin  # noqa: E402

WINDOWS = ["loss", "accuracy", "train_loss", "lr", "samples", "misclassified", "run"]  # the page's order
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


class Server:
    """``python -m visdom.server`` on 127.0.0.1 with its own env folder."""

    def __init__(self, port: int, env_path: Path) -> None:
        self.port = port
        cmd = ["-m", "visdom.server", "-port", str(port), "--hostname", "127.0.0.1", "-bind_local"]
        self.proc = subprocess.Popen(
            [sys.executable, *cmd, "-env_path", str(env_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_listening(port, self.proc)

    def client(self, env: str) -> Any:
        return visdom.Visdom(
            server="http://127.0.0.1", port=self.port, env=env, use_incoming_socket=False, raise_exceptions=True
        )

    def windows(self, env: str) -> dict[str, Any]:
        return json.loads(self.client(env).get_window_data(env=env))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGCONT)  # a stopped process dies of SIGKILL too, but not before SIGCONT
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert not missing_assets(), "run `mnist-ignite visdom --install-assets` first (the README's test command does)"
    s = Server(free_port(), tmp_path_factory.mktemp("visdom-env"))
    yield s
    s.stop()


def points(window: dict[str, Any]) -> list[int]:
    """Points per trace; the placeholder a fresh window starts with (NaN, stored as null) does not count."""
    return [sum(x is not None for x in trace["x"]) for trace in window["content"]["data"]]


def visdom_args(data_dir: str, out: Path, port: int, env: str, epochs: int = 2) -> list[str]:
    """A small run as users run it (the default handlers, plots included) with the dashboard on."""
    args = small_args(data_dir, out, "--epochs", str(epochs), train=512, eval_=256)
    visdom_on = ["--visdom", "--visdom-port", str(port), "--visdom-server", "http://127.0.0.1"]
    return [a for a in args if a != "--no-plots"] + [*visdom_on, "--visdom-env", env, "--visdom-every", "4"]


def tiles(png: bytes | Path) -> int:
    """Digit tiles in a grid picture: dark squares on a white figure, counted as rows x columns of dark bands."""
    image = Image.open(io.BytesIO(png) if isinstance(png, bytes) else png)
    dark = np.asarray(image.convert("L")) < 64

    def bands(profile: np.ndarray) -> int:
        on = profile > 0.3 * profile.max()
        return int(on[0]) + int(np.count_nonzero(on[1:] & ~on[:-1]))

    return bands(dark.sum(axis=0)) * bands(dark.sum(axis=1))


def test_live_windows_in_page_order_with_markers_log_lr_and_12_misclassified(
    server: Server, data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "live"
    assert main(visdom_args(data_dir, out, server.port, "live")) == 0
    assert f"dashboard at http://127.0.0.1:{server.port}/env/live" in capsys.readouterr().out
    wins = server.windows("live")
    assert list(wins) == WINDOWS  # curves, then images, then the settings
    assert points(wins["train_loss"]) == [16 // 4]  # 8 iterations/epoch, every 4
    assert points(wins["lr"]) == [4]
    assert points(wins["loss"]) == [2, 2]  # train and test, one point per epoch
    assert points(wins["accuracy"]) == [2, 2]
    for name in ("loss", "accuracy", "train_loss", "lr"):
        assert {trace["mode"] for trace in wins[name]["content"]["data"]} == {"lines+markers"}
    assert wins["lr"]["content"]["layout"]["yaxis"]["type"] == "log"
    src = wins["misclassified"]["content"]["src"]
    png = base64.b64decode(src.split(",", 1)[1])
    assert tiles(png) == tiles(out / "plots" / "misclassified.png") == 12
    assert (out / "visdom.log").stat().st_size > 0


def test_resumed_run_appends_to_the_same_windows(server: Server, data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    assert main(visdom_args(data_dir, out, server.port, "resume", epochs=1)) == 0
    assert main([*visdom_args(data_dir, out, server.port, "resume", epochs=2), "--resume", "auto"]) == 0
    wins = server.windows("resume")
    assert list(wins) == WINDOWS
    assert points(wins["loss"]) == [2, 2] and points(wins["train_loss"]) == [4]


def test_no_server_exits_0_and_the_log_replays(
    server: Server, data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "offline"
    assert main(visdom_args(data_dir, out, free_port(), "offline")) == 0
    err = capsys.readouterr().err
    assert err.count("warning: visdom") == 1 and "cannot connect" in err
    replay = ["visdom", "--replay", str(out / "visdom.log"), "--server", "http://127.0.0.1", "--port", str(server.port)]
    assert main(replay) == 0
    assert f"http://127.0.0.1:{server.port}/env/offline" in capsys.readouterr().out
    wins = server.windows("offline")
    assert list(wins) == WINDOWS
    assert points(wins["loss"]) == [2, 2]


class KillServer:
    """Stops a server after the first epoch, mid-run."""

    name = "kill_server"

    def __init__(self, server: Server) -> None:
        self.server = server

    def attach(self, ctx: Any) -> None:
        from ignite.engine import Events

        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda _: self.server.stop())


def test_server_killed_mid_run_training_finishes_and_the_log_has_everything(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doomed = Server(free_port(), tmp_path / "env")
    out = tmp_path / "killed"
    assert main(visdom_args(data_dir, out, doomed.port, "killed", epochs=3), plugins=[KillServer(doomed)]) == 0
    assert "stopped answering" in capsys.readouterr().err
    logged = [json.loads(line)[1] for line in (out / "visdom.log").read_text().splitlines()]
    epoch_points = [m for m in logged if m.get("win") == "loss" and m["data"][0]["x"][0] is not None]
    assert len(epoch_points) == 3  # epochs 2 and 3 happened after the kill and are in the log
    assert json.loads((out / "metrics.json").read_text())[-1]["epoch"] == 3


def _run_in_background(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    errors = tmp_path / "stderr.txt"
    proc = subprocess.Popen(
        [*CLI, *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=errors.open("w"),
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return proc, errors


def test_server_frozen_mid_run_the_run_ends_within_30_s_of_its_last_epoch(data_dir: str, tmp_path: Path) -> None:
    frozen = Server(free_port(), tmp_path / "env")
    out = tmp_path / "frozen"
    try:
        proc, errors = _run_in_background(visdom_args(data_dir, out, frozen.port, "frozen", epochs=4), tmp_path)
        deadline = time.monotonic() + 300
        while not (out / "metrics.json").exists():  # the first epoch is done
            assert proc.poll() is None and time.monotonic() < deadline, errors.read_text()
            time.sleep(0.1)
        frozen.proc.send_signal(signal.SIGSTOP)  # accepts connections (the kernel does), never answers
        assert proc.wait(timeout=300) == 0, errors.read_text()
        ended = time.time()
    finally:
        frozen.stop()
    last_epoch = (out / "metrics.json").stat().st_mtime  # rewritten at every epoch end
    assert json.loads((out / "metrics.json").read_text())[-1]["epoch"] == 4
    assert ended - last_epoch < 30, f"the run ended {ended - last_epoch:.1f} s after its last epoch"
    err = errors.read_text()
    assert err.count("warning: visdom") == 1, err
    # a send that times out mid-run, or, when the run ends first, the end of the run not waiting for it
    assert f"no answer within {TIMEOUT_S:.0f} s" in err or "did not take the last" in err, err
    assert (out / "final_model.pt").is_file()
    logged = [json.loads(line)[1] for line in (out / "visdom.log").read_text().splitlines()]
    assert len([m for m in logged if m.get("win") == "loss" and m["data"][0]["x"][0] is not None]) == 4


class SilentServer:
    """Answers GET at once and never answers a POST (a proxy or a half-dead server)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.posts = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                request = conn.recv(65536)
            except OSError:
                conn.close()
                continue
            if request.startswith(b"GET"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                conn.close()
            else:
                self.posts += 1
                self.held.append(conn)  # read, never answered

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_server_that_never_answers_a_post_costs_one_warning(data_dir: str, tmp_path: Path) -> None:
    silent = SilentServer()
    out = tmp_path / "silent"
    try:
        proc, errors = _run_in_background(visdom_args(data_dir, out, silent.port, "silent"), tmp_path)
        assert proc.wait(timeout=300) == 0, errors.read_text()
    finally:
        silent.stop()
    err = errors.read_text()
    assert err.count("warning: visdom") == 1 and f"no answer within {TIMEOUT_S:.0f} s" in err, err
    assert silent.posts >= 1  # the client did try, and gave up
    assert (out / "final_model.pt").is_file() and (out / "visdom.log").stat().st_size > 0


def test_close_gives_up_after_its_deadline_and_keeps_the_rest_in_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A queue that cannot drain in time (a send that takes 30 s): close returns, the rest goes to the log."""
    from mnist_ignite.plugins.background import Background

    plugin = VisdomPlugin()
    plugin.log = tmp_path / "visdom.log"
    plugin.vis = visdom.Visdom(env=plugin.env, offline=True, log_to_filename=str(plugin.log))
    plugin.worker = Background(plugin.name, on_error=plugin._offline)
    release = threading.Event()
    plugin._submit("a slow send", lambda: release.wait(30))
    for epoch in range(3):
        plugin._send("text", text=f"event {epoch}", win="run")
    plugin.vis.offline = False  # as if online: these three would be sent if the queue moved
    threading.Timer(CLOSE_WAIT_S + 1, release.set).start()  # the slow send ends after close's deadline
    started = time.monotonic()
    plugin.close()
    took = time.monotonic() - started
    assert CLOSE_WAIT_S <= took < CLOSE_WAIT_S + TIMEOUT_S + 2
    err = capsys.readouterr().err
    assert err.count("warning: visdom") == 1 and "did not take the last 4 event(s)" in err
    logged = [json.loads(line)[1]["data"] for line in plugin.log.read_text().splitlines()]
    assert len(logged) == 3  # never sent, all in the log


def test_chromium_screenshot_mid_run_shows_curves_first(server: Server, data_dir: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for this test")
        pytest.skip("chromium is not installed")
    out = tmp_path / "shot"
    proc, errors = _run_in_background(visdom_args(data_dir, out, server.port, "shot", epochs=4), tmp_path)
    deadline = time.monotonic() + 300
    while not (out / "metrics.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, errors.read_text()
        time.sleep(0.1)
    png = tmp_path / "dashboard.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tempfile.mkdtemp()}",
            "--window-size=1280,900",
            "--virtual-time-budget=10000",
            f"--screenshot={png}",
            f"http://127.0.0.1:{server.port}/env/shot",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    running = proc.poll() is None
    assert proc.wait(timeout=300) == 0, errors.read_text()
    assert running, "the run ended before the screenshot: not a mid-run picture"
    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 900)
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 200  # plots, digits and text, not a blank or error page
    # Visdom's dark-blue background and the white windows are both there
    assert any(count > 10_000 and rgb[2] > 100 and rgb[0] < 100 for count, rgb in colors)
    # curves first: the top of the page holds plotly's blue (train) and orange (test) traces; after one epoch
    # the test trace is a marker and its legend entry in each epoch window (about 50 pixels each)
    top = np.asarray(image)[60:420].astype(int)
    for rgb in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(top - rgb).sum(axis=2) < 30).sum() > 40, rgb


def test_options_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISDOM_PORT", "9001")
    monkeypatch.setenv("VISDOM_ENV", "from-env")
    plugin = VisdomPlugin()
    assert plugin.port == 9001 and plugin.env == "from-env"
    assert plugin.url == "http://localhost:9001/env/from-env"
    assert VisdomPlugin(visdom_port=9002).port == 9002


def test_visdom_flag_without_the_package_is_one_line(
    data_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "visdom", None)  # what an environment without visdom looks like to find_spec
    assert main(visdom_args(data_dir, tmp_path / "none", free_port(), "none")) == 2
    assert capsys.readouterr().err == (
        "mnist-ignite: error: handler 'visdom': needs the visdom package: pip install 'mnist-ignite[visdom]'\n"
    )
    assert not (tmp_path / "none").exists()
