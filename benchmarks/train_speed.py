"""Training throughput, side by side in one process, on the same MNIST images, against the machine's limit.

* ``reference``: the seed's recipe as a plain PyTorch loop: torchvision PIL transforms in a
  DataLoader with 2 workers, fp32, NCHW, ``torch.optim.SGD``.
* ``bare``: this project's data path and train step in a plain ``for`` loop (no Ignite).
* ``ignite``: the same step run by this project's Ignite trainer, with its train metrics.

``ignite / bare`` is the engine's per-iteration overhead; ``ignite / reference`` is the speed-up.

The limit: a training step costs a fixed number of FLOPs per image (counted once with
``torch.utils.flop_counter.FlopCounterMode``: forward and backward of the Net), and the machine
runs a large matrix product at a measured rate (the best of a few square GEMMs, timed here in the
same sitting). Their ratio is the images/s a step would reach if every FLOP ran at GEMM speed;
each path is printed as a fraction of it (fp32 for the seed's loop, the run's precision for the
project's paths). Speeds move with machine load: compare numbers from one sitting only.

    python benchmarks/train_speed.py --device cpu --batch-size 512 --batches 10
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Events
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_ignite.config.settings import PRECISIONS, default_data_dir
from mnist_ignite.core.data import (
    TensorTrainLoader,
    get_train_transforms,
    load_mnist,
    make_torchvision_loader,
    read_mnist,
)
from mnist_ignite.core.device import choose_precision, resolve_precision, select_device
from mnist_ignite.core.engines import create_trainer
from mnist_ignite.core.step import GraphedTrainStep, LossScaler, TrainStep
from mnist_ignite.models.net import Net


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def gemm_flops_per_second(device: torch.device, dtype: torch.dtype = torch.float32, n: int | None = None) -> float:
    """The best of a few ``n x n`` matrix products, in FLOP/s: what this machine's BLAS reaches now.

    ``n`` defaults to 2048 (about 0.1 s on two CPU cores), 8192 on a GPU (smaller ones leave it idle).
    """
    n = n or (8192 if device.type == "cuda" else 2048)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm up: thread pool, kernel choice
    best = float("inf")
    for _ in range(5):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def step_flops_per_image(batch: int = 16) -> float:
    """FLOPs of one training image: the Net's forward and backward as ``FlopCounterMode`` counts them.

    Counted on the CPU in fp32 (the count does not depend on device or dtype); the SGD update,
    pooling and activations are not matrix work and add a negligible share.
    """
    model = Net()
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.nll_loss(model(x), y).backward()
    return counter.get_total_flops() / batch


def _timed(device: torch.device, batches: Iterable[Any], step: Callable[[Any], None], warmup: int, n: int) -> float:
    """Images/s over ``n`` batches after ``warmup`` batches, the time including data loading."""

    def endless() -> Iterator[Any]:
        while True:
            yield from batches

    it = endless()
    for _ in range(warmup):
        step(next(it))
    _sync(device)
    start, images = time.perf_counter(), 0
    for _ in range(n):
        batch = next(it)
        step(batch)
        images += len(batch[1])
    _sync(device)
    return images / (time.perf_counter() - start)


def reference(args: argparse.Namespace, device: torch.device) -> float:
    """The seed's plain loop."""
    torch.manual_seed(0)
    data = load_mnist(args.data_dir, True, get_train_transforms(), download=False)
    loader = make_torchvision_loader(data, args.batch_size, True, 2, seed=0)
    model = Net().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step(batch: Any) -> None:
        x, y = batch[0].to(device), batch[1].to(device)
        opt.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        opt.step()
        loss.item()  # the seed reads the loss every step for its progress bar

    return _timed(device, loader, step, args.warmup, args.batches)


def _project(args: argparse.Namespace, device: torch.device) -> tuple[Net, Any, Any, torch.dtype | None, bool]:
    torch.manual_seed(0)
    data = read_mnist(args.data_dir, True, download=False)
    n = (args.warmup + args.batches) * args.batch_size
    loader = TensorTrainLoader(data.data[:n], data.targets[:n], args.batch_size, seed=0, device=device)
    dtype = resolve_precision(args.precision, device)
    model = Net().to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return model, opt, loader, dtype, device.type == "cuda" and not args.no_cuda_graphs


def bare(args: argparse.Namespace, device: torch.device) -> float:
    """The project's step in a plain loop."""
    model, opt, loader, dtype, graphs = _project(args, device)
    kw: dict[str, Any] = {"batch_size": args.batch_size} if graphs else {}
    step_cls = GraphedTrainStep if graphs else TrainStep
    scaler = LossScaler(device) if dtype == torch.float16 else None
    step = step_cls(model, opt, device, dtype, True, None, scaler, **kw)
    return _timed(device, loader, lambda batch: step(None, batch), args.warmup, args.batches)  # type: ignore[arg-type]


def ignite(args: argparse.Namespace, device: torch.device) -> float:
    """The project's Ignite trainer (with its epoch metrics) over the same batches."""
    model, opt, loader, dtype, graphs = _project(args, device)
    trainer = create_trainer(model, opt, device, dtype, True, cuda_graph_batch=args.batch_size if graphs else None)
    marks: dict[str, float] = {}

    @trainer.on(Events.ITERATION_COMPLETED(once=args.warmup))
    def _start(_: Any) -> None:
        _sync(device)
        marks["start"] = time.perf_counter()

    trainer.run(loader, max_epochs=1, epoch_length=args.warmup + args.batches)
    _sync(device)
    return args.batches * args.batch_size / (time.perf_counter() - marks["start"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="MNIST root (env MNIST_IGNITE_DATA)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--batches", type=int, default=10, help="timed batches per contender")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--no-cuda-graphs", action="store_true")
    parser.add_argument("--only", nargs="*", default=["reference", "bare", "ignite"])
    args = parser.parse_args(argv)
    device = select_device(args.device)
    contenders = {"reference": reference, "bare": bare, "ignite": ignite}
    precision = choose_precision(args.precision, device)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
        f"batch {args.batch_size}, {args.batches} timed batches, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, precision {precision}"
    )
    flops = step_flops_per_image()
    rates = {None: gemm_flops_per_second(device)}
    if precision.dtype is not None:
        rates[precision.dtype] = gemm_flops_per_second(device, precision.dtype)
    limits = {dtype: rate / flops for dtype, rate in rates.items()}
    print(f"train step {flops / 1e6:,.1f} MFLOP per image (FlopCounterMode, forward + backward)")
    for dtype, rate in rates.items():
        name = "fp32" if dtype is None else str(dtype).removeprefix("torch.")
        print(f"{name} GEMM {rate / 1e9:,.1f} GFLOP/s -> limit {limits[dtype]:,.0f} images/s")
    results = {}
    for name in args.only:
        _reset_peak(device)
        results[name] = contenders[name](args, device)
        limit = limits[None if name == "reference" else precision.dtype]  # the seed's loop is fp32
        print(
            f"{name:<10} {results[name]:>10,.0f} images/s   {100 * results[name] / limit:5.1f}% of the limit   "
            f"peak memory {_peak_mib(device):,.0f} MiB",
            flush=True,
        )
    if "reference" in results and "ignite" in results:
        print(f"speed-up ignite / reference: {results['ignite'] / results['reference']:.2f}x")
    if "bare" in results and "ignite" in results:
        print(f"engine overhead (1 - ignite / bare): {100 * (1 - results['ignite'] / results['bare']):+.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
