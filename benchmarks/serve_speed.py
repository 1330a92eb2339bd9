"""Serving throughput and latency of ``mnist-ignite serve``, with the model's own inference time beside it.

For each backend (the run folder through PyTorch, its ``.onnx`` export through ONNX Runtime) this
starts ``mnist-ignite serve`` as its own process, then for each payload, a single digit (the PNG
the drawing page sends: a 280x280 canvas) and a JSON batch of 64 MNIST test images, and for each
number of concurrent clients (1, 4, 16; keep-alive ``httpx.AsyncClient`` tasks in this process),
sends requests for ``--seconds`` and prints requests/s, images/s and the p50/p99 latency.

Beside each row: what the model itself costs, timed in this process on the same inputs through
the same functions the server calls (``load_digit`` for the PNG, ``inference.predict``): the
server's overhead (HTTP, JSON, the event loop, the client's share of the CPU) is the difference.
Client and server share the machine's cores, as they would on one box: compare rows of one sitting.

    python benchmarks/serve_speed.py RUN [--onnx RUN/final_model.onnx] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_ignite.artifacts.digits import load_digit
from mnist_ignite.artifacts.inference import load_model, predict
from mnist_ignite.core.data import read_test_images
from mnist_ignite.core.rundir import read_run_config

CLI = [sys.executable, str(Path(__file__).resolve().parents[1] / "examples" / "train_mnist.py")]
BATCH = 64


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def payloads(data_dir: str) -> dict[str, tuple[bytes, str, int]]:
    """name -> (body, content type, images in it): a canvas-sized PNG of one digit, and 64 digits as JSON."""
    images, _ = read_test_images(data_dir, BATCH)
    canvas = Image.fromarray(images[0].numpy()).resize((280, 280), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    batch = json.dumps({"images": (images.float() / 255).tolist()}).encode()
    return {"1 PNG": (buffer.getvalue(), "image/png", 1), f"{BATCH} JSON": (batch, "application/json", BATCH)}


def model_ms(model: str, body: bytes, n: int, data_dir: str, repeats: int = 50) -> float:
    """Median milliseconds the server's own work takes for one request, without HTTP: preprocess and predict."""
    classifier = load_model(model, torch.device("cpu")).classifier
    images = (read_test_images(data_dir, n)[0].float() / 255) if n > 1 else None

    def once() -> None:
        digits = images if images is not None else load_digit(io.BytesIO(body))[None]
        predict(classifier, digits).exp()

    def timed() -> float:
        once()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            once()
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    with ThreadPoolExecutor(1) as pool:  # on a worker thread, as the server runs it
        return pool.submit(timed).result()


def start(model: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*CLI, "serve", model, "--port", "0", "--device", "cpu"], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not select.select([proc.stdout], [], [], 0.5)[0]:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"serve {model} did not start")
    line = proc.stdout.readline()
    return proc, line.split(" at ", 1)[1].split(" ", 1)[0]


async def load(url: str, body: bytes, kind: str, clients: int, seconds: float) -> list[float]:
    """Latencies (s) of every request ``clients`` keep-alive clients completed in ``seconds``."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def client(until: float) -> None:
            while time.perf_counter() < until:
                t0 = time.perf_counter()
                response = await http.post("/predict", content=body, headers={"content-type": kind})
                response.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(client(warm) for _ in range(clients)))
        latencies.clear()
        until = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(client(until) for _ in range(clients)))
        latencies.append(time.perf_counter() - started)  # the last entry: the wall time
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder (served through PyTorch)")
    parser.add_argument("--onnx", help="its ONNX export (default: RUN/final_model.onnx when it exists)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per row")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--data-dir", help="MNIST (default: the run's own)")
    args = parser.parse_args()
    run = Path(args.run)
    data_dir = args.data_dir or (read_run_config(run) or {}).get("data_dir") or os.environ["MNIST_IGNITE_DATA"]
    onnx = Path(args.onnx) if args.onnx else run / "final_model.onnx"
    backends = {"PyTorch": str(run), **({"ONNX Runtime": str(onnx)} if onnx.is_file() else {})}
    bodies = payloads(data_dir)
    print(f"{cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} (other processes share the cores)")
    print("| backend | request | clients | req/s | img/s | p50 ms | p99 ms | model ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for backend, model in backends.items():
        own = {name: model_ms(model, body, n, data_dir) for name, (body, _, n) in bodies.items()}
        proc, url = start(model)
        try:
            for name, (body, kind, n) in bodies.items():
                for clients in args.clients:
                    *latencies, wall = asyncio.run(load(url, body, kind, clients, args.seconds))
                    cuts = statistics.quantiles(latencies, n=100)
                    rate = len(latencies) / wall
                    print(
                        f"| {backend} | {name} | {clients} | {rate:,.0f} | {rate * n:,.0f} | {cuts[49] * 1000:.1f} "
                        f"| {cuts[98] * 1000:.1f} | {own[name]:.1f} |",
                        flush=True,
                    )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
