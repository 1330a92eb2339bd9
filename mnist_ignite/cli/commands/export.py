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
from mnist_ignite.cli.commands.common import add_data_arg, add_trust_arg, command_parser, data_dir_of_run
from mnist_ignite.errors import ConfigError

__all__ = ["HELP", "main"]

HELP = "export a trained model to ONNX, TorchScript or a torch.export ExportedProgram, parity-checked"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("export", HELP)
    parser.add_argument("model", metavar="RUN_DIR|CHECKPOINT", help="a run folder, a .pt model or checkpoint")
    parser.add_argument("--format", choices=list(FORMATS), default="onnx", help="what to export to")
    parser.add_argument("--output", help="file to write (default: beside the model file, e.g. final_model.onnx)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export of the same format")
    parser.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    parser.add_argument(
        "--dynamo",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ONNX: torch.export-based exporter (needs onnxscript); --no-dynamo: the legacy TorchScript one",
    )
    add_data_arg(parser)
    add_trust_arg(parser)
    parser.add_argument("--check-samples", type=int, default=1000, help="test images the parity check runs on")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |difference| of outputs")
    return parser


def check_output(out: Path, source: Path, fmt: str, overwrite: bool) -> None:
    """Refuse an ``--output`` that would destroy something: the model itself, a file inside a run's
    ``checkpoints/``, any file that is not an export of this format; an earlier export only with ``--overwrite``."""
    from mnist_ignite.artifacts.formats import export_format, is_onnx
    from mnist_ignite.core.checkpoint import CHECKPOINTS

    if out.resolve().parent.name == CHECKPOINTS:
        raise ConfigError(f"--output {out} is inside a run's {CHECKPOINTS}/ folder: choose a file outside it")
    if not out.exists() and not out.is_symlink():
        return
    if out.resolve() == source.resolve():
        raise ConfigError(f"--output {out} is the model being exported: choose another file")
    if not out.is_file() or export_format(out) != fmt or (fmt == "onnx" and not is_onnx(out)):
        raise ConfigError(f"--output {out} exists and is not a {fmt} export: refusing to replace it")
    if not overwrite:
        raise ConfigError(f"--output {out} exists (an earlier {fmt} export): --overwrite replaces it")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.check_samples < 1 or not args.tolerance >= 0:
        raise ConfigError("--check-samples must be >= 1 and --tolerance >= 0")
    if args.format != "onnx" and (args.opset is not None or not args.dynamo):
        raise ConfigError("--opset and --no-dynamo apply to --format onnx only")
    from mnist_ignite.artifacts.export import check_parity, export_model, onnx_opsets
    from mnist_ignite.artifacts.formats import load_exported
    from mnist_ignite.artifacts.trained import load_trained
    from mnist_ignite.core.data import normalize, read_test_images
    from mnist_ignite.core.files import atomic_write, prepare_output_dir
    from mnist_ignite.errors import ExportError, MissingExtraError
    from mnist_ignite.reporting.console import size_text

    if args.opset is not None and args.opset not in (known := onnx_opsets()):
        raise ConfigError(f"--opset must be between {known.start} and {known.stop - 1}, got {args.opset}")
    trained = load_trained(args.model, "cpu", trust=args.trust_code)
    out = Path(args.output) if args.output else trained.source.with_suffix(FORMATS[args.format])
    check_output(out, trained.source, args.format, args.overwrite)
    prepare_output_dir(out.parent)
    images, _ = read_test_images(data_dir_of_run(args.data_dir, trained.run_dir), args.check_samples)
    x = normalize(images.unsqueeze(1).float() / 255.0)
    with tempfile.TemporaryDirectory(prefix="mnist-ignite-export-") as tmp:
        staged = Path(tmp) / f"model{FORMATS[args.format]}"  # torch.export.load wants .pt2
        failed = f"export of {trained.source} to {args.format} failed"
        try:
            export_model(trained.model, args.format, staged, opset=args.opset, dynamo=args.dynamo)
        except MissingExtraError:
            raise
        except ExportError as err:
            raise ExportError(f"{failed}: {err}; nothing written") from err
        except Exception as err:  # exporters fail in many ways on user models; one line names it
            detail = " ".join(str(err).split())[:400]
            raise ExportError(f"{failed}: {type(err).__name__}: {detail}; nothing written") from err
        parity = check_parity(trained.model, load_exported(args.format, staged), x)
        if not parity.ok(args.tolerance):
            raise ExportError(f"parity check failed, nothing written: {parity} (tolerance {args.tolerance:g})")
        data = staged.read_bytes()
    atomic_write(out, lambda f: f.write(data))
    mode = f", {'dynamo' if args.dynamo else 'legacy'} exporter" if args.format == "onnx" else ""
    print(f"exported {trained.describe()} to {os.fspath(out)} ({args.format}{mode}, {size_text(len(data))})")
    print(f"parity: {parity}")
    return 0
