"""The export formats: how each is recognized (by content) and loaded back as a classifier."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_ignite.core.files import export_kind, refusal_reason
from mnist_ignite.errors import CheckpointLoadError, MissingExtraError

if TYPE_CHECKING:  # torch loads inside the functions: FORMATS serves `export --help` without it
    import torch

__all__ = [
    "FORMATS",
    "Classifier",
    "ModuleClassifier",
    "check_exported_program",
    "export_format",
    "is_onnx",
    "load_exported",
    "onnx_classifier",
    "onnx_parameters",
]

# normalized images (B, 1, 28, 28) -> log-probabilities (B, 10), whatever runs the model
Classifier = Callable[["torch.Tensor"], "torch.Tensor"]


FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "exported-program": ".pt2"}


# loggers the ONNX exporters print to; a failed opset conversion logs a traceback there and goes on
_EXPORT_LOGGERS = ("onnxscript", "torch.onnx", "onnx_ir")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide torch's notices that the legacy exporters are deprecated (the user chose them) and the
    exporters' log lines: what went wrong is checked afterwards and said in one line."""
    loggers = [logging.getLogger(name) for name in _EXPORT_LOGGERS]
    levels = [log.level for log in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # only torch's export and load calls run in here
        warnings.simplefilter("ignore", DeprecationWarning)
        for log in loggers:
            log.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for log, level in zip(loggers, levels, strict=True):
                log.setLevel(level)


def export_format(path: str | os.PathLike) -> str | None:
    """Which of ``FORMATS`` the file at ``path`` is (by its contents; ONNX by its name), or None.

    Loading a TorchScript or ExportedProgram archive as a checkpoint fails with a confusing
    message: the callers tell these files apart first.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    return export_kind(path)


def is_onnx(path: Path) -> bool:
    """An ONNX model by content: it parses as one (with the ``onnx`` package), or, without it, it starts as an
    ONNX protobuf does (field 1, ``ir_version``). A text file named ``.onnx`` is no export to replace."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as f:
            if f.read(1) != b"\x08":
                return False
    except OSError:
        return False
    try:
        import onnx
    except ImportError:
        return True
    try:
        onnx.load_model(str(path), load_external_data=False)
    except Exception:  # a damaged or foreign file: protobuf's errors come in several types
        return False
    return True


def _pickled_entries(archive: zipfile.ZipFile) -> list[str]:
    """The entries of an ExportedProgram archive that ``torch.export.load`` would unpickle.

    Weights and constants a config marks ``use_pickle``, and any ``.pt``/``.pkl`` member (sample
    inputs, the legacy weight and constant files): torch loads these with ``weights_only=False``
    (or falls back to it), which runs whatever code a crafted pickle names.

    Raises:
        CheckpointLoadError: a constant that is not a tensor: torch rebuilds ``opaque_obj_*`` entries
            with a plain ``pickle.loads`` and ``custom_obj_*`` ones with TorchScript's unpickler, whatever
            their config says, and no model this tool exports holds one.
    """
    from torch.export.pt2_archive.constants import TENSOR_CONSTANT_FILENAME_PREFIX

    names = archive.namelist()
    found = [n for n in names if n.endswith((".pt", ".pkl"))]
    for config_name in (n for n in names if n.endswith(("_weights_config.json", "_constants_config.json"))):
        try:
            config = json.loads(archive.read(config_name)).get("config", {})
            entries = [(str(meta["path_name"]), bool(meta.get("use_pickle"))) for meta in config.values()]
        except (ValueError, AttributeError, KeyError, TypeError):
            raise CheckpointLoadError(f"{config_name} in the archive is not a valid payload config") from None
        folder = config_name.rsplit("/", 1)[0]
        for path_name, pickled in entries:
            if config_name.endswith("_constants_config.json") and not path_name.startswith(
                TENSOR_CONSTANT_FILENAME_PREFIX
            ):
                raise CheckpointLoadError(
                    f"its constant {folder}/{path_name} is a Python object, not a tensor: torch would rebuild it "
                    "with a full unpickle (code could run), and this tool loads tensors only"
                )
            if pickled:
                found.append(f"{folder}/{path_name}")
    return found


def check_exported_program(path: Path) -> None:
    """Refuse an ExportedProgram archive whose payload would need a full unpickle, before torch opens it.

    Every entry torch would unpickle must load with ``weights_only=True`` (tensors and plain values):
    a crafted ``.pt2`` cannot run code here.

    Raises:
        CheckpointLoadError: what the archive holds that only a full unpickle could rebuild.
    """
    import io
    import pickle

    import torch

    try:
        with zipfile.ZipFile(path) as archive:
            try:
                pickled = _pickled_entries(archive)
            except CheckpointLoadError as err:
                raise CheckpointLoadError(f"refused to load {path}: {err}") from None
            for name in pickled:
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError) as err:
                    raise CheckpointLoadError(
                        f"refused to load {path}: its entry {name} holds objects that only a full unpickle could "
                        f"rebuild (code could run), and this tool loads tensors only ({refusal_reason(err)})"
                    ) from None
    except (zipfile.BadZipFile, OSError) as err:
        raise CheckpointLoadError(f"{path} is not a readable ExportedProgram archive: {err}") from None


class ModuleClassifier:
    """A loaded TorchScript or ExportedProgram module as a classifier; ``module`` stays reachable (its parameters)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.no_grad():
            return self.module(x).float()


def load_exported(fmt: str, path: Path) -> Classifier:
    """The exported model loaded back as a user would, as a function of a normalized batch.

    An ExportedProgram is checked first (:func:`check_exported_program`): its loader unpickles.
    """
    import torch

    if fmt == "onnx":
        return onnx_classifier(path)
    if fmt == "exported-program":
        check_exported_program(Path(path))
    try:
        with _quiet():
            module = torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()
    except Exception as err:  # a damaged or hand-made archive fails anywhere inside torch's loaders
        detail = " ".join(str(err).split())[:200]
        raise CheckpointLoadError(f"cannot load {path} as a {fmt} export: {type(err).__name__}: {detail}") from None
    return ModuleClassifier(module)


def onnx_parameters(path: str | os.PathLike) -> int | None:
    """The number of weights an ONNX file holds (its floating-point initializers; integer ones are shapes and
    indices the exporter added), or None without the ``onnx`` package."""
    try:
        import onnx
    except ImportError:
        return None
    import math

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(math.prod(init.dims) for init in graph.initializer if init.data_type in floats)


def onnx_classifier(path: str | os.PathLike) -> Classifier:
    """An ONNX model run by ONNX Runtime on the CPU; outputs made log-probabilities like a checkpoint's."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("running .onnx models needs onnxruntime: pip install 'mnist-ignite[export]'") from None
    path = Path(path)
    if not path.is_file():
        raise CheckpointLoadError(f"model not found: {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for damaged files
        reason = " ".join(str(err).split())[:300]
        raise CheckpointLoadError(f"{path} is not a loadable ONNX model: {reason}") from None
    (first,) = session.get_inputs()[:1]
    fixed = first.shape[0] if isinstance(first.shape[0], int) else None

    import numpy as np
    import torch
    import torch.nn.functional as F

    def run(x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().float().numpy()
        chunks = [arr] if fixed is None else [arr[i : i + fixed] for i in range(0, len(arr), fixed)]
        out = np.concatenate([session.run(None, {first.name: c})[0] for c in chunks])
        return F.log_softmax(torch.from_numpy(out).float(), dim=1)

    return run
