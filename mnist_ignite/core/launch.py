"""``train(config) -> history``: wires data, model, engines and plugins, then runs the trainer.

Read top to bottom, a run is: seed everything; load MNIST into the chosen pipeline; build the
Net, SGD and the two engines; evaluate at the end of every training epoch and put the epoch's
row in ``trainer.state.record``; attach the plugins (they may restore a checkpoint); run;
save ``final_model.pt``. With ``nproc_per_node > 1`` the same function runs in every process
under ``ignite.distributed.Parallel``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.engine import Engine, Events
from ignite.utils import manual_seed

from mnist_ignite.config.settings import Config, check_settings
from mnist_ignite.core.data import (
    TensorEvalLoader,
    TensorTrainLoader,
    get_test_transforms,
    get_train_transforms,
    load_mnist,
    make_torchvision_loader,
    read_mnist,
)
from mnist_ignite.core.device import resolve_precision, select_device
from mnist_ignite.core.engines import create_evaluator, create_trainer, finite_weights
from mnist_ignite.core.files import save_json, save_torch
from mnist_ignite.core.history import History, make_record
from mnist_ignite.core.results import StartupClock, run_clock_base, summarize, write_results
from mnist_ignite.core.rundir import RunDir
from mnist_ignite.errors import CheckpointLoadError, ConfigError, DataError, Interrupted, StopTraining
from mnist_ignite.models.registry import build_model, check_model
from mnist_ignite.plugins.api import RunContext
from mnist_ignite.plugins.events import RunEvents
from mnist_ignite.plugins.guard import attach_plugin
from mnist_ignite.plugins.loading import build_plugin, close_plugins, load_plugin_class
from mnist_ignite.plugins.states import PluginStates
from mnist_ignite.reporting.console import footer, header

__all__ = ["Interrupted", "RunSettings", "build_plugins", "build_run", "fit", "resolve_output_dir", "train", "validate"]

# what makes a run the run it is: a resume must keep these (RunSettings)
RESUME_DEFINING = (
    "model",
    "model_args",
    "max_train_samples",
    "max_eval_samples",
    "batch_size",
    "seed",
    "lr",
    "momentum",
    "pipeline",
    "precision",
)


def validate(config: Config) -> None:
    """Reject impossible settings before anything heavy happens (each rule is declared on ``Config``)."""
    check_settings(config)
    checks = [
        (config.nnodes >= 1 and 0 <= config.node_rank < config.nnodes, "--node-rank must be in [0, --nnodes)"),
        (
            config.batch_size >= config.nproc_per_node * config.nnodes,
            "--batch-size is the global batch: it must be >= the number of processes",
        ),
        (
            not config.resume or "checkpoint" in config.handlers,
            "--resume needs the checkpoint handler, which is disabled (--no-handler checkpoint)",
        ),
        (not (config.resume and config.overwrite), "--resume and --overwrite contradict each other: choose one"),
        (
            not (config.overfit_batches and config.pipeline == "torchvision"),
            "--overfit-batches runs on --pipeline tensor (it turns augmentation off there)",
        ),
        (
            not (config.fast_dev_run and (config.resume or config.repeat or config.seeds)),
            "--fast-dev-run is a smoke test in a temporary folder: not with --resume, --repeat or --seeds",
        ),
        (not (config.repeat and config.seeds), "--repeat and --seeds both choose the seeds: give one of them"),
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
    if tv:  # the seed's PIL path: torchvision datasets with transforms
        train_set = load_mnist(config.data_dir, True, get_train_transforms(), config.download)
        test_set = load_mnist(config.data_dir, False, get_test_transforms(), config.download)
    else:  # idx files straight into tensors: no torchvision import, no dataset objects
        train_set = read_mnist(config.data_dir, True, config.download)
        test_set = read_mnist(config.data_dir, False, config.download)
    for name, dataset in (("training", train_set), ("test", test_set)):
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
    if config.overfit_batches:  # the same first N batches to train and to evaluate on, not augmented
        n = min(config.overfit_batches * config.batch_size, n_train)
        images, targets = train_set.data[:n], train_set.targets[:n]
        return (
            TensorTrainLoader(images, targets, per_rank_batch, config.seed, device, (rank, world), augment=False),
            TensorEvalLoader(images[rank::world], targets[rank::world], config.eval_batch_size, device),
        )
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


def _attach_evaluation(ctx: RunContext, quiet: bool) -> None:
    """Evaluate after each training epoch and publish the epoch's row as ``trainer.state.record``.

    Registered before any plugin, so every plugin's ``EPOCH_COMPLETED`` handler sees the row. The
    epoch line is printed at ``RunEvents.EPOCH_END``, after every plugin (a progress bar has
    closed its line by then).
    """
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
        row = make_record(
            epoch=engine.state.epoch,
            lr=float(ctx.optimizer.param_groups[0]["lr"]),
            train_loss=float(engine.state.metrics["train_loss"]),
            train_acc=100.0 * float(engine.state.metrics["train_acc"]),
            test_loss=float(metrics["loss"]),
            test_acc=100.0 * float(metrics["accuracy"]),
            train_seconds=round(train_seconds, 4),
            eval_seconds=round(eval_seconds, 4),
            train_images_per_second=round(images / max(train_seconds, 1e-9), 1),
        )
        ctx.history.append(row)
        engine.state.record = row

    if not quiet:

        @trainer.on(RunEvents.EPOCH_END)
        def _print(engine: Engine) -> None:
            print(_epoch_line(engine.state.record, ctx.config.epochs), flush=True)

    if ctx.config.target_acc is not None:
        _attach_target(ctx, ctx.config.target_acc, quiet)


def _attach_target(ctx: RunContext, target: float, quiet: bool) -> None:
    """Time-to-accuracy: stop once test accuracy reaches ``target``; record the epoch and the seconds it took.

    Seconds count from this process's first training step to the end of that epoch's evaluation.
    The stop happens at ``RunEvents.EPOCH_END``, after the epoch is checkpointed.
    """
    trainer = ctx.trainer
    start: dict[str, float] = {}

    @trainer.on(Events.ITERATION_STARTED(once=1) | Events.STARTED)
    def _start(_: Engine) -> None:
        start.setdefault("t", time.perf_counter())

    @trainer.on(RunEvents.EPOCH_END)
    def _check(engine: Engine) -> None:
        record = engine.state.record
        if record["test_acc"] >= target and ctx.target_reached is None:
            ctx.target_reached = {
                "target_acc": target,
                "target_reached_epoch": record["epoch"],
                "target_reached_seconds": round(time.perf_counter() - start["t"], 3),
            }
            if not quiet:
                print(
                    f"target {target:g}% reached at epoch {record['epoch']} "
                    f"({ctx.target_reached['target_reached_seconds']:.1f} s of training and evaluation)",
                    flush=True,
                )
            engine.terminate()


class _SignalStop:
    """First SIGINT/SIGTERM: stop at the next safe point, let plugins save (Ignite TERMINATE), then raise.

    A safe point is the end of an iteration inside an epoch, or the end of the epoch's own handlers
    (evaluation, history, checkpoint): stopping after an epoch's last iteration but before its
    EPOCH_COMPLETED would leave a checkpoint that counts the epoch as done without its row. The two
    checks are separate handlers: ``last_event_name`` cannot tell them apart (Ignite's Checkpoint
    fires its own ``SAVED_CHECKPOINT`` event in between).
    """

    def __init__(self, trainer: Engine) -> None:
        self.trainer, self.signum = trainer, 0
        self.previous: dict[int, Any] = {}
        self.inside = Events.ITERATION_COMPLETED(event_filter=lambda e, i: i % e.state.epoch_length != 0)

    def __enter__(self) -> _SignalStop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self.previous[sig] = signal.signal(sig, self._handle)
        # registered after every plugin, so they all see the event before the stop
        self.trainer.add_event_handler(self.inside, self._stop_here)
        self.trainer.add_event_handler(RunEvents.EPOCH_END, self._stop_here)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signum:  # a second signal: stop now, without saving
            raise KeyboardInterrupt
        self.signum = signum

    def _stop_here(self, engine: Engine) -> None:
        if self.signum:
            engine.terminate()

    def __exit__(self, *exc: Any) -> None:
        self.trainer.remove_event_handler(self._stop_here, self.inside)
        self.trainer.remove_event_handler(self._stop_here, RunEvents.EPOCH_END)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class RunSettings:
    """The settings that define a run, saved in every checkpoint and compared on resume.

    Resuming with other data, batch size, seed, optimizer, pipeline or precision would not
    continue the same run: it is refused with the list of differences, unless ``--resume-force``.
    """

    def __init__(self, config: Config) -> None:
        self.config = config

    def state_dict(self) -> dict[str, Any]:
        return {key: getattr(self.config, key) for key in RESUME_DEFINING}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        changed = [f"{k}: {state.get(k)!r} -> {mine[k]!r}" for k in mine if state.get(k) != mine[k]]
        if changed and not self.config.resume_force:
            raise CheckpointLoadError(
                "the checkpoint's run was made with other settings (" + "; ".join(changed) + "). "
                "Resume with the same values, or --resume-force to continue anyway "
                "(--epochs, handlers and logging may change on resume)"
            )
        if changed:
            print(f"mnist-ignite: warning: resuming with changed settings: {'; '.join(changed)}", file=sys.stderr)


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
    quiet: bool = False,
) -> RunContext:
    """Wire one run: model, optimizer, engines, evaluation per epoch, history, plugins, checkpoint state.

    The one place a run is built: ``train`` (the CLI) and ``Model`` (the notebook API) both call it.
    Plugins attach in the given order; ``RunEvents.READY`` then fires (a checkpoint is restored
    there), so the returned run is ready for ``trainer.run``.
    """
    dtype = resolve_precision(config.precision, device)
    channels_last = config.channels_last and device.type != "mps"
    net = (build_model(config.model, config.model_args) if net is None else net).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    model = idist.auto_model(net, sync_bn=False) if world > 1 else net
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    if world > 1:
        optimizer = idist.auto_optim(optimizer)
    forward = torch.compile(model) if config.compile else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    graphs = config.cuda_graphs and device.type == "cuda" and world == 1 and isinstance(train_data, TensorTrainLoader)
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
    _attach_evaluation(ctx, quiet=quiet or not is_main)
    for plugin in plugins:
        attach_plugin(plugin, ctx)
    # after every plugin's EPOCH_COMPLETED handler: the epoch is complete, checkpoints save now
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.fire_event(RunEvents.EPOCH_END))
    trainer.fire_event(RunEvents.READY)
    return ctx


def fit(ctx: RunContext, data: Any, max_epochs: int) -> int:
    """Run the trainer up to ``max_epochs``, stopping cleanly on SIGINT/SIGTERM; returns the signal (0 if none)."""
    with _SignalStop(ctx.trainer) as stop:
        ctx.trainer.run(data, max_epochs=max_epochs)
    return stop.signum


def _worker(local_rank: int, config: Config, extra_plugins: Sequence[Any], out: dict[str, Any]) -> None:
    rank, world = idist.get_rank(), idist.get_world_size()
    is_main = rank == 0
    # with several processes on GPUs, each takes cuda:<local rank>
    device = select_device(config.device) if world == 1 or config.device == "cpu" else idist.device()
    manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    train_data, eval_data = _build_data(config, device, rank, world)
    plugins = build_plugins(config, extra_plugins)
    ctx = build_run(
        config, device, train_data, eval_data, plugins=plugins, output_dir=output_dir, is_main=is_main, world=world
    )
    if is_main:  # after a resume was accepted: the file records the settings this run really uses
        save_json(output_dir / "config.json", config.to_dict())
        print(header(ctx), flush=True)
    trainer = ctx.trainer
    clock = StartupClock(out.get("clock_base", 0.0) if world == 1 else 0.0)
    clock.attach(trainer)
    data = _ResumableData(train_data, trainer) if isinstance(train_data, TensorTrainLoader) else train_data
    resumed_at = trainer.state.epoch  # epochs the checkpoint already held (0 for a new run)
    try:
        if trainer.state.epoch >= config.epochs and trainer.state.iteration > 0:
            if is_main:
                print(
                    f"nothing to do: the checkpoint already holds {trainer.state.epoch} epochs "
                    f"(--epochs {config.epochs})"
                )
            signum = 0
        else:
            signum = fit(ctx, data, config.epochs)
    finally:
        out["started"] = trainer.state.iteration > 0
        close_plugins(ctx.plugins)
    if signum:
        raise Interrupted(signum, output_dir)
    state = trainer.state
    stopped_early = state.epoch < config.epochs or state.iteration % state.epoch_length
    if is_main and stopped_early and ctx.target_reached is None:
        print(
            f"stopped early by a handler at epoch {state.epoch}, iteration {state.iteration}; "
            f"--resume auto continues it",
            flush=True,
        )
    if not finite_weights(ctx.model):
        raise StopTraining("the model's weights are NaN/Inf: final_model.pt not written; lower --lr")
    if is_main:
        save_torch(output_dir / "final_model.pt", ctx.model.state_dict())
        results = summarize(ctx, clock.seconds, clock.elapsed(), resumed_at)
        write_results(ctx, results)
        print(footer(ctx, results), flush=True)
    out["history"] = ctx.history.rows


def train(config: Config, plugins: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Run ``config`` and return the per-epoch rows (also in OUTPUT/metrics.json with the history plugin).

    Args:
        config: the settings; ``config.output_dir`` is filled in when empty.
        plugins: ready-made plugin objects to attach besides ``config.handlers``.
    """
    validate(config)
    where, sep, attr = config.model.rpartition(":")
    if sep and where.endswith(".py") and Path(where).is_file():  # recorded absolute: evaluate/export run anywhere
        config.model = f"{Path(where).resolve()}:{attr}"
    if config.fast_dev_run:
        return _fast_dev_run(config, plugins)
    _adopt_resumed_model(config)
    # fail on a bad model or plugin before any data or process is touched (each worker rebuilds them)
    check_model(build_model(config.model, config.model_args), config.model, select_device(config.device))
    build_plugins(config)
    torchrun = _launched_by_torchrun()
    claim = not torchrun or int(os.environ.get("RANK", "0")) == 0
    rundir = RunDir(resolve_output_dir(config), resume=bool(config.resume), overwrite=config.overwrite)
    if claim:
        config.output_dir = str(rundir.claim())
    else:
        config.output_dir = str(rundir.path)
    out: dict[str, Any] = {"clock_base": run_clock_base()}
    try:
        if config.lr == "auto":
            _find_lr(config, announce=claim)
        if config.nproc_per_node > 1 or config.nnodes > 1 or torchrun:
            backend = config.backend or ("nccl" if select_device(config.device).type == "cuda" else "gloo")
            spawn: dict[str, Any] = {}
            if not torchrun:  # idist.Parallel spawns the processes itself
                spawn = {
                    "nproc_per_node": config.nproc_per_node,
                    "nnodes": config.nnodes,
                    "node_rank": config.node_rank,
                }
                if config.nnodes > 1:
                    spawn |= {"master_addr": config.master_addr, "master_port": config.master_port}
            with idist.Parallel(backend=backend, **spawn) as parallel:
                parallel.run(_worker, config, plugins, out)
        else:
            _worker(0, config, plugins, out)
    finally:
        if claim:
            started = out.get("started", "history" in out or (Path(config.output_dir) / "metrics.json").exists())
            rundir.release(started=started)
    if "history" not in out:  # spawned workers return nothing: read what rank 0 wrote
        return _read_history(Path(config.output_dir))
    return out["history"]


def _find_lr(config: Config, announce: bool) -> None:
    """``--lr auto``: the lr finder's suggestion becomes ``config.lr`` (config.json records the number).

    A resumed run keeps the lr its checkpoint was made with (read from its config.json).
    """
    recorded = Path(config.output_dir) / "config.json"
    if config.resume and recorded.is_file():
        config.lr = float(json.loads(recorded.read_text())["lr"])
        return
    from mnist_ignite.experiments.lr_find import find_lr
    from mnist_ignite.experiments.lr_find import write_results as write_lr_find

    if announce:
        print("--lr auto: running the learning-rate finder first ...", flush=True)
    result = find_lr(config)
    config.lr = float(result.suggestion)
    if announce:
        write_lr_find(result, config, Path(config.output_dir))
        print(f"--lr auto: using lr {config.lr:.3g} (curve in {Path(config.output_dir) / 'lr_find.png'})", flush=True)


def _fast_dev_run(config: Config, plugins: Sequence[Any]) -> list[dict[str, Any]]:
    """One training batch and one evaluation batch through every enabled handler, in a folder removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="mnist-ignite-fast-dev-run-"))
    trial = dataclasses.replace(
        config,
        fast_dev_run=False,
        output_dir=str(folder / "run"),
        epochs=1,
        max_train_samples=min(
            config.batch_size * config.nproc_per_node * config.nnodes, config.max_train_samples or 60_000
        ),
        max_eval_samples=min(config.eval_batch_size, config.max_eval_samples or config.eval_batch_size),
        overfit_batches=None,
    )
    try:
        rows = train(trial, plugins)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"fast-dev-run passed: 1 training batch and 1 evaluation batch went through the model and the handlers "
        f"({', '.join(config.handlers) or 'none'}); nothing was kept",
        flush=True,
    )
    return rows


def _adopt_resumed_model(config: Config) -> None:
    """``--resume`` without ``--model``: rebuild the model the run was made with (its config.json records it)."""
    if not config.resume or config.model != "seed" or config.model_args:
        return
    folder = Path(config.output_dir) if config.resume == "auto" else Path(config.resume).parent.parent
    try:
        recorded = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return
    if isinstance(recorded, dict) and recorded.get("model", "seed") != "seed":
        config.model, config.model_args = str(recorded["model"]), dict(recorded.get("model_args") or {})
        args = "".join(f" {k}={v!r}" for k, v in config.model_args.items())
        print(f"resuming a run of model {config.model}{args} (from {folder / 'config.json'})")


def _launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ)


def _read_history(output_dir: Path) -> list[dict[str, Any]]:
    path = output_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else []
