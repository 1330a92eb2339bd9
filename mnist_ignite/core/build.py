"""Wiring one run: data, model, optimizer, engines, the epoch record, the core's services, plugins.

:func:`build_run` is the one place a run is built: training (:mod:`mnist_ignite.core.launch`),
the notebook ``Model``, the lr finder and every sweep trial call it. Read top to bottom:
the model goes to its device and memory layout, SGD and the two engines are made, the
evaluation after each epoch publishes ``trainer.state.record``, the checkpoint's own entries are
registered, the plugins attach in order (each owning the handlers it registers), and
``RunEvents.READY`` fires (a checkpoint is restored there), so the returned run is ready for
``trainer.run``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Events

from mnist_ignite.config.settings import Config
from mnist_ignite.core.checkpoint import PluginStates, RunSettings
from mnist_ignite.core.data import (
    TensorEvalLoader,
    TensorTrainLoader,
    get_test_transforms,
    get_train_transforms,
    load_mnist,
    make_torchvision_loader,
    read_mnist,
)
from mnist_ignite.core.device import channels_last_refusal, choose_precision
from mnist_ignite.core.engines import create_evaluator, create_trainer
from mnist_ignite.core.history import History, attach_epoch_record
from mnist_ignite.core.optimizer import build_optimizer, graphable
from mnist_ignite.core.target import TimeToAccuracy
from mnist_ignite.errors import ConfigError, DataError
from mnist_ignite.log import note, warn
from mnist_ignite.models.registry import build_model
from mnist_ignite.plugins.api import RunContext
from mnist_ignite.plugins.events import RunEvents
from mnist_ignite.plugins.guard import attach_plugin, named_failures

__all__ = ["build_data", "build_run"]


def build_data(config: Config, device: torch.device, rank: int = 0, world: int = 1) -> tuple[Any, Any]:
    """Training and evaluation iterables for the configured pipeline, sharded by rank."""
    tv = config.pipeline == "torchvision"
    if tv:  # the seed's PIL path: torchvision datasets with transforms
        train_transforms = get_train_transforms() if config.augment else get_test_transforms()
        train_set = load_mnist(config.data_dir, True, train_transforms, config.download)
        test_set = load_mnist(config.data_dir, False, get_test_transforms(), config.download)
    else:  # idx files straight into tensors: no torchvision import, no dataset objects
        train_set = read_mnist(config.data_dir, True, config.download)
        test_set = read_mnist(config.data_dir, False, config.download)
    for name, dataset in (("training", train_set), ("test", test_set)):  # empty splits: check_mnist_files
        bad = ((dataset.targets < 0) | (dataset.targets > 9)).nonzero().flatten()
        if len(bad):  # nll_loss would fail deep inside a step, or silently count as wrong on a GPU
            i = int(bad[0])
            raise DataError(
                f"MNIST {name} label #{i} is {int(dataset.targets[i])}, not a digit 0-9 "
                f"({len(bad)} such label(s)): the labels file under {config.data_dir} is damaged"
            )
    if tv:
        if world > 1:
            raise ConfigError("--nproc-per-node > 1 runs on --pipeline tensor (each rank takes its shard)")
        return (
            make_torchvision_loader(
                train_set, config.batch_size, True, config.num_workers, config.seed, config.max_train_samples
            ),
            make_torchvision_loader(
                test_set, config.eval_batch_size, False, config.num_workers, config.seed, config.max_eval_samples
            ),
        )
    n_train = min(config.max_train_samples or len(train_set), len(train_set))
    n_eval = min(config.max_eval_samples or len(test_set), len(test_set))
    per_rank_batch = max(1, config.batch_size // world)
    if per_rank_batch * world > n_train:  # one short batch would be the whole epoch: say so, train on all of it
        per_rank_batch = max(1, n_train // world)
        if rank == 0:
            warn(f"--batch-size {config.batch_size} is more than the {n_train} training images: batches of {n_train}")
    if config.overfit_batches:  # the same first N batches to train and to evaluate on, not augmented
        n = min(config.overfit_batches * config.batch_size, n_train)
        images, targets = train_set.data[:n], train_set.targets[:n]
        return (
            TensorTrainLoader(images, targets, per_rank_batch, config.seed, device, (rank, world), augment=False),
            TensorEvalLoader(images[rank::world], targets[rank::world], config.eval_batch_size, device),
        )
    train = TensorTrainLoader(
        train_set.data[:n_train],
        train_set.targets[:n_train],
        per_rank_batch,
        config.seed,
        device,
        shard=(rank, world),
        augment=config.augment,
    )
    evaluation = TensorEvalLoader(
        test_set.data[:n_eval][rank::world], test_set.targets[:n_eval][rank::world], config.eval_batch_size, device
    )
    return train, evaluation


def build_run(
    config: Config,
    device: torch.device,
    train_data: Any,
    eval_data: Any,
    *,
    net: torch.nn.Module | None = None,
    plugins: Sequence[Any] = (),
    output_dir: Path | None = None,
    is_main: bool = True,
    world: int = 1,
) -> RunContext:
    """Wire one run (see the module docstring); returns its :class:`RunContext`, ready for ``trainer.run``.

    Args:
        config: the run's resolved settings.
        device: where it trains.
        train_data: training batches (a :class:`TensorTrainLoader` or any iterable with ``len()``).
        eval_data: test batches.
        net: the network (default: ``config.model`` built afresh).
        plugins: plugin objects, attached in this order.
        output_dir: the run folder (default ``config.output_dir``).
        is_main: whether this is the main process (rank 0).
        world: the number of processes.
    """
    precision = choose_precision(config.precision, device)
    channels_last = config.channels_last and device.type != "mps"
    net = (build_model(config.model, config.model_args) if net is None else net).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        refusal = channels_last_refusal(net, device)
        if refusal is not None:  # e.g. x.view(B, -1) after a convolution: NCHW, as the model was written
            channels_last = False  # the probe left the model in NCHW
            if is_main:
                note(f"{type(net).__name__} does not take channels_last input ({refusal}): training in NCHW")
    model = idist.auto_model(net, sync_bn=False) if world > 1 else net
    optimizer = build_optimizer(config, model.parameters())
    if world > 1:
        optimizer = idist.auto_optim(optimizer)
    forward = torch.compile(model) if config.compile else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    graphs = (
        config.cuda_graphs
        and device.type == "cuda"
        and world == 1
        and isinstance(train_data, TensorTrainLoader)
        and graphable(config)  # the graph's own SGD kernels: plain SGD, one batch per update
    )
    trainer = create_trainer(
        model,
        optimizer,
        device,
        precision.dtype,
        channels_last,
        forward,
        cuda_graph_batch=train_data.batch_size if graphs else None,
        grad_clip=config.grad_clip,
        accumulate=config.accumulate,
    )
    evaluator = create_evaluator(model, device, precision.dtype, channels_last)
    for engine in (trainer, evaluator):  # failures are reported once, by the command line, in plain words
        engine.logger.setLevel(logging.CRITICAL)
    trainer.register_events(*RunEvents)
    history = History()
    ctx = RunContext(
        trainer=trainer,
        evaluator=evaluator,
        model=net,
        optimizer=optimizer,
        config=config,
        output_dir=Path(config.output_dir) if output_dir is None else output_dir,
        is_main_process=is_main,
        device=device,
        precision=precision,
        train_data=train_data,
        eval_data=eval_data,
        epoch_length=len(train_data),
        history=history,
    )
    ctx.checkpoint_objects.update(
        settings=RunSettings(config),
        plugins=PluginStates(ctx.plugins),  # the live list: every plugin, whatever its attach order
        trainer=trainer,
        train_metrics=trainer.train_metrics,
        history=history,
    )
    scaler = getattr(trainer, "grad_scaler", None)
    if scaler is not None:
        ctx.checkpoint_objects["grad_scaler"] = scaler
    attach_epoch_record(ctx)  # before any plugin: every plugin's EPOCH_COMPLETED handler sees the row
    if config.target_acc is not None:
        ctx.target = TimeToAccuracy(config.target_acc)
        ctx.target.attach(ctx)
    for plugin in plugins:
        attach_plugin(plugin, ctx)
    # after every plugin's EPOCH_COMPLETED handler: the epoch is complete, checkpoints save now
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.fire_event(RunEvents.EPOCH_END))
    with named_failures():  # READY's handlers are plugins' (the checkpoint is restored there)
        trainer.fire_event(RunEvents.READY)
    return ctx
