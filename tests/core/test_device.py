"""Where a run trains and in which precision: the probes are faked, the choice is the real code's."""

from __future__ import annotations

import platform
from types import SimpleNamespace

import pytest
import torch

from mnist_ignite.core.device import choose_precision, resolve_precision, select_device

CPU = torch.device("cpu")


def fake_gpu(monkeypatch: pytest.MonkeyPatch, major: int, minor: int) -> None:
    """torch.cuda answers as one GPU of compute capability ``major.minor`` would (no CUDA needed)."""
    props = SimpleNamespace(major=major, minor=minor, name=f"sm{major}{minor}")
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    # what the default is_bf16_supported() finds on a T4 or V100: a bf16 tensor can be made (emulated)
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True, raising=False)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_picks_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert select_device("auto") == torch.device(expected)
    assert select_device() == torch.device(expected)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cuda", "--device cuda asked for, but torch sees no accelerator here"),
        ("mps", "--device mps asked for, but torch sees no accelerator here"),
        ("tpu", "unknown device 'tpu'; choose auto, cpu or an accelerator type torch knows"),
    ],
)
def test_a_named_device_must_exist(monkeypatch: pytest.MonkeyPatch, name: str, message: str) -> None:
    """Asking for a device that is not there fails at once, instead of training elsewhere unnoticed."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    with pytest.raises(ValueError, match=message):
        select_device(name)
    assert select_device("cpu") == CPU


@pytest.mark.parametrize(
    ("major", "minor", "expected"),
    [(6, 1, "fp32"), (7, 0, "fp16"), (7, 5, "fp16"), (8, 0, "bf16"), (8, 6, "bf16"), (9, 0, "bf16")],
)
def test_auto_precision_on_cuda_follows_the_native_units(
    monkeypatch: pytest.MonkeyPatch, major: int, minor: int, expected: str
) -> None:
    fake_gpu(monkeypatch, major, minor)
    assert torch.cuda.is_bf16_supported()  # the emulation-inclusive answer the auto choice must not use
    choice = choose_precision("auto", torch.device("cuda"))
    assert choice.name == expected
    assert f"CUDA capability {major}.{minor}" in choice.reason
    assert choice.loss_scaling == (expected == "fp16")
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    assert resolve_precision("auto", torch.device("cuda")) is dtypes[expected]


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(True, False, "bf16"), (False, True, "bf16"), (True, True, "bf16"), (False, False, "fp32")],
)
def test_auto_precision_on_cpu_wants_native_bf16(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, expected: str
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert choose_precision("auto", CPU).name == expected


@pytest.mark.parametrize(("onednn", "expected"), [(True, "bf16"), (False, "fp32"), (RuntimeError, "fp32")])
def test_auto_precision_on_an_arm_cpu_asks_onednn(
    monkeypatch: pytest.MonkeyPatch, onednn: bool | type[Exception], expected: str
) -> None:
    """Off x86 the AVX512/AMX flags mean nothing; oneDNN's probe decides, and a probe that fails means fp32."""

    def probe() -> bool:
        if onednn is RuntimeError:
            raise RuntimeError("no oneDNN in this build")
        return bool(onednn)

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)  # must be ignored here
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", probe)
    assert choose_precision("auto", CPU).name == expected


def test_explicit_precision_is_kept_and_unknown_is_refused() -> None:
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    fp16 = choose_precision("fp16", CPU)
    assert fp16.dtype is torch.float16 and "dynamic loss scaling" in str(fp16)
    with pytest.raises(ValueError, match=r"unknown precision 'fp8'.*fp16"):
        resolve_precision("fp8", CPU)


@pytest.mark.parametrize(("amx_fp16", "slow"), [(True, False), (False, True), (None, True)])
def test_fp16_on_a_cpu_without_amx_fp16_says_it_will_be_slow(
    monkeypatch: pytest.MonkeyPatch, amx_fp16: bool | None, slow: bool
) -> None:
    """fp16 is kept as asked for, but the header warns where oneDNN has no fp16 kernels (or torch has no probe)."""
    if amx_fp16 is None:
        monkeypatch.delattr(torch.cpu, "_is_amx_fp16_supported", raising=False)
    else:
        monkeypatch.setattr(torch.cpu, "_is_amx_fp16_supported", lambda: amx_fp16)
    choice = choose_precision("fp16", CPU)
    assert (choice.name, choice.dtype, choice.loss_scaling) == ("fp16", torch.float16, True)
    assert ("far slower than fp32" in choice.reason) is slow
    assert choice.reason == "asked for" or slow


@pytest.mark.parametrize("device", ["mps", "xpu"])
def test_auto_precision_elsewhere_is_fp32(device: str) -> None:
    """No probe for other devices' half-precision units: fp32 is never slower than emulated half."""
    choice = choose_precision("auto", torch.device(device))
    assert (choice.name, choice.dtype, str(choice)) == ("fp32", None, f"fp32 (auto: fp32 on {device})")
