"""Where a training step's time goes: the top operators of this project's eager train step.

    python benchmarks/profile_step.py --device cpu --batch-size 512
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
    args = parser.parse_args(argv)
    device = select_device(args.device)
    dtype = resolve_precision(args.precision, device)
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


if __name__ == "__main__":
    sys.exit(main())
