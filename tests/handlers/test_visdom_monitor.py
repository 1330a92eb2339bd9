"""Against a real Visdom server that the tests start on a free localhost port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ignite.engine import Events

from mnist_ignite.cli import main

from conftest import small_args

visdom = pytest.importorskip("visdom", reason="pip install 'mnist-ignite[visdom]'")

from mnist_ignite.handlers.visdom_monitor import VisdomPlugin, assets_missing, serve  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m visdom.server`` on 127.0.0.1 with its own env folder."""

    def __init__(self, port: int, env_path: Path) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "visdom.server",
                "-port",
                str(port),
                "--hostname",
                "127.0.0.1",
                "-bind_local",
                "-env_path",
                str(env_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                assert self.proc.poll() is None, "the Visdom server exited at start-up (assets missing?)"
                time.sleep(0.3)
        raise TimeoutError("the Visdom server did not start in 90 s")

    def client(self, env: str) -> Any:
        return visdom.Visdom(
            server="http://127.0.0.1", port=self.port, env=env, use_incoming_socket=False, raise_exceptions=True
        )

    def windows(self, env: str) -> dict[str, Any]:
        return json.loads(self.client(env).get_window_data(env=env))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert not assets_missing(), "run ../shared/tools/visdom-assets.sh first (.ci/run does)"
    s = Server(free_port(), tmp_path_factory.mktemp("visdom-env"))
    yield s
    s.stop()


def points(window: dict[str, Any]) -> list[int]:
    return [len(trace["x"]) for trace in window["content"]["data"]]


def visdom_args(data_dir: str, out: Path, port: int, env: str, epochs: int = 2) -> list[str]:
    return small_args(
        data_dir,
        out,
        "--epochs",
        str(epochs),
        "--visdom",
        "--visdom-port",
        str(port),
        "--visdom-server",
        "http://127.0.0.1",
        "--visdom-env",
        env,
        "--visdom-every",
        "4",
        train=512,
        eval_=256,
    )


def test_live_windows_hold_the_right_number_of_points(server: Server, data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "live"
    assert main(visdom_args(data_dir, out, server.port, "live")) == 0
    wins = server.windows("live")
    assert {"train_loss", "loss", "accuracy", "lr", "samples", "misclassified", "run"} <= set(wins)
    assert points(wins["train_loss"]) == [16 // 4]  # 8 iterations/epoch, every 4
    assert points(wins["lr"]) == [4]
    assert points(wins["loss"]) == [2, 2]  # train and test, one point per epoch
    assert points(wins["accuracy"]) == [2, 2]
    assert (out / "visdom.log").stat().st_size > 0


def test_resumed_run_appends_to_the_same_windows(server: Server, data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    assert main(visdom_args(data_dir, out, server.port, "resume", epochs=1)) == 0
    assert main([*visdom_args(data_dir, out, server.port, "resume", epochs=2), "--resume", "auto"]) == 0
    wins = server.windows("resume")
    assert points(wins["loss"]) == [2, 2] and points(wins["train_loss"]) == [4]


def test_no_server_exits_0_and_the_log_replays(
    server: Server, data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "offline"
    assert main(visdom_args(data_dir, out, free_port(), "offline")) == 0
    assert capsys.readouterr().err.count("warning: visdom") == 1
    assert (
        main(
            ["visdom", "--replay", str(out / "visdom.log"), "--server", "http://127.0.0.1", "--port", str(server.port)]
        )
        == 0
    )
    wins = server.windows("offline")
    assert {"train_loss", "loss", "accuracy", "lr", "samples", "misclassified"} <= set(wins)
    assert points(wins["loss"]) == [2, 2]


class KillServer:
    """Stops a server after the first epoch, mid-run."""

    name = "kill_server"

    def __init__(self, server: Server) -> None:
        self.server = server

    def attach(self, ctx: Any) -> None:
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda _: self.server.stop())


def test_server_killed_mid_run_training_finishes_and_the_log_has_everything(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doomed = Server(free_port(), tmp_path / "env")
    out = tmp_path / "killed"
    assert main(visdom_args(data_dir, out, doomed.port, "killed", epochs=3), plugins=[KillServer(doomed)]) == 0
    assert "stopped answering" in capsys.readouterr().err
    logged = [json.loads(line)[1] for line in (out / "visdom.log").read_text().splitlines()]
    epoch_points = [m for m in logged if m.get("win") == "loss"]
    assert len(epoch_points) == 3  # epochs 2 and 3 happened after the kill and are in the log
    assert json.loads((out / "metrics.json").read_text())[-1]["epoch"] == 3


def test_chromium_screenshot_shows_the_dashboard(server: Server, data_dir: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for this test")
        pytest.skip("chromium is not installed")
    assert main(visdom_args(data_dir, tmp_path / "shot", server.port, "shot")) == 0
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
    from PIL import Image

    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 900)
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 200  # plots, digits and text, not a blank or error page
    # Visdom's dark-blue background and the white windows are both there
    assert any(count > 10_000 and rgb[2] > 100 and rgb[0] < 100 for count, rgb in colors)


def test_server_command_explains_missing_assets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("mnist_ignite.handlers.visdom_monitor.assets_missing", lambda: True)
    assert serve(free_port()) == 1
    err = capsys.readouterr().err
    assert "visdom-assets.sh" in err and "--download-assets" in err


def test_options_default_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISDOM_PORT", "9001")
    monkeypatch.setenv("VISDOM_ENV", "from-env")
    plugin = VisdomPlugin()
    assert plugin.port == 9001 and plugin.env == "from-env"
    assert VisdomPlugin(visdom_port=9002).port == 9002
