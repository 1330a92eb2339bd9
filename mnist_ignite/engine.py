"""Ignite trainer and evaluator for the Net: the update step, no-grad evaluation, metrics.

The trainer is an :class:`ignite.engine.Engine` around :class:`TrainStep` (the same update as
``create_supervised_trainer``, plus autocast on any device and channels_last) or its CUDA-graph
twin; the evaluator is ``create_supervised_evaluator``. Metrics are Ignite's own: ``Average``s of
the batch losses and of the per-image hits over the epoch on the trainer (the seed's running
values), ``Loss`` and ``Accuracy`` on the evaluator. Metric sums stay on the device, so a step
never waits for the host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events, create_supervised_evaluator
from ignite.metrics import Accuracy, Average, Loss

__all__ = [
    "GraphedTrainStep",
    "MisclassifiedSamples",
    "TrainMetricsState",
    "TrainStep",
    "autocast",
    "create_evaluator",
    "create_trainer",
    "prepare_batch",
    "resolve_precision",
    "select_device",
]

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


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


def _cpu_has_fast_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None`` = fp32).

    ``auto`` means bf16 where the hardware runs it natively (CUDA with bf16, CPUs with
    AVX512-BF16/AMX), else fp32: emulated bf16 is slower than fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if _cpu_has_fast_bf16() else None
    return None


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
    """One SGD update: forward under autocast, nll_loss on log-probabilities, backward, step.

    Returns detached tensors only (``loss``, ``y_pred``, ``y``): turning the loss into a Python
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
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.forward = model if forward is None else forward

    def _loss(self, x: torch.Tensor, y: torch.Tensor, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward under autocast and the nll loss in fp32; returns (loss, log-probabilities)."""
        with autocast(self.device, self.dtype, cache):
            y_pred = self.forward(x)
        return F.nll_loss(y_pred.float(), y), y_pred

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
        loss.backward()
        self.optimizer.step()
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


class GraphedTrainStep(TrainStep):
    """The same update captured once as a CUDA graph and replayed: one launch per iteration.

    The first ``warmup`` steps run eagerly on a side stream (as CUDA graph capture requires),
    then the whole step (forward, loss, backward, SGD update) is captured for the full batch
    size. A smaller last batch runs the same math eagerly. Momentum buffers stay in
    ``optimizer.state``, so checkpoints and resume see a normal SGD.
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
        loss.backward()
        with torch.no_grad():
            _sgd_momentum_(self.params, [p.grad for p in self.params], self._bufs(), self.lr, self.momentum)
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
    the step as a CUDA graph for batches of that size.
    """
    if cuda_graph_batch:
        step: TrainStep = GraphedTrainStep(
            model, optimizer, device, dtype, channels_last, forward, batch_size=cuda_graph_batch
        )
    else:
        step = TrainStep(model, optimizer, device, dtype, channels_last, forward)
    trainer = Engine(step)
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
        metrics={"accuracy": Accuracy(device=device), "loss": Loss(F.nll_loss, device=device)},
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
