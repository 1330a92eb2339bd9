"""``mnist-ignite export MODEL --format onnx|torchscript|exported-program``: ship a model, proven equal.

The exported model takes normalized images (B, 1, 28, 28) with any batch size B and returns
log-probabilities (B, 10), like the checkpoint. After writing it to a temp folder, the export is
loaded back the way a user would load it (ONNX Runtime, ``torch.jit.load``, ``torch.export.load``)
and run beside the PyTorch model on MNIST test images, in batches of two sizes: the largest
absolute difference must be within ``--tolerance`` (1e-4) and every prediction identical. Only
then is the file moved into place, atomically; a failed check leaves nothing behind and exits 1
with the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_ignite.commands.common import error, test_images
from mnist_ignite.commands.predict import MissingExtraError, onnx_classifier
from mnist_ignite.data import DataError, default_data_dir, normalize
from mnist_ignite.files import CheckpointLoadError, OutputWriteError, atomic_write, prepare_output_dir
from mnist_ignite.trained import LogProbs, load_trained

__all__ = ["FORMATS", "HELP", "Parity", "check_parity", "export_model", "load_exported", "main"]

HELP = "export a trained model to ONNX, TorchScript or a torch.export ExportedProgram, parity-checked"
FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "exported-program": ".pt2"}
Classifier = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide torch's notices that the legacy exporters are deprecated: the user chose them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # only torch's export and load calls run in here
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _require(*modules: str) -> None:
    for name in modules:
        try:
            __import__(name)
        except ImportError:
            raise MissingExtraError(f"ONNX export needs {name}: pip install 'mnist-ignite[export]'") from None


def export_model(model: LogProbs, fmt: str, path: Path, *, opset: int | None = None, dynamo: bool = True) -> None:
    """Write ``model`` (on the CPU, eval mode) to ``path`` in format ``fmt`` with a dynamic batch axis."""
    example = torch.zeros(2, 1, 28, 28)  # batch 2: a batch of 1 would be specialized as a constant
    batch = torch.export.Dim("batch")
    with torch.no_grad(), _quiet():
        if fmt == "onnx":
            _require("onnx", "onnxruntime", *(("onnxscript",) if dynamo else ()))
            names = {"input_names": ["images"], "output_names": ["log_probs"], "opset_version": opset}
            if dynamo:
                program = torch.onnx.export(
                    model, (example,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False, **names
                )
                program.save(path, external_data=False)
            else:
                axes = {"images": {0: "batch"}, "log_probs": {0: "batch"}}
                torch.onnx.export(model, (example,), path, dynamo=False, dynamic_axes=axes, **names)
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(model, example), path)
        elif fmt == "exported-program":
            torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), path)
        else:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def load_exported(fmt: str, path: Path) -> Classifier:
    """The exported model loaded back as a user would, as a function of a normalized batch."""
    if fmt == "onnx":
        return onnx_classifier(path)
    with _quiet():
        module = torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()

    @torch.no_grad()
    def run(x: torch.Tensor) -> torch.Tensor:
        return module(x).float()

    return run


@dataclass
class Parity:
    """How the export's outputs compare with the PyTorch model's."""

    samples: int
    max_abs_diff: float
    mismatches: int
    batch_sizes: tuple[int, ...]

    def ok(self, tolerance: float) -> bool:
        return self.max_abs_diff <= tolerance and self.mismatches == 0

    def __str__(self) -> str:
        sizes = "/".join(map(str, self.batch_sizes))
        return (
            f"max |difference| {self.max_abs_diff:.3g} on {self.samples:,} test images (batches of {sizes}), "
            f"{self.samples - self.mismatches:,}/{self.samples:,} predictions identical"
        )


def check_parity(reference: Classifier, exported: Classifier, images: torch.Tensor) -> Parity:
    """Run both on normalized ``images`` (N, 1, 28, 28): all but the last image in one batch, the last alone."""
    cuts = [slice(0, len(images) - 1), slice(len(images) - 1, len(images))] if len(images) > 1 else [slice(0, 1)]
    with torch.no_grad():
        ref = torch.cat([reference(images[c]) for c in cuts])
        out = torch.cat([exported(images[c]) for c in cuts])
    if out.shape != ref.shape:
        raise ValueError(f"the export returns shape {tuple(out.shape)}, the model {tuple(ref.shape)}")
    diff = float((out - ref).abs().max())
    mismatches = int((out.argmax(1) != ref.argmax(1)).sum())
    return Parity(len(images), diff, mismatches, tuple(c.stop - c.start for c in cuts))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist-ignite export", description=HELP)
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


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.check_samples < 1 or not args.tolerance >= 0:
        return error("--check-samples must be >= 1 and --tolerance >= 0", 2)
    if args.format != "onnx" and (args.opset is not None or not args.dynamo):
        return error("--opset and --no-dynamo apply to --format onnx only", 2)
    try:
        trained = load_trained(args.model, "cpu")
        out = Path(args.output) if args.output else trained.source.with_suffix(FORMATS[args.format])
        prepare_output_dir(out.parent)
        images, _ = test_images(args.data_dir, args.check_samples)
        x = normalize(images.unsqueeze(1).float() / 255.0)
        with tempfile.TemporaryDirectory(prefix="mnist-ignite-export-") as tmp:
            staged = Path(tmp) / f"model{FORMATS[args.format]}"  # torch.export.load wants .pt2
            try:
                export_model(trained.model, args.format, staged, opset=args.opset, dynamo=args.dynamo)
            except MissingExtraError:
                raise
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
