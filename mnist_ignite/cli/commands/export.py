"""``mnist-ignite export MODEL --format onnx|torchscript|exported-program``: ship a model, proven equal.

The face of :mod:`mnist_ignite.exporting`. After writing the export to a temp folder, it is loaded
back and run beside the PyTorch model on MNIST test images, in batches of two sizes: the largest
absolute difference must be within ``--tolerance`` (1e-4) and every prediction identical. Only
then is the file moved into place, atomically; a failed check leaves nothing behind and exits 1
with the numbers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from mnist_ignite.artifacts.formats import FORMATS
from mnist_ignite.cli.commands.common import command_parser, error
from mnist_ignite.config.settings import default_data_dir

__all__ = ["HELP", "main"]

HELP = "export a trained model to ONNX, TorchScript or a torch.export ExportedProgram, parity-checked"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export", HELP)
    parser.add_argument("model", metavar="RUN_DIR|CHECKPOINT", help="a run folder, a .pt model or checkpoint")
    parser.add_argument("--format", choices=list(FORMATS), default="onnx", help="what to export to")
    parser.add_argument("--output", help="file to write (default: beside the model file, e.g. final_model.onnx)")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    parser.add_argument(
        "--dynamo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ONNX: torch.export-based exporter (needs onnxscript); --no-dynamo: the legacy TorchScript one",
    )
    parser.add_argument("--data-dir", default=default_data_dir(), help="MNIST folder, for the parity check")
    parser.add_argument("--check-samples", type=int, default=1000, help="test images the parity check runs on")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |difference| of outputs")
    return parser


def _replaces_a_model(out: Path, source: Path) -> bool:
    """Whether writing ``out`` would destroy the model being exported or another ``.pt`` model or checkpoint
    (an earlier TorchScript export, ``*.torchscript.pt``, may be replaced)."""
    if not out.exists():
        return False
    same = out.resolve() == source.resolve()
    return same or (out.suffix == ".pt" and not out.name.endswith(FORMATS["torchscript"]))


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.check_samples < 1 or not args.tolerance >= 0:
        return error("--check-samples must be >= 1 and --tolerance >= 0", 2)
    if args.format != "onnx" and (args.opset is not None or not args.dynamo):
        return error("--opset and --no-dynamo apply to --format onnx only", 2)
    from mnist_ignite.artifacts.export import check_parity, export_model, onnx_opsets
    from mnist_ignite.artifacts.formats import load_exported
    from mnist_ignite.artifacts.trained import load_trained
    from mnist_ignite.core.data import normalize, read_test_images
    from mnist_ignite.core.files import atomic_write, prepare_output_dir
    from mnist_ignite.errors import CheckpointLoadError, DataError, ExportError, MissingExtraError, OutputWriteError

    try:
        if args.opset is not None and args.opset not in (known := onnx_opsets()):
            return error(f"--opset must be between {known.start} and {known.stop - 1}, got {args.opset}", 2)
        trained = load_trained(args.model, "cpu")
        out = Path(args.output) if args.output else trained.source.with_suffix(FORMATS[args.format])
        if _replaces_a_model(out, trained.source):
            return error(f"--output {out} would replace a PyTorch model or checkpoint: choose another file", 2)
        prepare_output_dir(out.parent)
        images, _ = read_test_images(args.data_dir, args.check_samples)
        x = normalize(images.unsqueeze(1).float() / 255.0)
        with tempfile.TemporaryDirectory(prefix="mnist-ignite-export-") as tmp:
            staged = Path(tmp) / f"model{FORMATS[args.format]}"  # torch.export.load wants .pt2
            try:
                export_model(trained.model, args.format, staged, opset=args.opset, dynamo=args.dynamo)
            except MissingExtraError:
                raise
            except ExportError as err:
                return error(f"export of {trained.source} to {args.format} failed: {err}; nothing written")
            except Exception as err:  # exporters fail in many ways on user models; one line names it
                detail = " ".join(str(err).split())[:400]
                return error(f"export of {trained.source} to {args.format} failed: {type(err).__name__}: {detail}")
            parity = check_parity(trained.model, load_exported(args.format, staged), x)
            if not parity.ok(args.tolerance):
                return error(f"parity check failed, nothing written: {parity} (tolerance {args.tolerance:g})")
            data = staged.read_bytes()
        atomic_write(out, lambda f: f.write(data))
    except MissingExtraError as err:
        return error(str(err), 2)
    except (CheckpointLoadError, DataError, OutputWriteError) as err:
        return error(str(err), 1)
    mode = f", {'dynamo' if args.dynamo else 'legacy'} exporter" if args.format == "onnx" else ""
    print(f"exported {trained.describe()} to {os.fspath(out)} ({args.format}{mode}, {len(data) / 1e6:.1f} MB)")
    print(f"parity: {parity}")
    return 0
