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

Contenders are interleaved (reference, bare, ignite, reference, ...) over ``--rounds`` rounds of
at least ``--seconds`` each, so a load change hits every contender alike; each ratio is computed
per round and its median reported, and a ratio whose spread (max - min over median) passes 10%
is printed as "unstable" rather than as a figure. The GEMM rate is measured inside every round.

    python benchmarks/train_speed.py --device cpu                       # batch 64 and 512, fp32 and auto
    python benchmarks/train_speed.py --batch-size 64 --precision auto --rounds 7
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
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


class Contender:
    """A path prepared once (model, optimizer, data, workers), timed again in every round."""

    def __init__(self, name: str, device: torch.device, step: Callable[[Any], None], batches: Iterable[Any]) -> None:
        self.name, self.device, self.step = name, device, step
        self.batches = self._endless(batches)
        self.per_batch = 0.0  # seconds, from the warm-up: how many batches make a round

    @staticmethod
    def _endless(batches: Iterable[Any]) -> Iterator[Any]:
        while True:
            yield from batches

    def warm(self, n: int) -> None:
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(n):
            self.step(next(self.batches))
        _sync(self.device)
        self.per_batch = (time.perf_counter() - start) / n

    def timed(self, seconds: float) -> float:
        """Images/s over enough batches to last ``seconds`` (data loading included)."""
        n = max(3, int(seconds / max(self.per_batch, 1e-6)))
        _sync(self.device)
        start, images = time.perf_counter(), 0
        for _ in range(n):
            batch = next(self.batches)
            self.step(batch)
            images += len(batch[1])
        _sync(self.device)
        return images / (time.perf_counter() - start)


def reference(batch_size: int, data_dir: str, device: torch.device) -> Contender:
    """The seed's plain loop: PIL transforms in a 2-worker DataLoader, fp32, NCHW, torch's SGD."""
    torch.manual_seed(0)
    data = load_mnist(data_dir, True, get_train_transforms(), download=False)
    loader = make_torchvision_loader(data, batch_size, True, 2, seed=0)
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

    return Contender("reference", device, step, loader)


def _project(batch_size: int, data_dir: str, device: torch.device) -> tuple[Net, Any, Any]:
    torch.manual_seed(0)
    data = read_mnist(data_dir, True, download=False)
    loader = TensorTrainLoader(data.data, data.targets, batch_size, seed=0, device=device)
    model = Net().to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return model, opt, loader


def bare(batch_size: int, data_dir: str, device: torch.device, dtype: torch.dtype | None, graphs: bool) -> Contender:
    """The project's data path and step in a plain loop (no Ignite)."""
    model, opt, loader = _project(batch_size, data_dir, device)
    kw: dict[str, Any] = {"batch_size": batch_size} if graphs else {}
    step_cls = GraphedTrainStep if graphs else TrainStep
    scaler = LossScaler(device) if dtype == torch.float16 else None
    step = step_cls(model, opt, device, dtype, True, None, scaler, **kw)
    return Contender("bare", device, lambda batch: step(None, batch), loader)  # type: ignore[arg-type]


class IgniteContender(Contender):
    """The project's Ignite trainer with its epoch metrics, run for each round's batches."""

    def __init__(self, batch_size: int, data_dir: str, device: torch.device, dtype: torch.dtype | None, graphs: bool):
        model, opt, loader = _project(batch_size, data_dir, device)
        self.make = lambda: create_trainer(
            model, opt, device, dtype, True, cuda_graph_batch=batch_size if graphs else None
        )
        super().__init__("ignite", device, lambda batch: None, loader)
        self.size = batch_size

    def _run(self, n: int) -> float:
        trainer, marks = self.make(), {}

        @trainer.on(Events.ITERATION_COMPLETED(once=2))
        def _start(_: Any) -> None:  # the first two iterations: Ignite's own start-up, not its per-step cost
            _sync(self.device)
            marks["start"] = time.perf_counter()

        trainer.run(self.batches, max_epochs=1, epoch_length=n + 2)
        _sync(self.device)
        return time.perf_counter() - marks["start"]

    def warm(self, n: int) -> None:
        self.per_batch = self._run(n) / n

    def timed(self, seconds: float) -> float:
        n = max(3, int(seconds / max(self.per_batch, 1e-6)))
        return n * self.size / self._run(n)


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def _ratio(values: list[float], as_percent_overhead: bool = False) -> str:
    med = statistics.median(values)
    text = f"{100 * (1 - med):+.1f}%" if as_percent_overhead else f"{med:.2f}x"
    spread = _spread(values)
    return f"unstable ({text}, spread {100 * spread:.0f}%)" if spread > 0.10 else f"{text} (spread {100 * spread:.0f}%)"


def bench(args: argparse.Namespace, device: torch.device, batch_size: int, precision_name: str) -> dict[str, Any]:
    """One row: every contender and the GEMM rate, interleaved over the rounds."""
    precision = choose_precision(precision_name, device)
    dtype = resolve_precision(precision_name, device)
    graphs = device.type == "cuda" and not args.no_cuda_graphs
    contenders: list[Contender] = []
    if "reference" in args.only:
        contenders.append(reference(batch_size, args.data_dir, device))
    if "bare" in args.only:
        contenders.append(bare(batch_size, args.data_dir, device, dtype, graphs))
    if "ignite" in args.only:
        contenders.append(IgniteContender(batch_size, args.data_dir, device, dtype, graphs))
    for c in contenders:
        c.warm(args.warmup)
    speeds: dict[str, list[float]] = {c.name: [] for c in contenders}
    gemm: dict[str, list[float]] = {"fp32": [], "run": []}
    for _ in range(args.rounds):
        gemm["fp32"].append(gemm_flops_per_second(device))
        gemm["run"].append(gemm_flops_per_second(device, dtype) if dtype is not None else gemm["fp32"][-1])
        for c in contenders:
            speeds[c.name].append(c.timed(args.seconds))
    return {"batch": batch_size, "precision": str(precision), "dtype": dtype, "speeds": speeds, "gemm": gemm}


def report(row: dict[str, Any], flops: float) -> None:
    speeds, gemm = row["speeds"], row["gemm"]
    print(f"\nbatch {row['batch']}, precision {row['precision']}")
    for name, values in speeds.items():
        key = "fp32" if name == "reference" else "run"  # the seed's loop is fp32
        limit = [g / flops for g in gemm[key]]
        share = [v / lim for v, lim in zip(values, limit, strict=True)]
        print(
            f"  {name:<10} {statistics.median(values):>9,.0f} images/s (spread {100 * _spread(values):3.0f}%)  "
            f"{100 * statistics.median(share):5.1f}% of the limit ({statistics.median(limit):,.0f} images/s)"
        )
    if "reference" in speeds and "ignite" in speeds:
        per_round = [i / r for i, r in zip(speeds["ignite"], speeds["reference"], strict=True)]
        print(f"  speed-up ignite / reference (median of per-round ratios): {_ratio(per_round)}")
    if "bare" in speeds and "ignite" in speeds:
        per_round = [i / b for i, b in zip(speeds["ignite"], speeds["bare"], strict=True)]
        print(f"  engine overhead 1 - ignite / bare (median of per-round ratios): {_ratio(per_round, True)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=default_data_dir(), help="MNIST root (env MNIST_IGNITE_DATA)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--precision", nargs="+", default=["fp32", "auto"], choices=PRECISIONS)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5 for a median that holds)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per contender per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches per contender first")
    parser.add_argument("--no-cuda-graphs", action="store_true")
    parser.add_argument("--only", nargs="*", default=["reference", "bare", "ignite"])
    args = parser.parse_args(argv)
    device = select_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(
        f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{args.rounds} interleaved rounds of >= {args.seconds:g} s per contender"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    flops = step_flops_per_image()
    print(f"train step {flops / 1e6:,.1f} MFLOP per image (FlopCounterMode, forward + backward)")
    seen = set()
    for batch_size in args.batch_size:
        for precision in args.precision:
            dtype = resolve_precision(precision, device)
            if (batch_size, dtype) in seen:  # auto is fp32 here: one row
                continue
            seen.add((batch_size, dtype))
            report(bench(args, device, batch_size, precision), flops)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"peak memory {_peak_mib(device):,.0f} MiB")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return "cpu"


if __name__ == "__main__":
    sys.exit(main())
