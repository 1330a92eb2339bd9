"""The update step: forward under autocast, cross-entropy, backward, SGD; eager or as a CUDA graph."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from ignite.engine import Engine

__all__ = ["GraphedTrainStep", "LossScaler", "StepOutput", "TrainStep", "autocast", "prepare_batch"]


class StepOutput(dict):
    """``engine.state.output`` of the trainer: ``loss`` (a 0-d tensor on the device), ``y_pred``
    (B, 10 log-probabilities or logits), ``y`` (B,) and ``correct`` (B, 1).

    Ignite's ``create_supervised_trainer`` outputs ``loss.item()``, a float; code written for it
    (``f"{engine.state.output:.4f}"``, ``float(engine.state.output)``) works here too: the loss is
    read from the device only when such code asks, never on every step.
    """

    def __float__(self) -> float:
        return float(self["loss"])

    def __format__(self, spec: str) -> str:
        return format(float(self), spec) if spec else dict.__repr__(self)

    def item(self) -> float:
        """The loss as a Python float (one host sync), as ``loss.item()`` in Ignite's own trainer."""
        return float(self)


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
        grad_clip: float | None = None,
        accumulate: int = 1,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.forward = model if forward is None else forward
        self.scaler = scaler
        self.grad_clip = grad_clip
        self.accumulate = accumulate

    def _loss(self, x: torch.Tensor, y: torch.Tensor, cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward under autocast and the nll loss in fp32; returns (loss, log-probabilities)."""
        with autocast(self.device, self.dtype, cache):
            y_pred = self.forward(x)
        # cross_entropy = nll_loss(log_softmax(.)): the seed's loss on log-probabilities, and right for logits
        return F.cross_entropy(y_pred.float(), y), y_pred

    @staticmethod
    def _output(loss: torch.Tensor, y_pred: torch.Tensor, y: torch.Tensor) -> StepOutput:
        """The step's output: ``correct`` (B, 1) feeds the epoch accuracy as an Ignite ``Average``."""
        exact = torch.float32 if y.device.type == "mps" else torch.float64  # Ignite's accumulator dtype
        correct = (y_pred.argmax(dim=1) == y).unsqueeze(1).to(exact)
        return StepOutput(loss=loss.detach(), y_pred=y_pred.detach(), y=y, correct=correct)

    def __call__(self, engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> StepOutput:
        self.model.train()
        x, y = prepare_batch(batch, self.device, self.channels_last)
        # --accumulate N: gradients of N batches averaged, one update; an epoch's last batch always updates
        n = self.accumulate
        iteration, length = (engine.state.iteration, engine.state.epoch_length or 0) if n > 1 else (1, 0)
        if n == 1 or (iteration - 1) % n == 0:
            self.optimizer.zero_grad(set_to_none=True)
        loss, y_pred = self._loss(x, y)
        update = n == 1 or iteration % n == 0 or (length and iteration % length == 0)
        scaled = loss / n if n > 1 else loss
        if self.scaler is None:
            scaled.backward()
            if update:
                self._clip()
                self.optimizer.step()
        else:
            self.scaler.scale(scaled).backward()
            if update:
                if self.grad_clip is not None:
                    self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
                self._clip()
                self.scaler.step(self.optimizer)  # reads the inf flag on the host (GradScaler's own sync)
                self.scaler.update()
        return self._output(loss, y_pred, y)

    def _clip(self) -> None:
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)


def _sgd_momentum_(
    params: list[torch.Tensor], grads: list[torch.Tensor], bufs: list[torch.Tensor], lr: torch.Tensor, momentum: float
) -> None:
    """SGD with momentum (PyTorch's formula, dampening 0) with the lr as a device tensor.

    ``torch.optim.SGD`` turns the lr into a Python number, which a CUDA graph would freeze;
    here the lr lives in a tensor the scheduler's value is copied into before each replay.
    """
    # torch's multi-tensor kernels (what torch.optim.SGD(foreach=True) calls; no public alias): a
    # handful of launches for all parameters, which a CUDA graph captures
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
    # GradScaler's own kernels (private in torch): the same math, with no host sync
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

    def _update(self, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
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

    def __call__(self, engine: Engine, batch: tuple[torch.Tensor, torch.Tensor]) -> StepOutput:
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
