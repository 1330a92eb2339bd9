"""Models by spec: the seed's ``Net`` (``seed``), ``package.module:Attr``, ``path/file.py:Attr``, or an entry point.

The core knows a model only as "a module that maps (B, 1, 28, 28) images to (B, 10) scores":
log-probabilities (as the seed's ``Net`` returns) or raw logits — the loss is cross-entropy on
whatever it returns, which is the seed's nll_loss for log-probabilities and the usual loss for
logits. ``Attr`` is a class or a function that returns the module; ``--model-arg key=value``
(or a ``[model]`` TOML table) passes constructor keywords. The spec and its arguments are
recorded in ``config.json`` and in every checkpoint, so evaluation, export and ``--resume``
rebuild the same model.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mnist_ignite.discovery.specs import registered, resolve
from mnist_ignite.errors import BatchTooLargeError, ModelError, SpecError, UntrustedSpecError

__all__ = [
    "BUILTIN_MODELS",
    "ENTRY_POINT_GROUP",
    "ModelError",
    "available_models",
    "build_model",
    "check_model",
    "is_trusted",
    "require_trusted",
]

ENTRY_POINT_GROUP = "mnist_ignite.models"
BUILTIN_MODELS = {"seed": "mnist_ignite.models.net:Net"}


def available_models() -> dict[str, str]:
    """Name -> ``module:attr`` for built-ins and the ``mnist_ignite.models`` entry points."""
    return registered(BUILTIN_MODELS, ENTRY_POINT_GROUP)


def is_trusted(spec: str) -> bool:
    """A built-in model or an installed entry point: code the user installed, not code a file names."""
    return spec in available_models()


def require_trusted(spec: str, source: str, trusted: bool = False, how: str = "") -> None:
    """Refuse to import ``spec`` read from ``source`` (a checkpoint, a config.json) unless it is trusted.

    A data file must never make this tool run code: a spec that imports a module or a file is used
    only when the user trusts it (``trusted``: ``--trust-code``, or the same spec on the command line).

    Raises:
        UntrustedSpecError: one line saying what the file asks for and how to allow it (exit 2).
    """
    if trusted or is_trusted(spec):
        return
    allow = how or f"--model {spec}, or --trust-code"
    raise UntrustedSpecError(
        f"{source} asks to import {spec!r} to rebuild its model; a file cannot make mnist-ignite run code. "
        f"If you trust that code, say so: {allow}"
    )


def build_model(spec: str, args: Mapping[str, Any] | None = None) -> nn.Module:
    """A fresh model for ``spec`` with constructor keywords ``args``; every failure is one :class:`ModelError` line."""
    args = dict(args or {})
    try:
        factory = resolve(spec, available_models(), "model")
    except SpecError as err:
        raise ModelError(str(err)) from None
    if not callable(factory):
        raise ModelError(f"model {spec!r} is not a class or function that builds an nn.Module")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        known = [n for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = sorted(set(args) - set(known))
        if unknown:
            raise ModelError(
                f"model {spec!r} has no parameter {', '.join(unknown)} (its parameters: {', '.join(known) or 'none'})"
            )
    try:
        model = factory(**args)
    except Exception as err:
        raise ModelError(f"model {spec!r} could not be built: {type(err).__name__}: {err}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model {spec!r} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def _free_bytes(device: torch.device) -> int | None:
    """Memory a run can still take on ``device``: a GPU's free memory; on a CPU, Linux's MemAvailable
    (free pages plus the page cache it can drop), else the free pages; None where neither is known."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    return None


def saved_bytes_per_image(model: nn.Module) -> int:
    """What one more image in a training batch costs: the bytes autograd keeps for the backward pass.

    Measured, not guessed: the tensors saved for backward (one count per storage) in a forward of
    4 images minus one of 2, halved, so weights and other per-batch constants drop out. The peak of
    a real step is about 10% above it (the Net: 0.51 MB saved, 0.55 MB measured peak per image).
    """
    from torch.autograd.graph import saved_tensors_hooks

    def saved(n: int) -> int:
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return t

        x = torch.zeros(n, 1, 28, 28, device=next(model.parameters()).device)
        with saved_tensors_hooks(pack, lambda t: t):
            model(x)
        return sum(storages.values())

    was_training = model.training
    model.train()
    try:
        return max(0, (saved(4) - saved(2)) // 2)
    except Exception:  # a forward that fails in training mode is reported by the run itself, in its words
        return 0
    finally:
        model.train(was_training)


BATCH_HEADROOM = 1.25  # a step's peak over the saved tensors, with room for the rest of the process


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def check_model(model: nn.Module, spec: str, device: torch.device | str = "cpu", batch: int | None = None) -> str:
    """Check ``model`` before any data is read; returns ``"log-probabilities"`` or ``"logits"``.

    It must fit the device (weights, gradients and momentum: 3 copies of the parameters, and with
    ``batch`` the activations a training batch of that many images keeps for backward), take a
    (B, 1, 28, 28) batch, and return (B, 10) finite scores.
    """
    device = torch.device(device)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    if params == 0:
        raise ModelError(f"model {spec!r} has no parameters to train")
    free = _free_bytes(device)
    if free is not None and 3 * params > free:
        raise ModelError(
            f"model {spec!r} is too large for {device}: {_size(params)} of parameters need "
            f"~{_size(3 * params)} with gradients and momentum; {_size(free)} are free"
        )
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.zeros(2, 1, 28, 28))
    except Exception as err:
        raise ModelError(
            f"model {spec!r} failed on a (2, 1, 28, 28) batch: {type(err).__name__}: {' '.join(str(err).split())}"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 10):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"model {spec!r} must map (B, 1, 28, 28) to (B, 10) scores; it returned {shape} for B=2")
    if not torch.isfinite(out).all():
        raise ModelError(f"model {spec!r} returns NaN/Inf on a blank batch")
    if batch is not None and free is not None:
        per_image = saved_bytes_per_image(model)
        need = BATCH_HEADROOM * (3 * params + batch * per_image)
        if need > free:
            fits = max(0, int((free / BATCH_HEADROOM - 3 * params) // max(per_image, 1)))
            raise BatchTooLargeError(
                f"a training batch of {batch:,} images needs ~{_size(need)} on {device} "
                f"({_size(per_image)} of activations per image, kept for backward); {_size(free)} are free: "
                f"about {fits:,} images per batch fit"
            )
    return "log-probabilities" if torch.allclose(out.exp().sum(dim=1), torch.ones(2), atol=1e-4) else "logits"
