"""``launch(config) -> Outcome``: one run, from settings to ``final_model.pt``.

Read top to bottom, a run is: resolve the settings (:mod:`~mnist_ignite.core.resolve`); check
the model and build the plugins before any data is read; claim the run folder; for ``--lr auto``
run the lr finder the caller passes in; then in every process
(one, or each rank under ``ignite.distributed.Parallel``): seed, load the data, wire the run
(:func:`~mnist_ignite.core.build.build_run`), write ``config.json``, train until ``--epochs``
(stopping cleanly on a signal, :mod:`~mnist_ignite.core.signals`), close the plugins, write
``final_model.pt`` and ``results.json``. The core prints nothing itself: a console report is a
plugin the caller passes in (:mod:`mnist_ignite.reporting.console`), and notes go through logging.

``--fast-dev-run N`` runs the same code on N training and N evaluation batches in a temporary
folder and counts how often each plugin's handlers ran (:class:`HandlerCalls`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import torch
from ignite.utils import manual_seed

from mnist_ignite.config.settings import Config
from mnist_ignite.core.build import build_data, build_run
from mnist_ignite.core.checkpoint import has_checkpoints
from mnist_ignite.core.data import ResumableBatches, TensorTrainLoader
from mnist_ignite.core.device import select_device
from mnist_ignite.core.engines import finite_weights
from mnist_ignite.core.files import save_json, save_torch
from mnist_ignite.core.parallel import quiet_distributed_logs, run_ranks
from mnist_ignite.core.resolve import resolve
from mnist_ignite.core.results import StartupClock, run_clock_base, summarize, write_results
from mnist_ignite.core.rundir import CONFIG, FINAL_MODEL, RESULTS, RunDir, outputs_of, written
from mnist_ignite.core.signals import SignalStop
from mnist_ignite.discovery.handlers import build_plugins
from mnist_ignite.errors import BatchTooLargeError, ConfigError, Interrupted, OutOfMemoryError, StopTraining
from mnist_ignite.log import note
from mnist_ignite.models.registry import build_model, check_model
from mnist_ignite.plugins.api import Output, RunContext
from mnist_ignite.plugins.guard import close_plugins, named_failures

__all__ = ["HandlerCalls", "Outcome", "fit", "launch"]


@dataclass(frozen=True)
class HandlerCalls:
    """How often one plugin's handlers ran in a run: ``{event label: calls}`` per engine role."""

    plugin: str
    calls: dict[str, int]
    idle_reason: str = ""  # a plugin's own word on why it attached nothing (``idle_reason``)

    @property
    def fired(self) -> bool:
        return any(self.calls.values())


@dataclass
class Outcome:
    """What came of a run.

    Attributes:
        config: the run's resolved settings.
        rows: one row per finished epoch (metrics.json).
        results: the content of results.json (None when no epoch was trained).
        outputs: every declared file or folder the run folder now holds.
        stopped_at: (epoch, iteration) where a handler or the target stopped the run before ``--epochs``.
        nothing_to_do: the checkpoint already held every epoch.
        handler_calls: per plugin, how often its handlers ran (all plugins, in attach order).
        fast_dev_run: the number of batches of a fast dev run (0 for a real run).
    """

    config: Config
    rows: list[dict[str, Any]]
    results: dict[str, Any] | None
    outputs: list[tuple[Output, Path]] = field(default_factory=list)
    stopped_at: tuple[int, int] | None = None
    nothing_to_do: bool = False
    handler_calls: list[HandlerCalls] = field(default_factory=list)
    fast_dev_run: int = 0

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)


def fit(ctx: RunContext, data: Any, max_epochs: int) -> int:
    """Run the trainer up to ``max_epochs``, stopping cleanly on a signal; returns the signal (0 if none).

    A plugin's failure leaves as its :class:`~mnist_ignite.errors.PluginError`.
    """
    try:
        with SignalStop(ctx.trainer) as stop, named_failures():
            ctx.trainer.run(data, max_epochs=max_epochs)
    except RuntimeError as err:  # torch.OutOfMemoryError is one; the CPU allocator raises a plain RuntimeError
        if not _out_of_memory(err):
            raise
        state, config = ctx.trainer.state, ctx.config
        first = " ".join(str(err).split("\n")[0].split())[:200]
        raise OutOfMemoryError(
            f"out of memory at iteration {state.iteration} (epoch {state.epoch}) on {ctx.device}: {first}. "
            f"A smaller --batch-size (now {config.batch_size}) or --eval-batch-size (now {config.eval_batch_size}) fits"
        ) from None
    return stop.signum


def _out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in text or "out of memory" in text


def _handler_calls(ctx: RunContext) -> list[HandlerCalls]:
    found = []
    for plugin in ctx.plugins:
        calls: dict[str, int] = {}
        for engine in (ctx.trainer, ctx.evaluator):
            for (owner, label), n in getattr(engine, "calls", {}).items():
                if owner == id(plugin):
                    calls[f"{engine.role} {label}"] = n
        found.append(HandlerCalls(plugin.name, calls, str(getattr(plugin, "idle_reason", "") or "")))
    return found


def _worker(local_rank: int, config: Config, extra_plugins: Sequence[Any], out: dict[str, Any]) -> None:
    rank, world = idist.get_rank(), idist.get_world_size()
    is_main = rank == 0
    if world > 1:
        quiet_distributed_logs()
    # with several processes on GPUs, each takes cuda:<local rank>
    device = select_device(config.device) if world == 1 or config.device == "cpu" else idist.device()
    manual_seed(config.seed)
    output_dir = Path(config.output_dir)
    train_data, eval_data = build_data(config, device, rank, world)
    plugins = build_plugins(config.handlers, config.options, extra_plugins)
    ctx = build_run(
        config, device, train_data, eval_data, plugins=plugins, output_dir=output_dir, is_main=is_main, world=world
    )
    trainer = ctx.trainer
    nothing_to_do = trainer.state.epoch >= config.epochs and trainer.state.iteration > 0
    if is_main and not nothing_to_do:  # after a resume was accepted: the settings this run really uses
        save_json(output_dir / CONFIG, config.to_dict())
    clock = StartupClock(out.get("clock_base", 0.0) if world == 1 else 0.0, out.get("lr_find_seconds") or 0.0)
    clock.attach(trainer)
    data = ResumableBatches(train_data, trainer) if isinstance(train_data, TensorTrainLoader) else train_data
    resumed_at = trainer.state.epoch  # epochs the checkpoint already held (0 for a new run)
    signum = 0
    try:
        if nothing_to_do:
            out["nothing_to_do"] = True
            if is_main:
                note(
                    f"nothing to do: the checkpoint already holds {trainer.state.epoch} epochs "
                    f"(--epochs {config.epochs}); a larger --epochs continues it"
                )
        else:
            signum = fit(ctx, data, config.epochs)
    finally:
        out["started"] = trainer.state.iteration > 0
        with named_failures():
            close_plugins(ctx.plugins)
        out["handler_calls"] = _handler_calls(ctx)
    if signum:
        if world > 1:  # rank 0 has saved (at TERMINATE): no rank leaves first, which would end it mid-write
            idist.barrier()
        raise Interrupted(signum, output_dir)
    state = trainer.state
    if state.epoch < config.epochs or state.iteration % state.epoch_length:
        out["stopped_at"] = (state.epoch, state.iteration)
    if not finite_weights(ctx.model):
        raise StopTraining("the model's weights are NaN/Inf: final_model.pt not written; lower --lr")
    if is_main:
        save_torch(output_dir / FINAL_MODEL, ctx.model.state_dict())
        results = summarize(ctx, clock, resumed_at, out.get("lr_find_seconds"))
        write_results(ctx, results)
        out["results"] = results
    out["history"] = ctx.history.rows


MNIST_TRAIN_IMAGES = 60_000


def _batch_on_one_device(config: Config, device: Any) -> int:
    """The training images one device holds in a batch: the global batch (capped by the data) split over the
    ranks that share it (all of a machine's ranks share its RAM; each GPU has its own rank)."""
    batch = min(config.batch_size, config.max_train_samples or MNIST_TRAIN_IMAGES)
    if config.overfit_batches:
        batch = min(batch, config.overfit_batches * config.batch_size)
    sharing = config.nnodes if device.type == "cpu" else config.nproc_per_node * config.nnodes
    return max(1, batch // sharing)


def _launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def launch(
    config: Config,
    plugins: Sequence[Any] = (),
    *,
    lr_finder: Callable[[Config], float] | None = None,
) -> Outcome:
    """Run ``config`` (see the module docstring) and return its :class:`Outcome`.

    Args:
        config: the settings (resolved here).
        plugins: ready-made plugin objects to attach after ``config.handlers`` (a console report, a
            sweep's trial reporter).
        lr_finder: for ``--lr auto``: called with the resolved settings once the run folder is
            claimed, before any data is read; returns the lr to train with (its seconds are a
            figure of their own in results.json). The range test lives above the core
            (:mod:`mnist_ignite.experiments.lr_find`); the caller passes it in.
    """
    config = resolve(config)
    if config.fast_dev_run:
        return _fast_dev_run(config, plugins, lr_finder)
    # a bad model or plugin fails before any data or process is touched (each worker rebuilds them)
    device = select_device(config.device)
    batch = _batch_on_one_device(config, device)
    try:
        check_model(build_model(config.model, config.model_args), config.model, device, batch)
    except BatchTooLargeError as err:
        capped = (
            " (capped at the training images)"
            if config.batch_size > (config.max_train_samples or MNIST_TRAIN_IMAGES)
            else ""
        )
        raise BatchTooLargeError(f"--batch-size {config.batch_size:,}{capped}: {err}") from None
    checked = build_plugins(config.handlers, config.options, plugins)
    torchrun = _launched_by_torchrun()
    claim = not torchrun or int(os.environ.get("RANK", "0")) == 0
    outputs = outputs_of(checked)
    rundir = RunDir(config.output_dir, resume=bool(config.resume), overwrite=config.overwrite, outputs=outputs)
    if claim:
        rundir.claim()
    out: dict[str, Any] = {"clock_base": run_clock_base()}
    try:
        if config.lr == "auto":
            if lr_finder is None:
                raise ConfigError("--lr auto needs an lr finder: train through mnist_ignite.train or the command line")
            t0 = time.perf_counter()
            config = dataclasses.replace(config, lr=float(lr_finder(config)))
            out["lr_find_seconds"] = time.perf_counter() - t0
        if config.nproc_per_node > 1 or config.nnodes > 1 or torchrun:
            backend = config.backend or ("nccl" if device.type == "cuda" else "gloo")
            spawn: dict[str, Any] = {}
            if not torchrun:  # idist.Parallel spawns the processes itself
                spawn = {
                    "nproc_per_node": config.nproc_per_node,
                    "nnodes": config.nnodes,
                    "node_rank": config.node_rank,
                }
                if config.nnodes > 1:
                    spawn |= {"master_addr": config.master_addr, "master_port": config.master_port}
            run_ranks(_worker, (config, plugins, out), Path(config.output_dir), backend, **spawn)
        else:
            _worker(0, config, plugins, out)
    finally:
        if claim:
            # spawned ranks return nothing: what they left on disk says whether training started
            folder = Path(config.output_dir)
            started = out.get("started", (folder / "metrics.json").exists() or has_checkpoints(folder))
            rundir.release(started=started)
    folder = Path(config.output_dir)
    if "history" not in out:  # spawned workers return nothing: read what rank 0 wrote
        out["history"] = _read_json(folder / "metrics.json") or []
        out["results"] = _read_json(folder / RESULTS)
    return Outcome(
        config=config,
        rows=out["history"],
        results=out.get("results"),
        outputs=written(folder, outputs),
        stopped_at=out.get("stopped_at"),
        nothing_to_do=out.get("nothing_to_do", False),
        handler_calls=out.get("handler_calls", []),
    )


def _fast_dev_run(config: Config, plugins: Sequence[Any], lr_finder: Callable[[Config], float] | None) -> Outcome:
    """N training batches and N evaluation batches through every enabled handler, in a folder removed afterwards."""
    n = int(config.fast_dev_run)
    folder = Path(tempfile.mkdtemp(prefix="mnist-ignite-fast-dev-run-"))
    processes = config.nproc_per_node * config.nnodes
    trial = dataclasses.replace(
        config,
        fast_dev_run=None,
        output_dir=str(folder / "run"),
        epochs=1,
        max_train_samples=min(n * config.batch_size * processes, config.max_train_samples or MNIST_TRAIN_IMAGES),
        max_eval_samples=min(n * config.eval_batch_size, config.max_eval_samples or n * config.eval_batch_size),
        overfit_batches=None,
    )
    try:
        outcome = launch(trial, plugins, lr_finder=lr_finder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    outcome.config = config
    outcome.outputs = []  # nothing was kept
    outcome.fast_dev_run = n
    return outcome
