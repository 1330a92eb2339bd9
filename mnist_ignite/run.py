"""``train(config) -> history``: wires data, model, engines and plugins, then runs the trainer.

Read top to bottom, a run is: seed everything; load MNIST into the chosen pipeline; build the
Net, SGD and the two engines; evaluate at the end of every training epoch and put the epoch's
row in ``trainer.state.record``; attach the plugins (they may restore a checkpoint); run;
save ``final_model.pt``. With ``nproc_per_node > 1`` the same function runs in every process
under ``ignite.distributed.Parallel``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.utils import manual_seed

from mnist_ignite.config import Config, ConfigError
from mnist_ignite.data import (
    TensorEvalLoader,
    TensorTrainLoader,
    get_test_transforms,
    get_train_transforms,
    load_mnist,
    make_torchvision_loader,
)
from mnist_ignite.engine import create_evaluator, create_trainer, resolve_precision, select_device
from mnist_ignite.files import prepare_output_dir, save_json, save_torch
from mnist_ignite.history import History
from mnist_ignite.model import Net
from mnist_ignite.plugins import RunContext, build_plugin, close_plugins, guarded_attach, load_plugin_class

__all__ = ["Interrupted", "build_plugins", "resolve_output_dir", "train", "validate"]

PIPELINES = ("tensor", "torchvision")


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; the run stopped after the current iteration and saved its state."""

    def __init__(self, signum: int, output_dir: Path) -> None:
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: stopped after the current iteration; state saved in {output_dir}")
        self.exit_code = 128 + signum
        self.output_dir = output_dir


def validate(config: Config) -> None:
    """Reject impossible settings before anything heavy happens."""
    checks = [
        (config.epochs >= 1, f"--epochs must be >= 1 (got {config.epochs})"),
        (config.batch_size >= 1, f"--batch-size must be >= 1 (got {config.batch_size})"),
        (config.eval_batch_size >= 1, f"--eval-batch-size must be >= 1 (got {config.eval_batch_size})"),
        (config.lr > 0 and math.isfinite(config.lr), f"--lr must be a positive number (got {config.lr})"),
        (config.momentum >= 0, f"--momentum must be >= 0 (got {config.momentum})"),
        (config.num_workers >= 0, f"--num-workers must be >= 0 (got {config.num_workers})"),
        (config.max_train_samples is None or config.max_train_samples >= 1, "--max-train-samples must be >= 1"),
        (config.max_eval_samples is None or config.max_eval_samples >= 1, "--max-eval-samples must be >= 1"),
        (config.pipeline in PIPELINES, f"--pipeline must be one of {', '.join(PIPELINES)}"),
        (config.nproc_per_node >= 1, "--nproc-per-node must be >= 1"),
        (config.nnodes >= 1 and 0 <= config.node_rank < config.nnodes, "--node-rank must be in [0, --nnodes)"),
        (
            config.batch_size >= config.nproc_per_node * config.nnodes,
            "--batch-size is the global batch: it must be >= the number of processes",
        ),
        (config.backend in (None, "gloo", "nccl"), f"--backend must be gloo or nccl (got {config.backend})"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    try:
        select_device(config.device)
        resolve_precision(config.precision, torch.device("cpu"))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def resolve_output_dir(config: Config) -> Path:
    """``config.output_dir`` or ``runs/<timestamp>``."""
    if config.output_dir:
        return Path(config.output_dir)
    if config.resume == "auto":
        raise ConfigError("--resume auto needs --output-dir (the run folder to continue)")
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def build_plugins(config: Config, extra: Sequence[Any] = ()) -> list[Any]:
    """Load and instantiate ``config.handlers`` (with ``config.options``) plus ready-made ``extra`` ones."""
    plugins = []
    for spec in config.handlers:
        cls = load_plugin_class(spec)
        values = {o.dest: config.options[o.dest] for o in getattr(cls, "options", ()) if o.dest in config.options}
        plugins.append(build_plugin(spec, cls, values))
    return plugins + list(extra)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build_data(config: Config, device: torch.device, rank: int, world: int) -> tuple[Any, Any]:
    """Training and evaluation iterables for the configured pipeline, sharded by rank."""
    tv = config.pipeline == "torchvision"
    train_set = load_mnist(config.data_dir, True, get_train_transforms() if tv else None, config.download)
    test_set = load_mnist(config.data_dir, False, get_test_transforms() if tv else None, config.download)
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
    train = TensorTrainLoader(
        train_set.data[:n_train], train_set.targets[:n_train], per_rank_batch, config.seed, device, shard=(rank, world)
    )
    evaluation = TensorEvalLoader(
        test_set.data[:n_eval][rank::world], test_set.targets[:n_eval][rank::world], config.eval_batch_size, device
    )
    return train, evaluation


class _ResumableData:
    """Hands the trainer the batches that follow ``trainer.state.iteration``.

    Ignite calls ``iter()`` at the start of each epoch and once when a run resumes; asking the
    loader for the batches from the current iteration makes mid-epoch resume exact.
    """

    def __init__(self, loader: TensorTrainLoader, trainer: Engine) -> None:
        self.loader, self.trainer = loader, trainer

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        return self.loader.batches_from(self.trainer.state.iteration)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    return (
        f"epoch {row['epoch']:>3}/{epochs}  lr {row['lr']:.5f}  "
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:6.2f}%  "
        f"test loss {row['test_loss']:.4f} acc {row['test_acc']:6.2f}%  "
        f"train {row['train_seconds']:.1f}s ({row['train_images_per_second']:,.0f} img/s)  "
        f"eval {row['eval_seconds']:.1f}s"
    )


def _attach_evaluation(ctx: RunContext, history: History, quiet: bool) -> None:
    """Evaluate after each training epoch and publish the epoch's row as ``trainer.state.record``."""
    trainer, evaluator, device = ctx.trainer, ctx.evaluator, ctx.device
    clock = {"start": 0.0, "images": 0}

    @trainer.on(Events.EPOCH_STARTED)
    def _start(_: Engine) -> None:
        clock["start"], clock["images"] = time.perf_counter(), 0

    @trainer.on(Events.ITERATION_COMPLETED)
    def _count(engine: Engine) -> None:
        clock["images"] += int(engine.state.output["y"].shape[0])  # shape only: no device sync

    @trainer.on(Events.EPOCH_COMPLETED)
    def _evaluate(engine: Engine) -> None:
        _sync(device)
        train_seconds = time.perf_counter() - clock["start"]
        t0 = time.perf_counter()
        metrics = evaluator.run(ctx.eval_data).metrics
        eval_seconds = time.perf_counter() - t0
        images = clock["images"] * idist.get_world_size()
        row = {
            "epoch": engine.state.epoch,
            "lr": float(ctx.optimizer.param_groups[0]["lr"]),
            "train_loss": float(engine.state.metrics["train_loss"]),
            "train_acc": 100.0 * float(engine.state.metrics["train_acc"]),
            "test_loss": float(metrics["loss"]),
            "test_acc": 100.0 * float(metrics["accuracy"]),
            "train_seconds": round(train_seconds, 4),
            "eval_seconds": round(eval_seconds, 4),
            "train_images_per_second": round(images / max(train_seconds, 1e-9), 1),
        }
        history.append(row)
        engine.state.record = row
        if not quiet:
            print(_epoch_line(row, ctx.config.epochs), flush=True)


class _SignalStop:
    """First SIGINT/SIGTERM: stop at the next safe point, let plugins save (Ignite TERMINATE), then raise.

    A safe point is the end of an iteration inside an epoch, or the end of the epoch's own handlers
    (evaluation, history, checkpoint): stopping after an epoch's last iteration but before its
    EPOCH_COMPLETED would leave a checkpoint that counts the epoch as done without its row.
    """

    def __init__(self, trainer: Engine) -> None:
        self.trainer, self.signum = trainer, 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalStop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self.previous[sig] = signal.signal(sig, self._handle)
        # registered after every plugin, so they all see the event before the stop
        self.trainer.add_event_handler(Events.ITERATION_COMPLETED | Events.EPOCH_COMPLETED, self._stop_here)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def _stop_here(self, engine: Engine) -> None:
        epoch_end = engine.last_event_name == Events.EPOCH_COMPLETED
        if self.signum and (epoch_end or engine.state.iteration % engine.state.epoch_length):
            engine.terminate()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _worker(local_rank: int, config: Config, extra_plugins: Sequence[Any], out: dict[str, Any]) -> None:
    rank, world = idist.get_rank(), idist.get_world_size()
    is_main = rank == 0
    # with several processes on GPUs, each takes cuda:<local rank>
    device = select_device(config.device) if world == 1 or config.device == "cpu" else idist.device()
    manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    if is_main:
        save_json(output_dir / "config.json", config.to_dict())

    train_data, eval_data = _build_data(config, device, rank, world)
    dtype = resolve_precision(config.precision, device)
    channels_last = config.channels_last and device.type != "mps"
    net = Net().to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = idist.auto_model(net, sync_bn=False) if world > 1 else net
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    if world > 1:
        optimizer = idist.auto_optim(optimizer)
    forward = torch.compile(model) if config.compile else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    graphs = config.cuda_graphs and device.type == "cuda" and world == 1 and config.pipeline == "tensor"
    trainer = create_trainer(
        model,
        optimizer,
        device,
        dtype,
        channels_last,
        forward,
        cuda_graph_batch=train_data.batch_size if graphs else None,
    )
    evaluator = create_evaluator(model, device, dtype, channels_last)
    for engine in (trainer, evaluator):  # failures are reported once, by the CLI, in plain words
        engine.logger.setLevel(logging.CRITICAL)
    data = _ResumableData(train_data, trainer) if isinstance(train_data, TensorTrainLoader) else train_data

    history = History()
    ctx = RunContext(
        trainer=trainer,
        evaluator=evaluator,
        model=net,
        optimizer=optimizer,
        config=config,
        output_dir=output_dir,
        is_main_process=is_main,
        device=device,
        train_data=train_data,
        eval_data=eval_data,
        epoch_length=len(train_data),
        history=history,
        checkpoint_objects={"trainer": trainer, "train_metrics": trainer.train_metrics, "history": history},
    )
    _attach_evaluation(ctx, history, quiet=not is_main)
    plugins = build_plugins(config, extra_plugins)
    for plugin in sorted(plugins, key=lambda p: getattr(p, "order", 50)):
        with guarded_attach(plugin.name, trainer, evaluator):
            plugin.attach(ctx)
        ctx.plugins.append(plugin)

    if trainer.state.epoch >= config.epochs and trainer.state.iteration > 0:
        if is_main:
            print(
                f"nothing to do: the checkpoint already holds {trainer.state.epoch} epochs (--epochs {config.epochs})"
            )
    else:
        try:
            with _SignalStop(trainer) as stop:
                trainer.run(data, max_epochs=config.epochs)
        finally:
            close_plugins(ctx.plugins)
        if stop.signum:
            raise Interrupted(stop.signum, output_dir)
        state = trainer.state
        if is_main and (state.epoch < config.epochs or state.iteration % state.epoch_length):
            print(
                f"stopped early by a handler at epoch {state.epoch}, iteration {state.iteration}; "
                f"--resume auto continues it",
                flush=True,
            )
    if is_main:
        save_torch(output_dir / "final_model.pt", net.state_dict())
    out["history"] = history.rows


def train(config: Config, plugins: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run ``config`` and return the per-epoch rows (also in OUTPUT/metrics.json with the history plugin).

    Args:
        config: the settings; ``config.output_dir`` is filled in when empty.
        plugins: ready-made plugin objects to attach besides ``config.handlers``.
    """
    validate(config)
    build_plugins(config)  # fail on a bad plugin before any data or process is touched (each worker rebuilds)
    config.output_dir = str(prepare_output_dir(resolve_output_dir(config)))
    out: dict[str, Any] = {}
    torchrun = _launched_by_torchrun()
    if config.nproc_per_node > 1 or config.nnodes > 1 or torchrun:
        backend = config.backend or ("nccl" if select_device(config.device).type == "cuda" else "gloo")
        spawn: dict[str, Any] = {}
        if not torchrun:  # idist.Parallel spawns the processes itself
            spawn = {"nproc_per_node": config.nproc_per_node, "nnodes": config.nnodes, "node_rank": config.node_rank}
            if config.nnodes > 1:
                spawn |= {"master_addr": config.master_addr, "master_port": config.master_port}
        with idist.Parallel(backend=backend, **spawn) as parallel:
            parallel.run(_worker, config, plugins, out)
    else:
        _worker(0, config, plugins, out)
    if "history" not in out:  # spawned workers return nothing: read what rank 0 wrote
        return _read_history(Path(config.output_dir))
    return out["history"]


def _launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ)


def _read_history(output_dir: Path) -> list[dict[str, Any]]:
    path = output_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else []
