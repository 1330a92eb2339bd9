"""Ignite trainer and evaluator for the Net: the update step, no-grad evaluation, metrics, handler owners.

Both engines are :class:`RunEngine`, an Ignite ``Engine`` that remembers which plugin registered
each handler: a handler that raises is reported under its plugin's name (:mod:`mnist_ignite.plugins.guard`),
and every plugin's handlers are counted as they fire (``--fast-dev-run`` reports what never ran).
The trainer runs :class:`~mnist_ignite.core.step.TrainStep` (the same update as
``create_supervised_trainer``, plus autocast on any device, fp16 loss scaling and channels_last)
or its CUDA-graph twin; the evaluator runs Ignite's ``supervised_evaluation_step``. Metrics are
Ignite's own: ``Average``s of the batch losses and of the per-image hits over the epoch on the
trainer (the seed's running values), ``Loss`` and ``Accuracy`` on the evaluator. Metric sums stay
on the device, so a step never waits for the host.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events, EventsList, supervised_evaluation_step
from ignite.handlers.param_scheduler import BaseParamScheduler
from ignite.metrics import Accuracy, Average, Loss

from mnist_ignite.core.step import GraphedTrainStep, LossScaler, TrainStep, autocast, prepare_batch
from mnist_ignite.plugins.guard import mark_origin

__all__ = [
    "MisclassifiedSamples",
    "RunEngine",
    "TrainMetricsState",
    "create_evaluator",
    "create_trainer",
    "event_label",
    "finite_weights",
]


def event_label(event: Any) -> str:
    """An event as its user wrote it: ``ITERATION_COMPLETED(every=10)``, ``EPOCH_COMPLETED(once=2)``, ``STARTED``.

    Ignite keeps ``every=``/``once=`` only inside the filter function it builds; they are read back
    from that function's closure (a custom ``event_filter`` shows as ``(filtered)``).
    """
    name = getattr(event, "name", str(event))
    f = getattr(event, "filter", None)
    if f is None:
        return name
    values = dict(zip(f.__code__.co_freevars, (c.cell_contents for c in f.__closure__ or ()), strict=False))
    shown = []
    for key in ("every", "once", "before_", "after_"):
        value = values.get(key)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value not in (None, 0):
            shown.append(f"{key.rstrip('_')}={value}")
    return f"{name}({', '.join(shown) or 'filtered'})"


class RunEngine(Engine):
    """An Ignite ``Engine`` that knows which plugin registered each handler.

    While a plugin attaches (:meth:`owned_by`), and while one of its handlers runs, every handler
    registered on this engine belongs to that plugin: it is wrapped so that an exception it raises
    carries the plugin (:func:`~mnist_ignite.plugins.guard.mark_origin`) and each call is counted in :attr:`calls`. The
    core's own handlers (registered with no owner) run as they are, with no wrapper.

    A plugin's handler on ``Events.EXCEPTION_RAISED`` runs and then re-raises: Ignite swallows an
    exception once any handler listens there, which would turn a failed run into a successful exit.
    """

    def __init__(self, process_function: Callable[..., Any], role: str) -> None:
        super().__init__(process_function)
        self.role = role  # "trainer" or "evaluator", for messages
        self.owner: Any = None
        self.calls: Counter[tuple[int, str]] = Counter()  # (id(plugin), event label) -> calls
        self._wrappers: dict[Any, list[Callable[..., Any]]] = {}  # a plugin's handler -> its wrappers
        self.schedulers: list[tuple[Any, Any]] = []  # (plugin, Ignite param scheduler) each plugin added

    @contextlib.contextmanager
    def owned_by(self, plugin: Any) -> Iterator[None]:
        """Handlers registered inside this block belong to ``plugin``."""
        previous, self.owner = self.owner, plugin
        try:
            yield
        finally:
            self.owner = previous

    def add_event_handler(self, event_name: Any, handler: Callable, *args: Any, **kwargs: Any) -> Any:
        owner = self.owner
        if owner is None or isinstance(event_name, EventsList):  # a list comes back here once per event
            return super().add_event_handler(event_name, handler, *args, **kwargs)
        wrapped = self._owned(handler, owner, event_name)
        self._wrappers.setdefault(handler, []).append(wrapped)
        if isinstance(handler, BaseParamScheduler):  # so the built-in schedule can step aside for it
            self.schedulers.append((owner, handler))
        self.calls.setdefault((id(owner), event_label(event_name)), 0)
        return super().add_event_handler(event_name, wrapped, *args, **kwargs)

    def _owned(self, handler: Callable, owner: Any, event_name: Any) -> Callable[..., Any]:
        engine = weakref.proxy(self)  # the wrapper is held by this engine: no reference cycle
        where = f"{self.role} {event_label(event_name)}"
        key = (id(owner), event_label(event_name))
        reraise = event_name == Events.EXCEPTION_RAISED

        @functools.wraps(handler)  # keeps the signature, which Ignite inspects
        def owned(*args: Any, **kwargs: Any) -> Any:
            previous, engine.owner = engine.owner, owner
            engine.calls[key] += 1
            try:
                result = handler(*args, **kwargs)
            except BaseException as err:
                mark_origin(err, owner, where)
                raise
            finally:
                engine.owner = previous
            if reraise:
                raise next(a for a in args if isinstance(a, BaseException))
            return result

        return owned

    def has_event_handler(self, handler: Callable, event_name: Any | None = None) -> bool:
        return any(super(RunEngine, self).has_event_handler(h, event_name) for h in self._registered(handler))

    def remove_event_handler(self, handler: Callable, event_name: Any) -> None:
        for h in self._registered(handler):
            if super().has_event_handler(h, event_name):
                return super().remove_event_handler(h, event_name)
        return super().remove_event_handler(handler, event_name)  # Ignite's own "not found" error

    def _registered(self, handler: Callable) -> list[Callable[..., Any]]:
        try:
            return [handler, *self._wrappers.get(handler, ())]
        except TypeError:  # an unhashable callable cannot have been wrapped
            return [handler]


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
    grad_clip: float | None = None,
    accumulate: int = 1,
) -> RunEngine:
    """The trainer, with ``train_loss`` (mean of batch losses) and ``train_acc`` over each epoch.

    ``trainer.state.metrics`` holds both at ``EPOCH_COMPLETED``; ``trainer.train_metrics``
    is a :class:`TrainMetricsState` for checkpoints. ``cuda_graph_batch`` (CUDA only) replays
    the step as a CUDA graph for batches of that size. fp16 (``dtype=torch.float16``) trains
    with dynamic loss scaling: ``trainer.grad_scaler`` is its :class:`LossScaler` (checkpoint it
    for an exact resume; ``skipped_steps`` counts the skipped updates), ``None`` otherwise.
    ``grad_clip`` clips the gradients' total norm; ``accumulate`` updates once every N batches.
    """
    scaler = LossScaler(device) if dtype == torch.float16 else None
    if cuda_graph_batch:
        step: TrainStep = GraphedTrainStep(
            model, optimizer, device, dtype, channels_last, forward, scaler, batch_size=cuda_graph_batch
        )
    else:
        step = TrainStep(model, optimizer, device, dtype, channels_last, forward, scaler, grad_clip, accumulate)
    trainer = RunEngine(step, "trainer")
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
) -> RunEngine:
    """No-grad evaluator with Ignite's ``Accuracy`` and ``Loss`` (mean nll over all test images).

    What ``create_supervised_evaluator`` builds (Ignite's ``supervised_evaluation_step``), on a
    :class:`RunEngine`, with autocast on any device and the model's memory layout.
    """

    def model_fn(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        with autocast(device, dtype):
            return m(x).float()

    step = supervised_evaluation_step(
        model,
        device,
        non_blocking=device.type == "cuda",
        prepare_batch=lambda batch, device, non_blocking: prepare_batch(batch, device, channels_last),
        model_fn=model_fn,
    )
    evaluator = RunEngine(step, "evaluator")
    Accuracy(device=device).attach(evaluator, "accuracy")
    Loss(F.cross_entropy, device=device).attach(evaluator, "loss")
    # the name Ignite's docs and examples read (``metrics["nll"]``): the same mean loss, computed once
    evaluator.add_event_handler(Events.COMPLETED, _alias, "nll", "loss")
    return evaluator


def _alias(engine: Engine, alias: str, name: str) -> None:
    engine.state.metrics[alias] = engine.state.metrics[name]


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
