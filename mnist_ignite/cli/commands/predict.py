"""``mnist-ignite predict MODEL IMAGE... | DIR``: classify pictures of handwritten digits.

Each image is made into an MNIST image (:mod:`mnist_ignite.digits`), normalized as in training
and classified by a trained model (a run folder or ``.pt`` file) or by an exported ``.onnx`` file
through ONNX Runtime (:mod:`mnist_ignite.inference`). Prints ``file digit probability`` (the top
``--top`` digits), or JSON with ``--json``. An image that cannot be read or holds no ink gets one
error line; the others are still classified, and the exit code is 1. torch loads after the
arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.cli.commands.common import PROG, add_device_arg, add_trust_arg, command_parser
from mnist_ignite.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["HELP", "main"]

HELP = "classify digit images (PNG/JPEG, any size or polarity) with a trained model or an exported .onnx"


def _unique_name(folder: Path, stem: str, used: set[str]) -> str:
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.png"
    used.add(name)
    return name


def _save_png(path: Path, digit: torch.Tensor) -> None:
    import torch
    from PIL import Image

    from mnist_ignite.core.files import atomic_write

    pixels = (digit.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("predict", HELP)
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a run folder, a .pt model or checkpoint, or an export (.onnx, .torchscript.pt, .pt2)",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE|DIR", help="image files, or folders of images")
    parser.add_argument("--top", type=int, default=1, metavar="K", help="show the K most probable digits")
    parser.add_argument("--json", action="store_true", help="print JSON (model, predictions, errors) instead of lines")
    parser.add_argument("--save-preprocessed", metavar="DIR", help="write the 28x28 images the model saw here")
    add_device_arg(parser)
    add_trust_arg(parser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.top <= 10:
        raise ConfigError(f"--top must be between 1 and 10, got {args.top}")
    import torch

    from mnist_ignite.artifacts.digits import IMAGE_SUFFIXES, find_images, load_digit
    from mnist_ignite.artifacts.inference import load_classifier, predict
    from mnist_ignite.core.device import select_device
    from mnist_ignite.core.files import prepare_output_dir
    from mnist_ignite.errors import DigitImageError

    if Path(args.model).suffix.lower() in IMAGE_SUFFIXES:
        raise ConfigError(f"{args.model} is an image: the model comes first (mnist-ignite predict MODEL IMAGE...)")
    try:
        files = find_images(args.images)
        device = select_device(args.device)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(str(err)) from None
    save_dir = prepare_output_dir(args.save_preprocessed) if args.save_preprocessed else None
    classifier, described = load_classifier(args.model, device, trust=args.trust_code)

    good: list[Path] = []
    digits: list[torch.Tensor] = []
    failed: list[dict[str, str]] = []
    for file in files:
        try:
            digits.append(load_digit(file))
            good.append(file)
        except DigitImageError as err:  # one line for this image; the others are still classified
            failed.append({"file": str(file), "error": str(err)})
            print(f"{PROG}: error: {file}: {err}", file=sys.stderr)

    results: list[dict[str, Any]] = []
    if digits:
        stack = torch.stack(digits)
        probs = predict(classifier, stack).exp()
        values, labels = probs.topk(args.top, dim=1)
        used: set[str] = set()
        for i, file in enumerate(good):
            top = [{"digit": int(d), "probability": float(p)} for d, p in zip(labels[i], values[i], strict=True)]
            row: dict[str, Any] = {"file": str(file), "digit": top[0]["digit"], "probability": top[0]["probability"]}
            if args.top > 1:
                row["top"] = top
            if save_dir is not None:
                target = save_dir / _unique_name(save_dir, file.stem, used)
                _save_png(target, stack[i])
                row["preprocessed"] = str(target)
            results.append(row)

    if args.json:
        json.dump({"model": described, "predictions": results, "errors": failed}, sys.stdout, indent=2)
        print()
    else:
        for row in results:
            shown = row.get("top") or [row]
            print(row["file"], "  ".join(f"{t['digit']} {t['probability']:.4f}" for t in shown))
    return 1 if failed else 0
