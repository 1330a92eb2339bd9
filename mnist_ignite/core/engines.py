"""Ignite trainer and evaluator for the Net: the update step, no-grad evaluation, metrics.

The trainer is an :class:`ignite.engine.Engine` around :class:`TrainStep` (the same update as
``create_supervised_trainer``, plus autocast on any device, fp16 loss scaling and channels_last)
or its CUDA-graph twin; the evaluator is ``create_supervised_evaluator``. Metrics are Ignite's own: ``Average``s of
the batch losses and of the per-image hits over the epoch on the trainer (the seed's running
values), ``Loss`` and ``Accuracy`` on the evaluator. Metric sums stay on the device, so a step
never waits for the host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events, create_supervised_evaluator
from ignite.metrics import Accuracy, Average, Loss

from mnist_ignite.core.step import GraphedTrainStep, LossScaler, TrainStep, autocast, prepare_batch

__all__ = ["MisclassifiedSamples", "TrainMetricsState", "create_evaluator", "create_trainer", "finite_weights"]


def finite_weights(model: torch.nn.Module) -> bool:
    """All weights finite (one host sync): a diverged model is never saved or shipped."""
    return bool(torch.stack([torch.isfinite(p.detach()).all() for p in model.parameters()]).all())


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
