"""Where a training step's time goes: by phase of the whole CLI step, or by operator.

``--phases`` (the default): data and augmentation, forward and loss, backward, the optimizer, and
what the run adds around the step (Ignite's dispatch, the epoch metrics, the progress bar, the
default handlers), each as a share of a real trainer iteration with the default handlers on:

    python benchmarks/profile_step.py --phases --batch-size 64 --data-dir data

``--ops``: the top operators of the eager train step (torch.profiler):

    python benchmarks/profile_step.py --ops --device cpu --batch-size 512
    python benchmarks/profile_step.py --device cuda --batch-size 512   # kernel times, bf16

The CUDA-graph step runs the same kernels; profiling the eager step shows them by name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_ignite.config.settings import PRECISIONS
from mnist_ignite.core.device import resolve_precision, select_device
from mnist_ignite.core.step import LossScaler, TrainStep
from mnist_ignite.models.net import Net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--ops", action="store_true", help="the operator table instead of the phases")
    parser.add_argument("--phases", action="store_true", help="time by phase (the default)")
    parser.add_argument("--data-dir", default=None, help="MNIST root (env MNIST_IGNITE_DATA)")
    args = parser.parse_args(argv)
    device = select_device(args.device)
    dtype = resolve_precision(args.precision, device)
    if not args.ops:
        return phases(args, device, dtype)
    model = Net().to(device).to(memory_format=torch.channels_last)
    scaler = LossScaler(device) if dtype == torch.float16 else None
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = TrainStep(model, opt, device, dtype, True, None, scaler)
    batch = (
        torch.randn(args.batch_size, 1, 28, 28, device=device),
        torch.randint(0, 10, (args.batch_size,), device=device),
    )
    for _ in range(3):
        step(None, batch)  # type: ignore[arg-type]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step(None, batch)  # type: ignore[arg-type]
        if device.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"{device}, batch {args.batch_size}, precision {dtype or 'fp32'}, {args.steps} steps")
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))
    return 0


def phases(args: argparse.Namespace, device: torch.device, dtype: torch.dtype | None) -> int:
    """Each phase timed on its own over the same batches, against a real trainer iteration."""
    import time

    import torch.nn.functional as F

    from mnist_ignite.config.settings import default_data_dir
    from mnist_ignite.core.data import TensorTrainLoader, read_mnist
    from mnist_ignite.core.step import autocast
    from mnist_ignite.testing import run_plugin

    steps = max(args.steps, 50)
    data = read_mnist(args.data_dir or default_data_dir(), True, download=False)
    loader = TensorTrainLoader(data.data, data.targets, args.batch_size, seed=0, device=device)
    model = Net().to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    clock: dict[str, float] = dict.fromkeys(("data and augmentation", "forward and loss", "backward", "optimizer"), 0.0)

    def tick(name: str, start: float) -> float:
        now = time.perf_counter()
        clock[name] += now - start
        return now

    batches = iter(loader)
    warm = max(20, steps // 2)  # oneDNN picks and caches its kernels over the first steps
    for i in range(steps + warm):
        if i == warm:
            clock = dict.fromkeys(clock, 0.0)
        t = time.perf_counter()
        x, y = next(batches)
        x = x.contiguous(memory_format=torch.channels_last)
        t = tick("data and augmentation", t)
        opt.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        t = tick("forward and loss", t)
        loss.backward()
        t = tick("backward", t)
        opt.step()
        tick("optimizer", t)
    parts = sum(clock.values()) / steps
    # the same batches through the CLI's trainer with the default handlers, as a user runs it
    n = steps * args.batch_size
    handlers = ["nan_guard", "lr_schedule", "history", "progress"]
    run = run_plugin(
        handlers=handlers,
        epochs=2,  # the second epoch: no first-call costs
        train=n,
        test=args.batch_size,
        model="seed",
        batch_size=args.batch_size,
        precision=args.precision,
        options={"progress-always": True},
    )
    per_step = run.rows[1]["train_seconds"] / (run.iterations / 2)
    print(f"{device}, batch {args.batch_size}, precision {dtype or 'fp32'}, {steps} steps; shares of a trainer step")
    for name, seconds in clock.items():
        print(f"  {name:<24} {1e3 * seconds / steps:7.2f} ms  {100 * seconds / steps / per_step:5.1f}%")
    rest = per_step - parts
    print(
        f"  {'engine, metrics, bar':<24} {1e3 * rest:7.2f} ms  {100 * rest / per_step:5.1f}% (the step minus the parts)"
    )
    print(f"  {'trainer step':<24} {1e3 * per_step:7.2f} ms  (the Ignite trainer with {', '.join(handlers)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
