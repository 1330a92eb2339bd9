"""The served model as an ASGI app: the drawing page at ``/``, ``POST /predict``, ``GET /model``, ``GET /health``.

Built on FastAPI (Starlette underneath): a small static page shipped in ``static/`` draws, uploads
and shows the answer; the API is typed JSON with an OpenAPI document (``/openapi.json``) and its
Swagger page at ``/docs``, served from ``fastapi-offline``'s bundled assets, so nothing is fetched
from a CDN. Every image goes through ``mnist-ignite predict``'s own preprocessing
(:func:`~mnist_ignite.artifacts.digits.load_digit`) and classifier
(:func:`~mnist_ignite.artifacts.inference.predict`): the page, the API and the command line agree.

Requests are untrusted: a body larger than :attr:`Limits.body_bytes` is refused while it is read
(413), an image with more than :attr:`Limits.pixels` pixels is refused from its header before it is
decoded (413), PIL reads raster formats only, JSON is parsed by ``json`` and nothing is unpickled.
Every failure is a 4xx with one line of JSON, ``{"error": "..."}``, and the server goes on serving.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from mnist_ignite.artifacts.digits import FIELD, PIL_FORMATS, load_digit
from mnist_ignite.artifacts.inference import LoadedModel, predict
from mnist_ignite.core.data import MNIST_MEAN, MNIST_STD
from mnist_ignite.core.rundir import read_run_config, read_run_results
from mnist_ignite.errors import BlankDigitError, DigitImageError, ImageTooLargeError

__all__ = ["IMAGE_TYPES", "PREDICT_DOC", "STATIC", "BodyLimit", "Limits", "create_app", "model_info"]

STATIC = Path(__file__).with_name("static")
# raw bodies taken as images (the multipart upload is sniffed by PIL alone); PIL decides the format from the bytes
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff")
# the drawing page may load only what this app serves (no CDN can be reached, none is asked)
PAGE_CSP = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

log = logging.getLogger("mnist_ignite.serve")


@dataclass(frozen=True)
class Limits:
    """What one request may hold; larger ones are refused with 413 before they cost memory."""

    body_bytes: int = 10 * 2**20  # a phone photo fits
    pixels: int = 25_000_000  # width x height of an image (a 24-megapixel photo); a 20000x20000 PNG bomb does not
    batch: int = 1024  # 28x28 arrays in one JSON request


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {_size(limit)}: send a smaller image")


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n:,} bytes"


ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Any]


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit`` bytes by its Content-Length, or while it streams in.

    A chunked upload has no length to check up front: the count is kept as each chunk arrives and the
    request fails at the first byte over the limit, so no handler ever holds more than ``limit``.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _error(400, "the Content-Length header is not a number")(scope, receive, send)
                return
            if length > self.limit:
                await _error(413, _BodyTooLarge(self.limit).detail)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one shape of every failure: ``{"error": "one line"}``."""
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


def model_info(model: LoadedModel, limits: Limits) -> dict[str, Any]:
    """What ``GET /model`` says: which model, its size, its test accuracy (the run's results.json), its input."""
    config = read_run_config(model.run_dir) if model.run_dir is not None else None
    results = read_run_results(model.run_dir) if model.run_dir is not None else None
    name = model.spec or (config or {}).get("model") or model.source.name
    accuracy = None
    if results and isinstance(results.get("final_test_acc"), (int, float)):
        evaluated = (config or {}).get("max_eval_samples")
        accuracy = {
            "final_test_acc": results["final_test_acc"],  # percent
            "best_test_acc": results.get("best_test_acc"),
            "epochs": results.get("epochs"),
            "test_images": evaluated if isinstance(evaluated, int) else 10_000,
        }
    return {
        "name": str(name),
        "described": model.described,
        "backend": model.backend,
        "file": str(model.source),
        "run": None if model.run_dir is None else str(model.run_dir),
        "parameters": model.parameters,
        "accuracy": accuracy,
        "input": {
            "image": f"a picture of one digit ({', '.join(PIL_FORMATS)}), any size and polarity: made an MNIST "
            "image as mnist-ignite predict does (ink fitted to a 20x20 box, centred by its centre of mass in 28x28)",
            "json": '{"images": [N arrays of 28x28 numbers in [0, 1], white ink on black]}: used as they are',
            "normalization": {"mean": MNIST_MEAN, "std": MNIST_STD},
            "output": "log-softmax of the model, returned as probabilities of the digits 0-9",
        },
        "limits": asdict(limits),
    }


PREDICT_DOC = {
    "requestBody": {
        "required": True,
        "description": "one image (a multipart upload in field `file`, or the raw bytes) or a JSON batch",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
            },
            **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES[:2]},
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "description": "28x28 arrays of numbers in [0, 1], white ink on black (MNIST's own)",
                            "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                        }
                    },
                }
            },
        },
    },
    "responses": {
        "200": {
            "description": "an image: `label`, `probabilities` (10), `preprocessed` (28x28) when asked; "
            "a JSON batch: `predictions`, one `{label, probabilities}` per image",
        },
        "400": {"description": "not an image, an empty body, malformed JSON"},
        "413": {"description": "a body or an image larger than the limits (GET /model lists them)"},
        "415": {"description": "a content type other than multipart/form-data, image/* or application/json"},
        "422": {"description": "an image with no ink, a JSON batch of the wrong shape or values"},
    },
}


def create_app(model: LoadedModel, limits: Limits | None = None) -> FastAPI:
    """The app serving ``model``: one model, loaded once, shared by every request.

    Model calls are serialized (one lock): the model's own kernels already use every core, and two at
    once only fight over them; reading and preprocessing images run in parallel in the thread pool.
    """
    limits = limits or Limits()
    info = model_info(model, limits)
    lock = threading.Lock()
    app = FastAPIOffline(
        title="mnist-ignite serve",
        version="1",
        description=f"Digit classification with {model.described}. The drawing page is at /.",
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=limits.body_bytes)
    app.state.model, app.state.limits = model, limits

    def probabilities(digits: torch.Tensor) -> torch.Tensor:
        with lock:
            return predict(model.classifier, digits).exp()

    def answer(probs: torch.Tensor) -> dict[str, Any]:
        return {"label": int(probs.argmax()), "probabilities": [float(p) for p in probs]}

    def classify_image(data: bytes, preprocessed: bool) -> dict[str, Any]:
        digit = load_digit(io.BytesIO(data), max_pixels=limits.pixels)
        out = answer(probabilities(digit[None])[0])
        if preprocessed:
            out["preprocessed"] = [[round(float(v), 4) for v in row] for row in digit]
        return out

    def classify_batch(data: bytes) -> dict[str, Any]:
        digits = _batch(data, limits.batch)
        return {"predictions": [answer(p) for p in probabilities(digits)]}

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such page: {request.url.path} (the page is /, the API is documented at /docs)"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(ImageTooLargeError)
    async def too_large(_: Request, exc: ImageTooLargeError) -> JSONResponse:
        return _error(413, str(exc))

    @app.exception_handler(BlankDigitError)
    async def blank(_: Request, exc: BlankDigitError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(DigitImageError)
    async def unreadable(_: Request, exc: DigitImageError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def bug(_: Request, exc: Exception) -> JSONResponse:
        log.error("serve: %s while answering a request", type(exc).__name__, exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); the server logged it")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_CSP})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", summary="the server is up and its model loaded")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": model.described}

    @app.get("/model", summary="the model: name, parameters, test accuracy, input conventions, limits")
    async def describe() -> dict[str, Any]:
        return info

    @app.post(
        "/predict", summary="classify one digit image, or a JSON batch of 28x28 arrays", openapi_extra=PREDICT_DOC
    )
    async def predict_route(
        request: Request,
        preprocessed: bool = Query(False, description="also return the 28x28 image the model saw"),
    ) -> JSONResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            data = await _upload(request, limits)
            return JSONResponse(await run_in_threadpool(classify_image, data, preprocessed))
        if kind not in (*IMAGE_TYPES, "application/json"):
            shown = f"content type {kind!r}" if kind else "no content type"
            raise HTTPException(
                415, f"{shown}: send multipart/form-data (field file), image/png, image/jpeg or application/json"
            )
        data = await request.body()
        if not data:
            raise HTTPException(400, "the request body is empty: send a PNG or JPEG image, or JSON images")
        if kind == "application/json":
            return JSONResponse(await run_in_threadpool(classify_batch, data))
        return JSONResponse(await run_in_threadpool(classify_image, data, preprocessed))

    return app


async def _upload(request: Request, limits: Limits) -> bytes:
    """The bytes of the multipart field ``file`` (the body is already capped by :class:`BodyLimit`)."""
    async with request.form(max_files=1, max_fields=8, max_part_size=limits.body_bytes) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "the multipart form has no file field named 'file'")
        data = await upload.read()
    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    return data


def _batch(data: bytes, most: int) -> torch.Tensor:
    """A JSON ``{"images": [...]}`` body as (N, 28, 28) floats in [0, 1], checked before the model sees it."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as err:
        raise HTTPException(400, f"malformed JSON ({err})") from None
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise HTTPException(422, 'the JSON must be an object {"images": [28x28 arrays]}')
    images = body["images"]
    if not 1 <= len(images) <= most:
        raise HTTPException(422, f"images holds {len(images)} arrays: send 1 to {most}")
    try:
        array = np.array(images)
    except ValueError:
        raise HTTPException(
            422, f"images must be {FIELD}x{FIELD} arrays of numbers (the arrays differ in shape)"
        ) from None
    if array.dtype.kind not in "iuf" or array.shape[1:] != (FIELD, FIELD):
        what = "numbers" if array.dtype.kind not in "iuf" else f"shape {list(array.shape[1:])}"
        raise HTTPException(422, f"images must be {FIELD}x{FIELD} arrays of numbers in [0, 1], got {what}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise HTTPException(422, "images must hold values in [0, 1] (white ink on black), got non-finite values")
    if array.min() < 0 or array.max() > 1:
        shown = f"values from {float(array.min()):g} to {float(array.max()):g}"
        raise HTTPException(422, f"images must hold values in [0, 1] (white ink on black), got {shown}")
    return torch.from_numpy(array)
