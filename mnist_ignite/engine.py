"""Ignite trainer and evaluator for the Net: the update step, no-grad evaluation, metrics.

The trainer is an :class:`ignite.engine.Engine` around :class:`TrainStep` (the same update as
``create_supervised_trainer``, plus autocast on any device, fp16 loss scaling and channels_last)
or its CUDA-graph twin; the evaluator is ``create_supervised_evaluator``. Metrics are Ignite's own: ``Average``s of
the batch losses and of the per-image hits over the epoch on the trainer (the seed's running
values), ``Loss`` and ``Accuracy`` on the evaluator. Metric sums stay on the device, so a step
never waits for the host.
"""

from __future__ import annotations

import contextlib
import inspect
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events, create_supervised_evaluator
from ignite.metrics import Accuracy, Average, Loss

from mnist_ignite.config.settings import DEVICES, PRECISIONS

__all__ = [
    "GraphedTrainStep",
    "LossScaler",
    "MisclassifiedSamples",
    "Precision",
    "TrainMetricsState",
    "TrainStep",
    "autocast",
    "choose_precision",
    "create_evaluator",
    "create_trainer",
    "finite_weights",
    "prepare_batch",
    "resolve_precision",
    "select_device",
]


def finite_weights(model: torch.nn.Module) -> bool:
    """All weights finite (one host sync): a diverged model is never saved or shipped."""
    return bool(torch.stack([torch.isfinite(p.detach()).all() for p in model.parameters()]).all())


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps asked for, but MPS is not available")
    return torch.device(name)


def _cpu_flag(name: str) -> bool:
    """``torch.cpu._is_<name>_supported()``; False where this torch lacks the probe."""
    probe = getattr(torch.cpu, f"_is_{name}_supported", None)
    return bool(probe()) if probe is not None else False


def _cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX on x86 (oneDNN's check alone also says yes to plain AVX512, which emulates bf16)."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        return _cpu_flag("avx512_bf16") or _cpu_flag("amx_tile")
    try:  # Arm and others: oneDNN knows (e.g. Neoverse V1's BF16 extension)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
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


class LossScaler(torch.amp.GradScaler):
    """``torch.amp.GradScaler`` that also counts the steps it skipped (inf/NaN gradients).

    The count is a device tensor added to without a host sync; ``skipped_steps`` reads it. It
    rides in ``state_dict`` so a resumed run reports the whole run's count.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__(device.type)
        self.skipped = torch.zeros((), dtype=torch.int64, device=device)

    @property
    def skipped_steps(self) -> int:
        return int(self.skipped)

    def count_skipped(self, found_inf: torch.Tensor) -> None:
        """Add one when ``found_inf`` (this step's inf/NaN flag, any shape) is set; no host sync."""
        self.skipped += found_inf.sum() > 0

    def update(self, new_scale: float | torch.Tensor | None = None) -> None:
        if new_scale is None and self.is_enabled():
            # what GradScaler.update itself reads: the inf flags its step() recorded per optimizer
            for state in self._per_optimizer_states.values():
                for found_inf in state["found_inf_per_device"].values():
                    self.count_skipped(found_inf.to(self.skipped.device))
        super().update(new_scale)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.skipped.fill_(int(state_dict.get("skipped_steps", 0)))


def autocast(device: torch.device, dtype: torch.dtype | None, cache: bool = True) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for fp32 (``cache=False`` under CUDA graphs)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


def prepare_batch(
    batch: tuple[torch.Tensor, torch.Tensor], device: torch.device, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to ``device`` (no-op when it is already there)."""
    x, y = batch
    non_blocking = device.type == "cuda"
    x = x.to(device, non_blocking=non_blocking)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=non_blocking)


class TrainStep:
    """One SGD update: forward under autocast, cross-entropy (the seed's nll_loss on log-probabilities), backward, step.

    With a ``scaler`` (fp16) the loss is scaled before backward and the step goes through
    ``scaler.step`` (skipped on inf/NaN gradients, counted) and ``scaler.update``, as in
    PyTorch's AMP recipe. Returns detached tensors only (``loss``, ``y_pred``, ``y``): turning the loss into a Python
    number is left to whoever needs it, so the default path has no host sync per iteration.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        dtype: torch.dtype | None = None,
        channels_last: bool = False,
        forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
        scaler: LossScaler | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.forward = model if forward is None else forward
        self.scaler = scaler

    def _loss(self, x: torch.Tensor, y: torch.Tensor, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward under autocast and the nll loss in fp32; returns (loss, log-probabilities)."""
        with autocast(self.device, self.dtype, cache):
            y_pred = self.forward(x)
        # cross_entropy = nll_loss(log_softmax(.)): the seed's loss on log-probabilities, and right for logits
        return F.cross_entropy(y_pred.float(), y), y_pred

    @staticmethod
    def _output(loss: torch.Tensor, y_pred: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The step's output: ``correct`` (B, 1) feeds the epoch accuracy as an Ignite ``Average``."""
        exact = torch.float32 if y.device.type == "mps" else torch.float64  # Ignite's accumulator dtype
        correct = (y_pred.argmax(dim=1) == y).unsqueeze(1).to(exact)
        return {"loss": loss.detach(), "y_pred": y_pred.detach(), "y": y, "correct": correct}

    def __call__(self, engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.model.train()
        x, y = prepare_batch(batch, self.device, self.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        loss, y_pred = self._loss(x, y)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)  # reads the inf flag on the host (GradScaler's own sync)
            self.scaler.update()
        return self._output(loss, y_pred, y)


def _sgd_momentum_(
    params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[torch.Tensor], lr: torch.Tensor, momentum: float
) -> None:
    """SGD with momentum (PyTorch's formula, dampening 0) with the lr as a device tensor.

    ``torch.optim.SGD`` turns the lr into a Python number, which a CUDA graph would freeze;
    here the lr lives in a tensor the scheduler's value is copied into before each replay.
    """
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, grads)
    torch._foreach_add_(params, torch._foreach_mul(bufs, -lr))


def _scaled_sgd_momentum_(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    bufs: list[torch.Tensor],
    lr: torch.Tensor,
    momentum: float,
    scaler: LossScaler,
) -> None:
    """The fp16 update with loss scaling, all on the device (no host sync, so a CUDA graph can hold it).

    What ``GradScaler.step`` + ``update`` do around ``SGD.step``, with the skip decided by a
    device mask instead of a Python ``if``: unscale and flag inf/NaN (``unscale_``'s kernel),
    keep momentum buffers and weights when flagged, then grow or back off the scale (``update``'s
    kernel) on the scaler's own tensors, so its ``state_dict`` and ``load_state_dict`` still work.
    """
    scale, tracker = scaler._scale, scaler._growth_tracker  # set by scaler.scale(loss) before backward
    assert scale is not None and tracker is not None
    found_inf = torch.zeros(1, device=scale.device)
    torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, scale.double().reciprocal().float())
    keep = found_inf[0] == 0  # 0-d: foreach ops take a 0-d tensor as their scalar
    stepped = torch._foreach_add(torch._foreach_mul(bufs, momentum), grads)
    for buf, new in zip(bufs, stepped, strict=True):
        buf.copy_(torch.where(keep, new, buf))
    torch._foreach_add_(params, torch._foreach_mul(bufs, -lr * keep))
    torch._amp_update_scale_(
        scale,
        tracker,
        found_inf,
        scaler.get_growth_factor(),
        scaler.get_backoff_factor(),
        scaler.get_growth_interval(),
    )
    scaler.count_skipped(found_inf)


class GraphedTrainStep(TrainStep):
    """The same update captured once as a CUDA graph and replayed: one launch per iteration.

    The first ``warmup`` steps run eagerly on a side stream (as CUDA graph capture requires),
    then the whole step (forward, loss, backward, SGD update) is captured for the full batch
    size. A smaller last batch runs the same math eagerly. Momentum buffers stay in
    ``optimizer.state``, so checkpoints and resume see a normal SGD. fp16 keeps loss scaling
    inside the graph: inf check, skip and scale update are device ops on the ``scaler``'s
    tensors (:func:`_scaled_sgd_momentum_`), so there is no host sync per step.
    """

    def __init__(self, *args: Any, batch_size: int, warmup: int = 3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        (group,) = self.optimizer.param_groups
        if group.get("nesterov") or group.get("weight_decay") or group.get("dampening") or not group["momentum"]:
            raise ValueError("CUDA-graph step supports SGD with momentum, no nesterov/weight decay/dampening")
        self.params = [p for p in group["params"] if p.requires_grad]
        self.momentum = float(group["momentum"])
        self.lr_value = float(group["lr"])
        self.lr = torch.tensor(self.lr_value, device=self.device)
        self.batch_size, self.warmup = batch_size, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict[str, torch.Tensor] = {}

    def _bufs(self) -> list[torch.Tensor]:
        state = self.optimizer.state
        for p in self.params:
            if state[p].get("momentum_buffer") is None:
                state[p]["momentum_buffer"] = torch.zeros_like(p)
        return [state[p]["momentum_buffer"] for p in self.params]

    def _update(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        loss, y_pred = self._loss(x, y, cache=False)  # autocast's cache cannot live across graph replays
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
        grads = [p.grad for p in self.params]
        with torch.no_grad():
            if self.scaler is None:
                _sgd_momentum_(self.params, grads, self._bufs(), self.lr, self.momentum)
            else:
                _scaled_sgd_momentum_(self.params, grads, self._bufs(), self.lr, self.momentum, self.scaler)
        return self._output(loss, y_pred, y)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.static = {"x": x.clone(), "y": y.clone()}
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self._update(self.static["x"], self.static["y"])

    def __call__(self, engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.model.train()
        x, y = prepare_batch(batch, self.device, self.channels_last)
        lr = float(self.optimizer.param_groups[0]["lr"])
        if lr != self.lr_value:  # follow the scheduler; a fill is a launch, not a host sync
            self.lr.fill_(lr)
            self.lr_value = lr
        if x.shape[0] != self.batch_size or (self.graph is None and self.warmup > 0):
            if x.shape[0] == self.batch_size:
                self.warmup -= 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                output = self._update(x, y)
            torch.cuda.current_stream().wait_stream(side)
            return output
        if self.graph is None:
            self._capture(x, y)
        self.static["x"].copy_(x)
        self.static["y"].copy_(y)
        assert self.graph is not None
        self.graph.replay()
        # the graph's own output buffers (the accuracy terms too, computed inside the graph): valid
        # until the next iteration, like any step output handlers consume at ITERATION_COMPLETED
        return self.outputs


class TrainMetricsState:
    """Checkpointable state of the trainer's epoch metrics.

    Ignite resets epoch metrics on ``EPOCH_STARTED``, which also fires when a run resumes
    mid-epoch; loading therefore defers the restore until just after that reset, and only
    applies it when the checkpoint was taken mid-epoch.
    """

    def __init__(self, trainer: Engine, metrics: Mapping[str, Any]) -> None:
        self.trainer = trainer
        self.metrics = dict(metrics)

    def state_dict(self) -> dict[str, Any]:
        return {name: dict(m.state_dict()) for name, m in self.metrics.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        def restore(engine: Engine) -> None:
            self.trainer.remove_event_handler(restore, Events.EPOCH_STARTED)
            if engine.state.iteration % engine.state.epoch_length == 0:
                return  # saved at an epoch end: the new epoch starts from zero
            for name, m in self.metrics.items():
                if name in state:
                    m.load_state_dict(state[name])

        self.trainer.add_event_handler(Events.EPOCH_STARTED, restore)


def create_trainer(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    cuda_graph_batch: int | None = None,
) -> Engine:
    """The trainer, with ``train_loss`` (mean of batch losses) and ``train_acc`` over each epoch.

    ``trainer.state.metrics`` holds both at ``EPOCH_COMPLETED``; ``trainer.train_metrics``
    is a :class:`TrainMetricsState` for checkpoints. ``cuda_graph_batch`` (CUDA only) replays
    the step as a CUDA graph for batches of that size. fp16 (``dtype=torch.float16``) trains
    with dynamic loss scaling: ``trainer.grad_scaler`` is its :class:`LossScaler` (checkpoint it
    for an exact resume; ``skipped_steps`` counts the skipped updates), ``None`` otherwise.
    """
    scaler = LossScaler(device) if dtype == torch.float16 else None
    if cuda_graph_batch:
        step: TrainStep = GraphedTrainStep(
            model, optimizer, device, dtype, channels_last, forward, scaler, batch_size=cuda_graph_batch
        )
    else:
        step = TrainStep(model, optimizer, device, dtype, channels_last, forward, scaler)
    trainer = Engine(step)
    trainer.grad_scaler = scaler  # type: ignore[attr-defined]
    metrics = {
        "train_loss": Average(output_transform=lambda o: o["loss"], device=device),
        # Average of the per-image 0/1 "correct" column = correct / processed, the seed's running accuracy;
        # the step computes it (inside the CUDA graph when there is one), which saves launches per iteration
        "train_acc": Average(output_transform=lambda o: o["correct"], device=device),
    }
    for name, metric in metrics.items():
        metric.attach(trainer, name)
    trainer.train_metrics = TrainMetricsState(trainer, metrics)  # type: ignore[attr-defined]
    return trainer


def create_evaluator(
    model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None = None, channels_last: bool = False
) -> Engine:
    """No-grad evaluator with Ignite's ``Accuracy`` and ``Loss`` (mean nll over all test images)."""

    def model_fn(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        with autocast(device, dtype):
            return m(x).float()

    return create_supervised_evaluator(
        model,
        metrics={"accuracy": Accuracy(device=device), "loss": Loss(F.cross_entropy, device=device)},
        device=device,
        non_blocking=device.type == "cuda",
        prepare_batch=lambda batch, device, non_blocking: prepare_batch(batch, device, channels_last),
        model_fn=model_fn,
    )


class MisclassifiedSamples:
    """Keeps the first ``limit`` wrong predictions of each evaluation run (images, true, predicted).

    Attach to an evaluator whose output is ``(y_pred, y)``; images come from ``state.batch``.
    """

    def __init__(self, limit: int = 12) -> None:
        self.limit = limit
        self.images = torch.empty(0)
        self.true: list[int] = []
        self.pred: list[int] = []

    def attach(self, evaluator: Engine) -> None:
        evaluator.add_event_handler(Events.STARTED, self.reset)
        evaluator.add_event_handler(Events.ITERATION_COMPLETED, self.update)

    def reset(self, _: Engine | None = None) -> None:
        self.images, self.true, self.pred = torch.empty(0), [], []

    def update(self, engine: Engine) -> None:
        if len(self.true) >= self.limit:
            return
        y_pred, y = engine.state.output
        pred = y_pred.argmax(dim=1)
        wrong = (pred != y).nonzero().flatten()[: self.limit - len(self.true)].cpu()
        if len(wrong):
            x = engine.state.batch[0][wrong.to(engine.state.batch[0].device)].detach().float().cpu()
            self.images = torch.cat([self.images, x]) if len(self.images) else x
            self.true += y[wrong.to(y.device)].tolist()
            self.pred += pred[wrong.to(pred.device)].tolist()

    def titles(self) -> list[str]:
        return [f"true {t} / pred {p}" for t, p in zip(self.true, self.pred, strict=True)]
