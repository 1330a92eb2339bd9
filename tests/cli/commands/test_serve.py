"""``mnist-ignite serve``: its usage errors, the real server process (signals, the API over HTTP), the page in Chromium.

The app's answers and its handling of every bad input are unit-tested in ``tests/serve/test_app.py``
with FastAPI's TestClient; here the command runs as users run it: a process on a port, stopped by a
signal, asked by a real HTTP client and by headless Chromium (Playwright driving Debian's
``chromium``; Playwright's own browser download is not needed). ``MNIST_IGNITE_SCREENSHOT=FILE``
saves the page, a "7" drawn, to FILE (``docs/serve.png`` is made so).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch  # noqa: F401  (here, not first inside a unit test: torch's first import may start a process)
from PIL import Image

from mnist_ignite.cli import main as cli
from mnist_ignite.cli.commands import serve

from conftest import ROOT, bomb_png

CLI = [sys.executable, str(ROOT / "examples" / "train_mnist.py")]
START_S = 120  # what a server gets to print its address (imports and the model load on a busy 2-core machine)


def test_serve_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--help"]) == 0
    assert "mnist-ignite serve" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [(["digit.png"], 2, "digit.png is an image: serve takes a run folder or a model file"),
     (["run", "--port", "70000"], 2, "must be between 0 (any free port) and 65535"),
     (["run", "--max-upload-mb", "0"], 2, "must be more than 0"),
     (["run", "--device", "gpu 0"], 2, "'gpu 0' is not a device"),
     (["no-such-run"], 1, "no such file or folder: no-such-run")],
)  # fmt: skip
def test_usage_errors_are_one_line(
    argv: list[str], code: int, message: str, run_main: Callable[..., tuple[int, str, str]]
) -> None:
    got, out, err = run_main(serve.main, *argv)
    assert got == code and message in err and out == ""
    assert err.count("\n") == 1 or code == 2  # argparse adds its usage line


def test_a_missing_extra_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, run_main: Callable[..., tuple[int, str, str]]
) -> None:
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else find(name, *a))
    code, _, err = run_main(serve.main, "run")
    assert code == 2
    assert err == "mnist-ignite: error: serving needs uvicorn: pip install 'mnist-ignite[serve]'\n"


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8000"), ("0.0.0.0", "http://127.0.0.1:8000"), ("::", "http://[::1]:8000"),
     ("::1", "http://[::1]:8000"), ("localhost", "http://localhost:8000")],
)  # fmt: skip
def test_the_printed_address_opens_in_a_browser(host: str, url: str) -> None:
    assert serve.url_of(host, 8000) == url


# --- the real process -----------------------------------------------------------------------------------------


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    first_line: str

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
        self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def start(*args: str) -> Served:
    """``mnist-ignite serve ARGS --port 0`` as a process; returns once it prints the address it listens on."""
    proc = subprocess.Popen(
        [*CLI, "serve", *args, "--port", "0", "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + START_S
    while not select.select([proc.stdout], [], [], 0.5)[0]:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not start: {proc.communicate()[1][-2000:]}")
    line = proc.stdout.readline()
    assert line.startswith("serving ") and " at http://127.0.0.1:" in line, line
    url = line.split(" at ", 1)[1].split(" ", 1)[0]
    return Served(proc, url, line)


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


@pytest.fixture(scope="module")
def served(trained_run: Path) -> Iterator[Served]:
    """The trained run served by a real process for the whole module; stopped by SIGTERM (exit 143) at the end."""
    server = start(str(trained_run))
    yield server
    code, _, err = server.stop()
    assert code == 143, err


@pytest.mark.integration  # a real server process
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_server_cleanly(signum: int, code: int, trained_run: Path) -> None:
    """Exit 0 for Ctrl-C, 143 for SIGTERM; no process left behind, the port free, no traceback."""
    import httpx

    server = start(str(trained_run))
    assert httpx.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
    assert _children(server.proc.pid) == []  # one process: no workers to orphan
    got, out, err = server.stop(signum)
    assert got == code, err
    assert "server stopped" in out and "Traceback" not in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=5)


@pytest.mark.integration  # a real server process
def test_host_0000_warns_that_the_page_is_open_to_the_network(trained_run: Path) -> None:
    server = start(str(trained_run), "--host", "0.0.0.0")
    code, _, err = server.stop(signal.SIGINT)
    assert code == 0
    assert err.splitlines()[0] == (
        "mnist-ignite: warning: serve: --host 0.0.0.0: the page and the API are open to the network, with no password"
    )


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def paper_digits(data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, int]]:
    """MNIST test digits as someone would photograph them: black on white, 3x larger (PNG files)."""
    from mnist_ignite.core.data import read_test_images

    images, labels = read_test_images(data_dir, 5_016)
    folder = tmp_path_factory.mktemp("paper")
    out = []
    for i in range(5_000, 5_016):
        path = folder / f"{i}_{int(labels[i])}.png"
        Image.fromarray(255 - images[i].numpy()).resize((84, 84), Image.Resampling.BICUBIC).save(path)
        out.append((path, int(labels[i])))
    return out


def _predict_cli(model: str, image: Path) -> list[float]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["predict", model, str(image), "--json", "--top", "10", "--device", "cpu"]) == 0
    (row,) = json.loads(out.getvalue())["predictions"]
    probs = [0.0] * 10
    for top in row["top"]:
        probs[top["digit"]] = top["probability"]
    return probs


@pytest.mark.integration  # a real server process
def test_the_api_over_http_answers_and_survives_bad_input(
    served: Served, trained_run: Path, paper_digits: list[tuple[Path, int]]
) -> None:
    import httpx

    with httpx.Client(base_url=served.url, timeout=30) as http:
        info = http.get("/model").json()
        assert info["name"] == "seed" and info["parameters"] == 593_200 and info["accuracy"]["final_test_acc"] > 90
        path, label = paper_digits[0]
        answer = http.post("/predict", content=path.read_bytes(), headers={"content-type": "image/png"}).json()
        assert answer["label"] == label
        assert answer["probabilities"] == pytest.approx(_predict_cli(str(trained_run), path), abs=1e-6)
        uploaded = http.post("/predict", files={"file": (path.name, path.read_bytes(), "image/png")}).json()
        assert uploaded["probabilities"] == answer["probabilities"]

        def ask(item: tuple[Path, int]) -> bool:
            body = item[0].read_bytes()
            return http.post("/predict", content=body, headers={"content-type": "image/png"}).json()["label"] == item[1]

        with ThreadPoolExecutor(8) as pool:  # 16 requests, 8 at once
            assert sum(pool.map(ask, paper_digits)) >= 14

        big = b"\0" * (11 * 2**20)
        bad = [
            http.post("/predict", content=b"", headers={"content-type": "image/png"}),
            http.post("/predict", content=b"not a picture", headers={"content-type": "image/jpeg"}),
            http.post("/predict", content=b"{oops", headers={"content-type": "application/json"}),
            http.post("/predict", content=b"1", headers={"content-type": "text/plain"}),
            http.post("/predict", content=big, headers={"content-type": "image/png"}),
            http.post("/predict", content=iter([big[: 2**20]] * 11), headers={"content-type": "image/png"}),  # chunked
            http.post("/predict", content=bomb_png(20_000, 20_000), headers={"content-type": "image/png"}),
        ]
        assert [r.status_code for r in bad] == [400, 400, 400, 415, 413, 413, 413]
        assert all(list(r.json()) == ["error"] and "\n" not in r.json()["error"] for r in bad)
        assert http.get("/health").json()["status"] == "ok"  # and it still serves
    assert served.proc.poll() is None


@pytest.mark.integration  # a real server process
def test_an_onnx_export_is_served_with_the_same_answers(
    trained_run: Path, paper_digits: list[tuple[Path, int]], tmp_path: Path
) -> None:
    import httpx

    onnx = tmp_path / "model.onnx"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli(["export", str(trained_run), "--output", str(onnx), "--check-samples", "10"]) == 0
    server = start(str(onnx))
    try:
        info = httpx.get(f"{server.url}/model", timeout=10).json()
        assert info["backend"] == "onnxruntime" and info["parameters"] == 593_200
        path, label = paper_digits[1]
        body = path.read_bytes()
        answer = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": "image/png"}, timeout=30)
        assert answer.json()["label"] == label
        assert answer.json()["probabilities"] == pytest.approx(_predict_cli(str(trained_run), path), abs=1e-4)
    finally:
        assert server.stop()[0] == 143


# --- the page in a real browser -------------------------------------------------------------------------------

ONE = [[(150, 40), (140, 140), (130, 240)]]
SEVEN = [[(70, 50), (140, 48), (210, 50)], [(210, 50), (165, 145), (125, 245)]]


def _chromium() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for this test")
        pytest.skip("chromium is not installed")
    return chromium


def _wait(page, expression: str, seconds: float = 20) -> None:
    """Poll ``expression`` in the page until true (Playwright's wait_for_function evals: the CSP forbids it)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {seconds} s: {expression}"
        time.sleep(0.05)


def _draw(page, strokes: list[list[tuple[int, int]]], pause_in_stroke: float = 0.0) -> int:
    """Draw polylines on the 280x280 pad with the mouse; returns the answers shown while the button was down."""
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    live = 0
    for n, stroke in enumerate(strokes):
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for i, (x, y) in enumerate(stroke[1:]):
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=12)
            if pause_in_stroke and n == i == 0:  # hold still, still drawing: the debounced prediction arrives
                before = int(page.evaluate("document.body.dataset.answers"))
                _wait(page, f"Number(document.body.dataset.answers) > {before}")
                live += 1
        page.mouse.up()
    _wait(page, "document.body.dataset.settled === '1'")
    return live


def _shown(page) -> tuple[str, list[float]]:
    label = page.locator("#label").inner_text()
    probs = page.locator("#bars li").evaluate_all("items => items.map(li => Number(li.dataset.p))")
    return label, probs


@pytest.mark.integration  # a real server process
def test_the_page_in_chromium_reads_a_drawn_1_and_7_as_predict_does(
    served: Served, trained_run: Path, paper_digits: list[tuple[Path, int]], tmp_path: Path
) -> None:
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    import httpx

    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 860, "height": 510})
            page.on("request", lambda request: requests.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(served.url)
            _wait(page, "document.getElementById('model').textContent.includes('parameters')")
            assert "593,200 parameters" in page.locator("#model").inner_text()
            assert "test accuracy" in page.locator("#model").inner_text()

            for strokes, digit in ((ONE, "1"), (SEVEN, "7")):
                page.click("#clear")
                live = _draw(page, strokes, pause_in_stroke=0.5 if digit == "7" else 0.0)
                label, probs = _shown(page)
                assert label == digit and len(probs) == 10 and sum(probs) == pytest.approx(1.0, abs=1e-4)
                assert max(probs) == probs[int(digit)] and page.locator("#bars li.top").inner_text().startswith(digit)
                assert live == (1 if digit == "7" else 0)  # a prediction came while the button was still down
                # the same picture on the command line and the API: the same numbers
                data_url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
                drawn = tmp_path / f"drawn_{digit}.png"
                drawn.write_bytes(base64.b64decode(data_url.split(",", 1)[1]))
                api = httpx.post(
                    f"{served.url}/predict", content=drawn.read_bytes(), headers={"content-type": "image/png"}
                ).json()
                assert api["probabilities"] == pytest.approx(probs, abs=1e-6)
                assert _predict_cli(str(trained_run), drawn) == pytest.approx(probs, abs=1e-6)
                seen = page.evaluate(
                    "Array.from(document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data)"
                )
                assert max(seen) == 255 and sum(1 for v in seen[::4] if v > 128) > 20  # the 28x28 input is shown

            if target := os.environ.get("MNIST_IGNITE_SCREENSHOT"):
                page.screenshot(path=target)

            path, label = paper_digits[2]
            before = int(page.evaluate("document.body.dataset.answers"))
            page.set_input_files("#upload", str(path))
            _wait(page, f"document.body.dataset.settled === '1' && Number(document.body.dataset.answers) > {before}")
            shown, probs = _shown(page)
            assert shown == str(label)
            assert probs == pytest.approx(_predict_cli(str(trained_run), path), abs=1e-6)

            page.click("#clear")
            assert _shown(page)[0] == "–"
            page.goto(f"{served.url}/docs")  # the API's docs, offline too
            page.wait_for_selector("text=/predict", timeout=20_000)
            assert errors == []
        finally:
            browser.close()
    assert requests and all(url.startswith(served.url) or url.startswith("data:") for url in requests), requests
