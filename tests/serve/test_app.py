"""The served app through FastAPI's TestClient, on a real tiny run: answers, predict's parity, every bad input.

Unit lane: no MNIST, no process (the TestClient runs the app in this process). The real server, its
signals and the page in Chromium are in ``tests/cli/commands/test_serve.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import torch
from PIL import Image, ImageFile

pytest.importorskip("fastapi", reason="pip install 'mnist-ignite[serve]'")
from starlette.testclient import TestClient

from mnist_ignite.artifacts.digits import load_digit
from mnist_ignite.artifacts.export import export_model
from mnist_ignite.artifacts.inference import LoadedModel, load_model, predict
from mnist_ignite.artifacts.trained import load_trained
from mnist_ignite.cli import main as cli
from mnist_ignite.core.data import read_test_images
from mnist_ignite.serve.app import STATIC, Limits, create_app, model_info
from mnist_ignite.testing import fake_mnist, run_plugin

from conftest import bomb_png

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny run (TinyNet, named by module:Attr: loading it needs trust)."""
    return run_plugin(handlers=["checkpoint"], output_dir=tmp_path_factory.mktemp("serve") / "run").output_dir


@pytest.fixture(scope="module")
def model(run_dir: Path) -> LoadedModel:
    return load_model(str(run_dir), CPU, trust=True)


@pytest.fixture(scope="module")
def client(model: LoadedModel) -> Iterator[TestClient]:
    with TestClient(create_app(model), raise_server_exceptions=False) as test_client:
        yield test_client


def png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def a_one(size: int = 280) -> Image.Image:
    """A "1" as the page draws it: a white stroke on black."""
    image = Image.new("L", (size, size))
    image.paste(255, (size // 2 - 10, size // 7, size // 2 + 10, size - size // 7))
    return image


def test_health_and_model_describe_the_run(client: TestClient, model: LoadedModel, run_dir: Path) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": model.described}
    info = client.get("/model").json()
    results = json.loads((run_dir / "results.json").read_text())
    assert info["name"] == "mnist_ignite.testing:TinyNet" and info["backend"] == "pytorch"
    assert info["parameters"] == load_trained(run_dir, trust=True).parameters == model.parameters
    assert info["accuracy"]["final_test_acc"] == results["final_test_acc"]
    assert info["accuracy"]["epochs"] == 1 and info["run"] == str(run_dir)
    assert info["input"]["normalization"] == {"mean": 0.1307, "std": 0.3081}
    assert info["limits"] == {"body_bytes": 10 * 2**20, "pixels": 25_000_000, "batch": 1024}


def test_an_export_without_its_run_has_no_accuracy_but_its_size(run_dir: Path, tmp_path: Path) -> None:
    trained = load_trained(run_dir, trust=True)
    path = tmp_path / "alone.onnx"
    export_model(trained.model, "onnx", path, dynamo=False)
    info = model_info(load_model(str(path), CPU), Limits())
    assert info["backend"] == "onnxruntime" and info["accuracy"] is None and info["run"] is None
    assert info["name"] == "alone.onnx" and info["parameters"] == trained.parameters


def _predict_cli(run_dir: Path, image: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert cli(["predict", str(run_dir), str(image), "--json", "--trust-code", "--device", "cpu", "--top", "10"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["predictions"]
    probs = [0.0] * 10
    for top in row["top"]:
        probs[top["digit"]] = top["probability"]
    return {"label": row["digit"], "probabilities": probs}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_an_image_raw_or_uploaded_gets_predicts_own_answer(
    fmt: str, client: TestClient, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One function preprocesses for the command line and the API: the same file, the same probabilities."""
    data = png(a_one(), fmt)
    file = tmp_path / f"one.{fmt.lower()}"
    file.write_bytes(data)
    expected = _predict_cli(run_dir, file, capsys)
    kind = f"image/{fmt.lower()}"
    raw = client.post("/predict", content=data, headers={"content-type": kind})
    uploaded = client.post("/predict?preprocessed=true", files={"file": (file.name, data, kind)})
    assert raw.status_code == uploaded.status_code == 200
    for answer in (raw.json(), uploaded.json()):
        assert answer["label"] == expected["label"]
        assert answer["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
        assert sum(answer["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert "preprocessed" not in raw.json()
    seen = torch.tensor(uploaded.json()["preprocessed"])
    torch.testing.assert_close(seen, load_digit(file), atol=5e-5, rtol=0)  # what the model saw, to 4 decimals


def test_a_json_batch_is_classified_as_the_tensors(client: TestClient, model: LoadedModel, tmp_path: Path) -> None:
    images, _ = read_test_images(fake_mnist(tmp_path, train=1, test=64))
    digits = images.float() / 255
    response = client.post("/predict", json={"images": digits.tolist()})
    assert response.status_code == 200
    rows = response.json()["predictions"]
    expected = predict(model.classifier, digits).exp()
    assert len(rows) == 64
    assert [r["label"] for r in rows] == expected.argmax(1).tolist()
    torch.testing.assert_close(torch.tensor([r["probabilities"] for r in rows]), expected, atol=1e-6, rtol=0)


def _multipart(boundary: str, name: str, data: bytes) -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


BLANK = png(Image.new("L", (280, 280)))
ONE = png(a_one())
BAD_INPUT = [
    ("an empty body", b"", "image/png", 400, "the request body is empty"),
    ("not an image", b"hello, world", "image/png", 400, "not a readable image"),
    ("a truncated PNG", ONE[:60], "image/png", 400, "not a readable image"),
    ("a blank canvas", BLANK, "image/png", 422, "no ink found"),
    ("plain text", b"1", "text/plain", 415, "content type 'text/plain'"),
    ("no content type", ONE, "", 415, "no content type"),
    ("a pickle", pickle.dumps({"x": 1}), "application/octet-stream", 415, "content type"),
    ("malformed JSON", b'{"images": [', "application/json", 400, "malformed JSON"),
    ("JSON nested too deep", b"[" * 100_000, "application/json", 400, "malformed JSON"),
    ("JSON not an object", b"[1, 2]", "application/json", 422, "must be an object"),
    ("no images", b'{"images": []}', "application/json", 422, "send 1 to 1024"),
    ("ragged arrays", json.dumps({"images": [[[0] * 28] * 27 + [[0] * 3]]}).encode(), "application/json", 422,
     "the arrays differ in shape"),
    ("the wrong shape", json.dumps({"images": [[[0] * 14] * 14]}).encode(), "application/json", 422, "shape [14, 14]"),
    ("strings", json.dumps({"images": [[["0.5"] * 28] * 28]}).encode(), "application/json", 422, "arrays of numbers"),
    ("values over 1", json.dumps({"images": [[[255] * 28] * 28]}).encode(), "application/json", 422,
     "values from 255 to 255"),
    ("NaN", b'{"images": [[' + b",".join([b"[" + b",".join([b"NaN"] * 28) + b"]"] * 28) + b"]]}", "application/json",
     422, "non-finite"),
    ("a form without its file", _multipart("b0undary", "image", ONE), "multipart/form-data; boundary=b0undary", 422,
     "no file field named 'file'"),
    ("an empty upload", _multipart("b0undary", "file", b""), "multipart/form-data; boundary=b0undary", 400,
     "the uploaded file is empty"),
    ("a form without a boundary", ONE, "multipart/form-data", 400, "boundary"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "kind", "status", "message"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_is_a_4xx_with_one_json_line_and_the_server_goes_on(
    body: bytes, kind: str, status: int, message: str, client: TestClient
) -> None:
    headers = {"content-type": kind} if kind else {}
    response = client.post("/predict", content=body, headers=headers)
    assert response.status_code == status, response.text
    answer = response.json()
    assert list(answer) == ["error"] and message in answer["error"] and "\n" not in answer["error"]
    assert client.post("/predict", content=ONE, headers={"content-type": "image/png"}).status_code == 200


@pytest.fixture()
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The sizes of the images PIL decodes pixels of."""
    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> object:
        sizes.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return sizes


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [(20_000, 20_000, "could be decompression bomb"), (6_000, 5_000, "more than the 25,000,000 taken")],
)
def test_a_decompression_bomb_is_refused_from_its_header(
    width: int, height: int, message: str, client: TestClient, decoded: list[tuple[int, int]]
) -> None:
    data = bomb_png(width, height)
    assert len(data) < 100_000 and struct.unpack(">II", data[16:24]) == (width, height)  # small; huge in its header
    for response in (
        client.post("/predict", content=data, headers={"content-type": "image/png"}),
        client.post("/predict", files={"file": ("bomb.png", data, "image/png")}),
    ):
        assert response.status_code == 413 and message in response.json()["error"]
    assert decoded == []  # not one pixel decoded
    assert client.post("/predict", content=ONE, headers={"content-type": "image/png"}).status_code == 200
    assert set(decoded) == {(280, 280)}


def test_a_body_over_the_cap_is_refused_by_its_length(model: LoadedModel) -> None:
    with TestClient(create_app(model, Limits(body_bytes=2_000))) as small:
        declared = small.post("/predict", content=b"x" * 2_001, headers={"content-type": "image/png"})
        assert declared.status_code == 413 and declared.json() == {
            "error": "the request body is larger than 2,000 bytes: send a smaller image"
        }
        assert (
            len(ONE) < 2_000
            and small.post("/predict", content=ONE, headers={"content-type": "image/png"}).status_code == 200
        )
        assert small.post("/predict", json={"images": [[[0.0] * 28] * 28] * 3}).status_code == 413
        bad = small.post("/predict", content=b"x", headers={"content-type": "image/png", "content-length": "x"})
        assert bad.status_code == 400


def test_a_chunked_body_is_refused_at_the_first_chunk_over_the_cap(model: LoadedModel) -> None:
    """No Content-Length to check: the ASGI app counts the chunks as they come, and stops reading."""
    app = create_app(model, Limits(body_bytes=2_000))
    received: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        received.append(len(received))
        return {"type": "http.request", "body": b"x" * 500, "more_body": len(received) < 100}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/predict", "raw_path": b"/predict", "root_path": "", "query_string": b"",
        "headers": [(b"content-type", b"image/png"), (b"transfer-encoding", b"chunked")],
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "state": {},
    }  # fmt: skip
    anyio.run(app, scope, receive, send)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {"error": "the request body is larger than 2,000 bytes: send a smaller image"}
    assert len(received) == 5  # 2,500 bytes read of the 50,000 sent: the first chunk over the cap


def test_a_batch_over_its_limit_is_refused(model: LoadedModel) -> None:
    with TestClient(create_app(model, Limits(batch=2))) as small:
        response = small.post("/predict", json={"images": [[[0.0] * 28] * 28] * 3})
        assert response.status_code == 422 and response.json() == {"error": "images holds 3 arrays: send 1 to 2"}


def test_no_request_is_ever_unpickled(client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    buffer = io.BytesIO()
    torch.save({"x": Payload()}, buffer)

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a request was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    for kind in ("image/png", "application/json", "application/octet-stream", "application/x-pickle"):
        assert client.post("/predict", content=buffer.getvalue(), headers={"content-type": kind}).status_code in (
            400,
            415,
        )
    assert client.post("/predict", files={"file": ("x.pt", buffer.getvalue())}).status_code == 400
    assert not marker.exists()


def test_unknown_pages_and_methods_are_one_json_line(client: TestClient) -> None:
    assert client.get("/nothing").status_code == 404
    assert client.get("/nothing").json() == {
        "error": "no such page: /nothing (the page is /, the API is documented at /docs)"
    }
    assert client.get("/predict").json() == {"error": "GET is not allowed on /predict"}
    invalid = client.post("/predict?preprocessed=maybe", content=ONE, headers={"content-type": "image/png"})
    assert invalid.status_code == 422 and invalid.json()["error"].startswith("query.preprocessed: ")


_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def test_the_page_loads_only_what_the_app_serves(client: TestClient) -> None:
    """Offline: every asset of the page and of /docs is this app's own; the page's CSP forbids any other."""
    page = client.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assets = _URL.findall(page.text)
    assert "/static/app.js" in assets and "/static/style.css" in assets
    for url in assets:
        assert url.startswith(("/", "data:")), url
        if url.startswith("/static/"):
            assert client.get(url).status_code == 200
    assert not re.search(r"https?://", (STATIC / "app.js").read_text() + (STATIC / "style.css").read_text())
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    for url in _URL.findall(docs.text):
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200


def test_the_openapi_document_describes_the_three_ways_to_ask(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/png", "image/jpeg", "application/json"} <= set(body)
    assert {"/health", "/model", "/predict"} <= set(spec["paths"]) and "/" not in spec["paths"]
    assert {"400", "413", "415", "422"} <= set(spec["paths"]["/predict"]["post"]["responses"])


def test_a_failure_inside_the_model_is_a_500_line_and_the_server_goes_on(model: LoadedModel) -> None:
    calls = []

    def flaky(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return model.classifier(x)

    broken = LoadedModel(flaky, "flaky", "pytorch", model.source)
    with (
        TestClient(create_app(broken), raise_server_exceptions=False) as test_client,
        contextlib.redirect_stderr(io.StringIO()),
    ):
        first = test_client.post("/predict", content=ONE, headers={"content-type": "image/png"})
        assert first.status_code == 500 and first.json() == {
            "error": "internal error (RuntimeError); the server logged it"
        }
        assert test_client.post("/predict", content=ONE, headers={"content-type": "image/png"}).status_code == 200
