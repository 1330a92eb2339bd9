"""The run's optimizer from its settings; optimizer, weight decay, clipping, accumulation and augmentation
are run-defining and resume exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mnist_ignite.config.settings import RUN_DEFINING, Config
from mnist_ignite.core.optimizer import build_optimizer, graphable
from mnist_ignite.testing import run_plugin


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("adadelta", torch.optim.Adadelta),
    ],
)
def test_each_optimizer_with_the_runs_lr_and_weight_decay(name: str, cls: type) -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = build_optimizer(Config(optimizer=name, lr=0.05, weight_decay=1e-4), params)
    assert type(opt) is cls
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[0]["weight_decay"] == 1e-4
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9  # the seed's


def test_only_plain_sgd_replays_as_a_cuda_graph() -> None:
    assert graphable(Config())
    for changed in ({"optimizer": "adam"}, {"weight_decay": 1e-4}, {"grad_clip": 1.0}, {"accumulate": 2}):
        assert not graphable(Config(**changed)), changed


def test_the_switches_are_run_defining() -> None:
    assert {"optimizer", "weight_decay", "grad_clip", "accumulate", "augment"} <= set(RUN_DEFINING)


def test_accumulate_updates_once_every_n_batches_and_at_an_epochs_end() -> None:
    steps: list[int] = []

    def count(ctx):
        real = ctx.optimizer.step

        def step(*args, **kwargs):
            steps.append(ctx.trainer.state.iteration)
            return real(*args, **kwargs)

        ctx.optimizer.step = step

    run_plugin(count, train=320, accumulate=2)  # 5 batches of 64
    assert steps == [2, 4, 5]


def test_grad_clip_bounds_the_update() -> None:
    norms: list[float] = []

    def watch(ctx):
        from ignite.engine import Events

        @ctx.trainer.on(Events.ITERATION_COMPLETED)
        def norm(_):
            grads = [p.grad.norm() for p in ctx.model.parameters() if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack(grads))))

    run_plugin(watch, train=256, grad_clip=0.01, lr=0.05)
    assert norms and max(norms) <= 0.01 * 1.0001


@pytest.mark.parametrize("settings", [{"optimizer": "adam", "lr": 0.003, "weight_decay": 1e-3, "grad_clip": 1.0}])
def test_a_resumed_run_continues_the_same_optimizer_exactly(tmp_path: Path, settings: dict) -> None:
    """Two epochs at once, or one and a resume: the same weights (Adam's moments ride in the checkpoint)."""
    whole = run_plugin(handlers=["checkpoint"], epochs=2, output_dir=tmp_path / "whole", **settings)
    run_plugin(handlers=["checkpoint"], epochs=1, output_dir=tmp_path / "half", **settings)
    resumed = run_plugin(handlers=["checkpoint"], epochs=2, output_dir=tmp_path / "half", resume="auto", **settings)
    assert resumed.outcome.results["resumed_at_epoch"] == 1
    for a, b in zip(whole.ctx.model.state_dict().values(), resumed.ctx.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert type(resumed.ctx.optimizer) is torch.optim.Adam


def test_resuming_with_another_optimizer_is_refused(tmp_path: Path) -> None:
    from mnist_ignite.errors import MnistIgniteError

    run_plugin(handlers=["checkpoint"], epochs=1, output_dir=tmp_path / "r", optimizer="adam")
    with pytest.raises(MnistIgniteError, match="optimizer"):
        run_plugin(handlers=["checkpoint"], epochs=2, output_dir=tmp_path / "r", resume="auto", optimizer="sgd")


def test_no_augment_trains_on_the_images_as_they_are() -> None:
    seen: list[torch.Tensor] = []

    def grab(ctx):
        from ignite.engine import Events

        ctx.trainer.add_event_handler(Events.ITERATION_STARTED(once=1), lambda e: seen.append(e.state.batch[0].clone()))

    run_plugin(grab, train=128, augment=False, seed=3)
    run_plugin(grab, train=128, augment=False, seed=3)
    run_plugin(grab, train=128, augment=True, seed=3)
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])
    assert dataclasses.fields(Config)  # Config stays a dataclass of settings
