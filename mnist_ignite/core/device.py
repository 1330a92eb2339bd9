"""Where a run trains and in which precision: the device (``auto`` and named ones) and autocast dtypes."""

from __future__ import annotations

import inspect
import platform
from dataclasses import dataclass

import torch

from mnist_ignite.config.settings import DEVICES, PRECISIONS

__all__ = ["Precision", "channels_last_refusal", "choose_precision", "resolve_precision", "select_device"]


def _accelerator() -> torch.device | None:
    """The accelerator torch reports (cuda, mps, xpu, ...: ``torch.accelerator``), or None."""
    api = getattr(torch, "accelerator", None)
    if api is not None and api.is_available():
        return api.current_accelerator()
    if torch.cuda.is_available():  # a torch without torch.accelerator
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return None


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks the accelerator torch reports, else the CPU; a named device (any type torch
    knows, with an optional index: ``cuda:1``, ``xpu``) must be there."""
    if name == "auto":
        return _accelerator() or torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"unknown device {name!r}; choose auto, cpu or an accelerator type torch knows "
            f"({', '.join(DEVICES[2:])}, xpu, ...)"
        ) from None
    if device.type == "cpu":
        return device
    found = _accelerator()
    if found is None or found.type != device.type:
        there = f"torch sees {found.type}" if found is not None else "torch sees no accelerator here"
        raise ValueError(f"--device {name} asked for, but {there} (--device auto picks what there is)")
    module = getattr(torch, device.type, None)
    count = module.device_count() if module is not None and hasattr(module, "device_count") else 1
    if device.index is not None and device.index >= count:
        raise ValueError(f"--device {name} asked for, but torch sees {count} {device.type} device(s)")
    return device


def _cpu_flag(name: str) -> bool:
    """``torch.cpu._is_<name>_supported()``; False where this torch lacks the probe."""
    probe = getattr(torch.cpu, f"_is_{name}_supported", None)
    return bool(probe()) if probe is not None else False


def _cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX on x86 (oneDNN's check alone also says yes to plain AVX512, which emulates bf16)."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        return _cpu_flag("avx512_bf16") or _cpu_flag("amx_tile")
    try:  # Arm and others: oneDNN knows (e.g. Neoverse V1's BF16 extension)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # oneDNN's own probe; torch has no public one
    except (AttributeError, RuntimeError):
        return False


def _cuda_native_bf16(device: torch.device) -> bool:
    """bf16 tensor cores (capability >= 8.0, or ROCm): the default ``is_bf16_supported()`` also says yes
    to pre-Ampere GPUs, which only emulate bf16."""
    if "including_emulation" in inspect.signature(torch.cuda.is_bf16_supported).parameters:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))  # asks the current device
    return torch.cuda.get_device_capability(device) >= (8, 0)


@dataclass(frozen=True)
class Precision:
    """The precision a run trains in and why: ``name`` fp32 | bf16 | fp16, ``dtype`` for autocast
    (``None`` = fp32), ``reason`` a few words for the run header. fp16 always comes with dynamic
    loss scaling (:class:`LossScaler`)."""

    name: str
    dtype: torch.dtype | None
    reason: str

    @property
    def loss_scaling(self) -> bool:
        return self.dtype == torch.float16

    def __str__(self) -> str:
        scaling = ", dynamic loss scaling" if self.loss_scaling else ""
        return f"{self.name} ({self.reason}{scaling})"


_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def choose_precision(precision: str, device: torch.device) -> Precision:
    """The precision ``precision`` means on ``device``, with the reason.

    ``auto``: bf16 where the hardware runs it natively (CUDA capability >= 8.0, CPUs with
    AVX512-BF16/AMX); fp16 with loss scaling on CUDA capability 7.x (V100, T4: fp16 tensor
    cores, bf16 only emulated); fp32 otherwise, since emulated half precision is slower than fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu" and not _cpu_flag("amx_fp16"):
        # no oneDNN fp16 kernels without AMX-FP16: convolutions take ATen's slow path (measured ~15x fp32)
        return Precision("fp16", torch.float16, "asked for; this CPU has no AMX-FP16, expect it far slower than fp32")
    if precision != "auto":
        return Precision(precision, _DTYPES[precision], "asked for")
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        sm = f"CUDA capability {major}.{minor}"
        if _cuda_native_bf16(device):
            return Precision("bf16", torch.bfloat16, f"auto: {sm} runs bf16 natively")
        if major == 7:
            return Precision("fp16", torch.float16, f"auto: {sm} has fp16 tensor cores, no native bf16")
        return Precision("fp32", None, f"auto: {sm} has no half-precision tensor cores")
    if device.type == "cpu":
        if _cpu_has_fast_bf16():
            return Precision("bf16", torch.bfloat16, "auto: the CPU has AVX512-BF16/AMX")
        return Precision("fp32", None, "auto: the CPU has no native bf16")
    return Precision("fp32", None, f"auto: fp32 on {device.type}")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None`` = fp32); see :func:`choose_precision`."""
    return choose_precision(precision, device).dtype


def _forward_error(model: torch.nn.Module, x: torch.Tensor) -> str | None:
    was_training = model.training
    model.eval()  # no batch-norm statistics move, no dropout
    try:
        with torch.no_grad():
            model(x)
    except Exception as err:  # the user's forward: anything it raises
        return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"
    finally:
        model.train(was_training)
    return None


def channels_last_refusal(model: torch.nn.Module, device: torch.device) -> str | None:
    """Why ``model`` (already in channels_last) cannot take a channels_last batch, or None when it can.

    One forward on a batch of two 1x28x28 images, each layout: a forward that fails in NCHW too is
    the model's own error, left for the run to report; one that fails only in channels_last (a
    ``view`` after a convolution) trains in NCHW instead: the model is left in NCHW then.
    """
    from mnist_ignite.models.layers import INPUT_SIZE

    x = torch.zeros(2, *INPUT_SIZE, device=device)
    error = _forward_error(model, x.to(memory_format=torch.channels_last))
    if error is None:
        return None
    model.to(memory_format=torch.contiguous_format)
    if _forward_error(model, x) is None:
        return error
    model.to(memory_format=torch.channels_last)  # the model's own error: the run reports it as it is
    return None
