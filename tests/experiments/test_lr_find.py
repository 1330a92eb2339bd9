"""The lr range test on real MNIST: a sane suggestion for the seed Net, everything restored afterwards."""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Events

from mnist_ignite.config.settings import Config
from mnist_ignite.core.build import build_data, build_run
from mnist_ignite.core.device import select_device
from mnist_ignite.errors import LRFindError
from mnist_ignite.experiments.lr_find import find_lr, lr_range_test, valley
from mnist_ignite.models.registry import build_model

from conftest import ROOT

SMALLNET = f"{ROOT / 'examples' / 'custom_model.py'}:SmallNet"


def _config(data_dir: str, **values: Any) -> Config:
    return Config(data_dir=data_dir, download=False, device="cpu", **values)


def _snapshot(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {"model": copy.deepcopy(model.state_dict()), "optimizer": copy.deepcopy(optimizer.state_dict())}


def _same(a: Any, b: Any) -> bool:
    """Equal nested dicts/lists of tensors and numbers (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_the_seed_net_suggestion_is_between_1e_3_and_1e_1(data_dir: str) -> None:
    """Acceptance: the seed Net, batch 64, all 60,000 training images (200 iterations, no epoch end)."""
    result = find_lr(_config(data_dir))
    assert 1e-3 <= result.suggestion <= 1e-1, result.suggestion
    assert result.diverged  # the search ran into the lrs where SGD breaks down
    assert result.suggestion < result.min_loss_lr  # the steepest fall comes before the lowest loss
    assert result.losses[0] == pytest.approx(math.log(10), abs=0.05)  # an untrained net: chance level
    # and it learned something during the search (by 0.24 nats in fp32 on an AVX2 CPU, more under bf16)
    assert min(result.losses) < result.losses[0] - 0.15


def test_model_optimizer_and_trainer_come_back_untouched(data_dir: str) -> None:
    """A run that has trained (momentum buffers, BatchNorm statistics) is exactly as before the search."""
    config = _config(data_dir, model=SMALLNET, batch_size=32, max_train_samples=256, max_eval_samples=64)
    device = select_device("cpu")
    torch.manual_seed(0)
    train_data, eval_data = build_data(config, device)
    ctx = build_run(config, device, train_data, eval_data)
    for x, y in itertools.islice(train_data, 3):  # a few SGD steps: momentum buffers and BatchNorm statistics
        ctx.optimizer.zero_grad()
        F.cross_entropy(ctx.model(x), y).backward()
        ctx.optimizer.step()
    before = _snapshot(ctx.model, ctx.optimizer)
    assert len(before["optimizer"]["state"]) == len(list(ctx.model.parameters()))
    seen: list[float] = []  # the weights really move during the search (else this test proves nothing)
    probe = ctx.trainer.add_event_handler(
        Events.ITERATION_COMPLETED, lambda _: seen.append(float(ctx.model.classifier.weight.detach().sum()))
    )

    result = lr_range_test(ctx.trainer, ctx.model, ctx.optimizer, train_data, start_lr=1e-4, end_lr=10.0, num_iter=20)

    probe.remove()
    assert len(set(seen)) > 10
    assert _same(before, _snapshot(ctx.model, ctx.optimizer))
    assert ctx.optimizer.param_groups[0]["lr"] == config.lr
    assert (ctx.trainer.state.iteration, ctx.trainer.state.epoch) == (0, 0)
    assert len(result.lrs) == len(result.losses) > 10
    assert all(a < b for a, b in zip(result.lrs, result.lrs[1:], strict=False))  # exponential schedule, rising
    assert result.lrs[0] < result.suggestion < result.lrs[-1]
    # and training simply starts from there
    ctx.trainer.run(train_data, max_epochs=1)
    assert ctx.trainer.state.iteration == len(train_data)
    with pytest.raises(ValueError, match="has not run yet"):
        lr_range_test(ctx.trainer, ctx.model, ctx.optimizer, train_data)


def test_find_lr_gives_back_the_net_it_was_handed(data_dir: str) -> None:
    config = _config(data_dir, model=SMALLNET, batch_size=32, max_train_samples=128)
    net = build_model(SMALLNET)
    before = copy.deepcopy(net.state_dict())
    result = find_lr(config, net=net, num_iter=12, start_lr=1e-3, end_lr=10.0)
    assert len(result.lrs) > 3  # 4 batches per epoch: the search went through several epochs
    assert _same(before, net.state_dict())


def test_a_curve_that_never_falls_is_an_error_and_still_restores(data_dir: str) -> None:
    """From lr 1000 the seed Net blows up at once (NaN losses count as divergence): no suggestion."""
    config = _config(data_dir, max_train_samples=256)
    net = build_model("seed")
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(LRFindError, match="the loss did not fall between lr 1000 and the point it diverged"):
        find_lr(config, net=net, num_iter=20, start_lr=1e3, end_lr=1e6)
    assert _same(before, net.state_dict())


def test_no_file_is_written(data_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    find_lr(_config(data_dir, max_train_samples=128, batch_size=32, model=SMALLNET), num_iter=5)
    assert list(tmp_path.iterdir()) == []


class _NaNAfter(torch.nn.Module):
    """SmallNet whose output turns NaN from training step ``after + 1`` on (a blow-up without warning)."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.net, self.after, self.steps = build_model(SMALLNET), after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += int(self.training)
        out = self.net(x)
        return out * float("nan") if self.steps > self.after else out


def test_a_nan_loss_ends_the_search_as_divergence(data_dir: str) -> None:
    """NaN never compares greater than anything: without care the finder would never stop, nor suggest."""
    config = _config(data_dir, batch_size=32, max_train_samples=1024)
    net = _NaNAfter(after=30)
    result = find_lr(config, net=net, num_iter=60, start_lr=1e-2, end_lr=3.0)
    assert net.steps == 31  # stopped at the first NaN step, not 30 steps of NaN later
    assert result.diverged
    assert len(result.lrs) == len(result.losses) == 30  # the NaN step and everything after it left out
    assert all(math.isfinite(loss) for loss in result.losses)
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]


def test_num_iter_iterations_from_start_lr_to_end_lr(data_dir: str) -> None:
    """Each loss is paired with the lr that made it (Ignite records the next step's): N points, ends included."""
    config = _config(data_dir, max_train_samples=256, batch_size=16)
    result = find_lr(config, start_lr=1e-4, end_lr=1e-2, num_iter=8)
    assert not result.diverged and len(result.lrs) == 8
    assert result.lrs == pytest.approx([1e-4 * 100 ** (k / 7) for k in range(8)], rel=1e-9)
    assert result.lrs[0] == pytest.approx(1e-4) and result.lrs[-1] == pytest.approx(1e-2)
    assert result.suggestion in result.lrs
    with pytest.raises(ValueError, match="num_iter >= 3"):
        find_lr(config, num_iter=2)


def test_valley_is_halfway_along_the_longest_fall() -> None:
    noisy = [3.0, 2.9, 3.1, 2.5, 2.6, 2.0, 1.5, 1.6, 1.0, 0.8, 2.0, 9.0]  # falls with bumps, then diverges
    at, length = valley(noisy)
    assert length == 7 and at == 6  # 3.0 2.9 2.6 2.0 1.5 1.0 0.8, ending at index 9: index 6 is halfway from 9 - 7 + 1
    assert valley([1.0, 2.0, 3.0]) == (0, 1)  # never falls: a run of one point
