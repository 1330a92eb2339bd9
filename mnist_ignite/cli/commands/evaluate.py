"""``mnist-ignite evaluate RUN_DIR|CHECKPOINT``: how good a trained model is, and where it fails.

The face of :mod:`mnist_ignite.artifacts.evaluation`: writes ``evaluation.json``,
``confusion_matrix.png`` and ``top_losses.png`` (each file atomically) and prints a short report.
The test images come from the run's own data folder unless ``--data-dir`` says otherwise. torch
and Ignite load after the arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from mnist_ignite.cli.commands.common import (
    add_data_arg,
    add_device_arg,
    add_precision_arg,
    add_trust_arg,
    command_parser,
    data_dir_of_run,
    precision_of_run,
)
from mnist_ignite.errors import ConfigError

__all__ = ["HELP", "build_parser", "main", "print_report"]

HELP = "test loss/accuracy, per-class precision/recall/F1, confusion matrix, top losses of a trained model"


def print_report(report: dict[str, Any]) -> None:
    """The few lines a person reads: overall numbers, the per-class table, the worst confusions."""
    precision = f", {report['precision']}" if report.get("precision", "fp32") != "fp32" else ""
    print(f"evaluated {report['model_file']} ({report['model']}, {report['parameters']:,} parameters{precision})")
    print(
        f"on {report['samples']:,} MNIST test images: "
        f"loss {report['test_loss']:.4f}  accuracy {report['test_acc']:.2f}%"
    )
    # per digit: precision, recall (a digit's own accuracy: the share of its images found) and F1
    print(f"{'digit':>5} {'support':>8} {'precision':>10} {'recall':>7} {'f1':>7}")
    for row in report["per_class"]:
        print(
            f"{row['digit']:>5} {row['support']:>8} {row['precision']:>10.4f} {row['recall']:>7.4f} {row['f1']:>7.4f}"
        )
    macro = report["macro"]
    print(f"{'macro':>5} {'':>8} {macro['precision']:>10.4f} {macro['recall']:>7.4f} {macro['f1']:>7.4f}")
    pairs = ", ".join(f"{p['true']}->{p['pred']} ({p['count']})" for p in report["most_confused"]) or "none"
    print(f"most confused (true->predicted): {pairs}")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("evaluate", HELP)
    parser.add_argument(
        "model", metavar="RUN_DIR|CHECKPOINT", help="a run folder, final_model.pt, best_model_*.pt or a checkpoint"
    )
    add_data_arg(parser)
    add_device_arg(parser)
    add_precision_arg(parser)
    add_trust_arg(parser)
    parser.add_argument("--output-dir", help="where to write (default: RUN_DIR/evaluation/<model file name>)")
    parser.add_argument("--top", type=int, default=16, help="how many top-loss images to show")
    parser.add_argument("--batch-size", type=int, default=1000, help="evaluation batch size")
    parser.add_argument("--max-samples", type=int, help="evaluate on the first N test images only")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.top < 0 or args.batch_size < 1 or (args.max_samples is not None and args.max_samples < 1):
        raise ConfigError("--top must be >= 0, --batch-size and --max-samples >= 1")
    from mnist_ignite.artifacts.evaluation import evaluate, write_report
    from mnist_ignite.artifacts.trained import load_trained
    from mnist_ignite.core.data import read_test_images
    from mnist_ignite.core.device import choose_precision, select_device
    from mnist_ignite.core.files import prepare_output_dir

    try:
        device = select_device(args.device)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    trained = load_trained(args.model, device, trust=args.trust_code)
    base = trained.run_dir or trained.source.parent
    out = Path(args.output_dir) if args.output_dir else base / "evaluation" / trained.source.stem
    prepare_output_dir(out)
    images, targets = read_test_images(data_dir_of_run(args.data_dir, trained.run_dir), args.max_samples)
    precision = choose_precision(precision_of_run(args.precision, trained.run_dir), device)
    report = evaluate(trained, images, targets, device, args.batch_size, args.top, precision.dtype)
    report["precision"] = precision.name
    print_report(report)
    written = write_report(report, images, out)
    print("wrote " + ", ".join(os.fspath(p) for p in written))
    return 0
