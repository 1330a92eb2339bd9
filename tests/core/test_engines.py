"""fp16 loss scaling (skips, counts, exact resume) and CPU repeatability of the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, DiskSaver
from torch import nn

from mnist_ignite.core.data import TensorTrainLoader, read_mnist
from mnist_ignite.core.engines import create_trainer
from mnist_ignite.core.step import GraphedTrainStep, LossScaler, TrainStep
from mnist_ignite.models.net import Net

CPU = torch.device("cpu")


def small_net() -> nn.Module:
    """A one-conv MNIST net: CPU fp16 convolutions take ATen's slow path, so the Net would take minutes."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(8 * 6 * 6, 10), nn.LogSoftmax(dim=1)
    )


@pytest.fixture(scope="module")
def batches(data_dir: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """16 augmented batches of 32 real MNIST training images."""
    train = read_mnist(data_dir, train=True, download=False)
    return list(TensorTrainLoader(train.data[:512], train.targets[:512], 32, seed=0, device=CPU))


def trainer_for(model: nn.Module, dtype: torch.dtype | None) -> Engine:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return create_trainer(model, optimizer, CPU, dtype)


def poison_grad(model: nn.Module, trainer: Engine, iterations: set[int]) -> None:
    """Make the first weight's gradient inf at the given iterations (what fp16 overflow looks like)."""
    weight = next(model.parameters())
    weight.register_hook(lambda g: g * float("inf") if trainer.state.iteration in iterations else g)


def test_fp16_trains_with_loss_scaling(batches: list) -> None:
    model = small_net()
    trainer = trainer_for(model, torch.float16)
    losses = []
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: losses.append(e.state.metrics["train_loss"]))
    trainer.run(batches, max_epochs=3)
    assert isinstance(trainer.grad_scaler, LossScaler)
    assert losses[-1] < 0.8 * losses[0], losses
    assert trainer.grad_scaler.skipped_steps == 0
    assert trainer.grad_scaler.get_scale() == 65536.0  # no overflow, and fewer than 2000 steps to grow


def test_fp32_and_bf16_have_no_scaler() -> None:
    assert trainer_for(small_net(), None).grad_scaler is None
    assert trainer_for(small_net(), torch.bfloat16).grad_scaler is None


def test_inf_gradients_skip_the_step_and_are_counted(batches: list) -> None:
    model = small_net()
    trainer = trainer_for(model, torch.float16)
    poison_grad(model, trainer, {3, 5})
    before: dict[int, list[torch.Tensor]] = {}
    after: dict[int, list[torch.Tensor]] = {}

    @trainer.on(Events.ITERATION_STARTED)
    def _before(e: Engine) -> None:
        before[e.state.iteration] = [p.detach().clone() for p in model.parameters()]

    @trainer.on(Events.ITERATION_COMPLETED)
    def _after(e: Engine) -> None:
        after[e.state.iteration] = [p.detach().clone() for p in model.parameters()]

    trainer.run(batches[:6], max_epochs=1)
    scaler = trainer.grad_scaler
    assert scaler.skipped_steps == 2
    assert scaler.get_scale() == 65536.0 / 4  # backed off once per skipped step
    for it in (3, 5):
        assert all(torch.equal(a, b) for a, b in zip(before[it], after[it], strict=True)), it
    assert not all(torch.equal(a, b) for a, b in zip(before[4], after[4], strict=True))
    assert scaler.state_dict()["skipped_steps"] == 2


def test_device_side_scaled_update_matches_gradscaler_and_sgd(batches: list) -> None:
    """The CUDA-graph step's fp16 update (inf check, skip, scale update as device ops) run eagerly on the CPU."""
    eager_model, graph_model = small_net(), small_net()
    steps = []
    for model, cls, kw in ((eager_model, TrainStep, {}), (graph_model, GraphedTrainStep, {"batch_size": 32})):
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        steps.append(cls(model, opt, CPU, torch.float16, False, None, LossScaler(CPU), **kw))
    eager, graphed = steps
    for i, (x, y) in enumerate(batches[:6]):
        poisoned = x.clone()
        if i in (2, 4):
            poisoned[0, 0, 0, 0] = float("inf")  # an inf input: inf loss and gradients
        eager(None, (poisoned, y))
        graph_model.train()
        graphed._update(poisoned, y)
    assert graphed.scaler.state_dict() == eager.scaler.state_dict()
    assert eager.scaler.skipped_steps == 2
    for a, b in zip(eager_model.parameters(), graph_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # SGD's add(alpha=) vs add(mul): last-bit rounding


def test_resume_with_the_scaler_state_continues_exactly(batches: list, tmp_path: Path) -> None:
    def build() -> tuple[nn.Module, torch.optim.Optimizer, Engine]:
        model = small_net()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, optimizer, create_trainer(model, optimizer, CPU, torch.float16)

    model, optimizer, trainer = build()
    poison_grad(model, trainer, {2})
    objects = {"model": model, "optimizer": optimizer, "grad_scaler": trainer.grad_scaler}
    checkpoint = Checkpoint(objects, DiskSaver(tmp_path, require_empty=False))
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=3), checkpoint)
    trainer.run(batches[:8], max_epochs=1)
    assert trainer.grad_scaler.skipped_steps == 1

    resumed_model, resumed_opt, resumed = build()
    fresh_scaler = resumed.grad_scaler.state_dict()
    saved = torch.load(tmp_path / checkpoint.last_checkpoint, weights_only=True)  # plain numbers only
    assert saved["grad_scaler"]["scale"] == 32768.0 and saved["grad_scaler"]["skipped_steps"] == 1
    to_load = {"model": resumed_model, "optimizer": resumed_opt, "grad_scaler": resumed.grad_scaler}
    Checkpoint.load_objects(to_load, saved)
    assert resumed.grad_scaler.state_dict() != fresh_scaler
    resumed.run(batches[3:8], max_epochs=1)

    assert resumed.grad_scaler.state_dict() == trainer.grad_scaler.state_dict()
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_fp32_training_on_cpu_is_bitwise_repeatable(batches: list) -> None:
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Net().to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        create_trainer(model, optimizer, CPU, None, channels_last=True).run(batches[:3], max_epochs=1)
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
