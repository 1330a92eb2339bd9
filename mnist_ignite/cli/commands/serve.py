"""``mnist-ignite serve RUN|MODEL_FILE``: a trained model on a local web page and an HTTP API.

The model is loaded once, as ``evaluate`` and ``predict`` load it
(:func:`~mnist_ignite.artifacts.inference.load_model`: a run folder, a checkpoint, or an ``.onnx``,
TorchScript or ExportedProgram export), and served by :mod:`mnist_ignite.serve`: the drawing page
at ``/``, ``POST /predict``, ``GET /model``, ``GET /health``, the API's docs at ``/docs``. It
listens on 127.0.0.1 unless ``--host`` says otherwise (then a warning: there is no password).
SIGINT stops it (exit 0), SIGTERM too (exit 143). The web packages are the ``serve`` extra,
imported after the arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

from pathlib import Path

from mnist_ignite.cli.commands.common import add_device_arg, add_trust_arg, command_parser
from mnist_ignite.config.argv import Parser, flag_type
from mnist_ignite.errors import ConfigError
from mnist_ignite.log import warn

__all__ = ["HELP", "build_parser", "main", "url_of"]

HELP = "serve a model: a draw-a-digit page and a prediction API (POST /predict), offline"

_PORT = flag_type(int, lambda port: 0 <= port <= 65535, "must be between 0 (any free port) and 65535")
_MEGABYTES = flag_type(float, lambda mb: 0 < mb <= 1024, "must be more than 0 and at most 1024")


def build_parser() -> Parser:
    parser = command_parser(
        "serve",
        "Serve a trained model on a web page where you draw a digit and watch the model read it, and as an "
        "HTTP API (POST /predict, GET /model, GET /health; documented at /docs). Images are preprocessed as "
        "mnist-ignite predict does.",
    )
    parser.add_argument(
        "model",
        metavar="RUN|MODEL_FILE",
        help="a run folder, a .pt model or checkpoint, or an export (.onnx, .torchscript.pt, .pt2)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 opens it to the network")
    parser.add_argument("--port", type=_PORT, default=8000, help="port to listen on (0: any free port, printed)")
    parser.add_argument(
        "--max-upload-mb", type=_MEGABYTES, default=10.0, metavar="MB", help="largest request body accepted (413)"
    )
    add_device_arg(parser)
    add_trust_arg(parser)
    return parser


def url_of(host: str, port: int) -> str:
    """The address to open in a browser for a server listening on ``host:port``."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from mnist_ignite.artifacts.digits import IMAGE_SUFFIXES

    if Path(args.model).suffix.lower() in IMAGE_SUFFIXES:
        raise ConfigError(f"{args.model} is an image: serve takes a run folder or a model file")
    from mnist_ignite.serve import require_extra

    require_extra()
    from mnist_ignite.artifacts.inference import load_model
    from mnist_ignite.core.device import select_device
    from mnist_ignite.serve.app import Limits, create_app
    from mnist_ignite.serve.server import bind, is_loopback, run

    try:
        device = select_device(args.device)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    model = load_model(args.model, device, trust=args.trust_code)
    app = create_app(model, Limits(body_bytes=int(args.max_upload_mb * 2**20)))
    sock = bind(args.host, args.port)
    if not is_loopback(args.host):
        warn(f"serve: --host {args.host}: the page and the API are open to the network, with no password")
    url = url_of(args.host, sock.getsockname()[1])
    line = f"serving {model.described} at {url} (the API: {url}/docs); Ctrl-C stops it"
    code = run(app, sock, on_started=lambda: print(line, flush=True))
    print("server stopped", flush=True)
    return code
