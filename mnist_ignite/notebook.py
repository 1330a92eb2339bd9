"""``Model``: the seed notebook's API, a face over the same run-builder as the command line."""

from __future__ import annotations

import dataclasses
import os
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from ignite.engine import Events

from mnist_ignite.models.layers import summary

__all__ = ["Model"]


class Model:
    """The seed's ``Model``: SGD + StepLR(15, 0.1) on the Net, one epoch per ``train()``/``test()``.

    A face over the same run-builder as the CLI (:func:`mnist_ignite.core.launch.build_run`): the same
    engines, evaluation record, history and plugins (``lr_schedule`` and ``progress`` by default;
    ``plots``, ``history``, ``checkpoint``, ``early_stopping``, ``visdom`` ... work the same way),
    over any loaders the caller builds.

    Args:
        train_loader: iterable of ``(images, labels)`` batches with ``len()``.
        test_loader: the same for evaluation.
        lr: SGD learning rate (``learning_rate=`` is accepted too, as in the seed).
        momentum: SGD momentum.
        net: the network to train (default: the seed's :class:`Net`); it maps (B, 1, 28, 28) to
            (B, 10) log-probabilities or logits.
        device: ``auto`` (cuda, mps, cpu) or a device name.
        handlers: plugins to attach: names or specs (see ``mnist-ignite --list-handlers``),
            plugin objects, or plain ``attach(ctx)`` functions. Default ``lr_schedule`` and
            ``progress``, and ``checkpoint`` and ``history`` too when you name an ``output_dir`` (so it
            can be resumed, and ``compare`` takes it).
        output_dir: where file-writing plugins put their files (default ``runs/<timestamp>``,
            created only when a plugin writes). A folder you name that holds another run is refused
            (:class:`~mnist_ignite.errors.RunDirError`) unless ``resume=True`` or ``overwrite=True``,
            and is locked while this ``Model`` lives.
        resume: continue the run in ``output_dir`` from its newest checkpoint (weights, optimizer,
            schedule, epoch count, history), e.g. after a kernel restart; ``run(n)`` then trains n more epochs.
        overwrite: replace the run already in ``output_dir`` (its own files only).
        **options: handler options by name, e.g. ``patience=2`` for ``early_stopping``.
    """

    def __init__(
        self,
        train_loader: Iterable,
        test_loader: Iterable,
        lr: float = 0.01,
        momentum: float = 0.9,
        *,
        learning_rate: float | None = None,
        net: nn.Module | None = None,
        device: str = "auto",
        handlers: Sequence[Any] | None = None,
        output_dir: str | Path | None = None,
        resume: bool = False,
        overwrite: bool = False,
        **options: Any,
    ) -> None:
        from mnist_ignite.config.settings import Config
        from mnist_ignite.core.build import build_run
        from mnist_ignite.core.device import select_device
        from mnist_ignite.core.files import save_json
        from mnist_ignite.core.resolve import resolve_output_dir, validate
        from mnist_ignite.core.rundir import CONFIG, RunDir, outputs_of
        from mnist_ignite.discovery.handlers import build_plugins
        from mnist_ignite.errors import CheckpointLoadError, ConfigError, RunDirError

        self.train_loader = train_loader
        self.test_loader = test_loader
        self.lr = lr if learning_rate is None else learning_rate
        self.momentum = momentum
        if handlers is None:  # a folder you name is a run the commands take: resumable, with its metrics.json
            handlers = ("lr_schedule", "progress", *(("checkpoint", "history") if output_dir is not None else ()))
        if resume and output_dir is None:
            raise ConfigError("Model(..., resume=True) needs output_dir=, the run folder to continue")
        config = Config(
            lr=self.lr,
            momentum=momentum,
            device=device,
            handlers=[h for h in handlers if isinstance(h, str)],
            options=options,
            output_dir=str(output_dir or ""),
            resume="auto" if resume else None,
            overwrite=overwrite,
            **_loader_settings(train_loader, test_loader),
        )
        try:
            validate(config)
        except ConfigError as err:
            raise ConfigError(_keywords(str(err))) from None
        config = _check_options(config)
        config = dataclasses.replace(config, output_dir=str(resolve_output_dir(config)))
        plugins = build_plugins(config.handlers, config.options, [h for h in handlers if not isinstance(h, str)])
        self._rundir = None
        if output_dir is not None:  # a folder you name is claimed like the CLI's: no silent mixing of two runs
            _close_earlier(Path(output_dir))
            self._rundir = RunDir(output_dir, resume=resume, overwrite=overwrite, outputs=outputs_of(plugins))
            try:
                self._rundir.claim()
            except RunDirError as err:  # in Python the choices are keywords, not flags
                raise RunDirError(_keywords(str(err))) from None
            if not resume:
                save_json(Path(config.output_dir) / CONFIG, config.to_dict())
        self.device = select_device(device)
        # no console report: the seed's own lines ("Epoch N", "Test set: ...") are the report
        try:  # on resume the checkpoint is restored here (RunEvents.READY)
            self.ctx = build_run(config, self.device, train_loader, test_loader, net=net, plugins=plugins)
        except (RunDirError, CheckpointLoadError) as err:
            if self._rundir is not None:
                self._rundir.release(started=False)
            raise type(err)(_keywords(str(err))) from None
        self.model, self.optimizer = self.ctx.model, self.ctx.optimizer
        self.trainer, self.evaluator = self.ctx.trainer, self.ctx.evaluator
        # a resumed run's earlier epochs too, so plot_model_results shows them all
        self.results: dict[str, list[float]] = self.ctx.history.results
        self.stopped = False  # a handler (early stopping, time limit) ended training
        self._unread_record = False  # the last epoch's evaluation, not yet returned by test()
        self.trainer.add_event_handler(Events.TERMINATE, lambda _: setattr(self, "stopped", True))
        from mnist_ignite.core.results import StartupClock, run_clock_base

        self._clock = StartupClock(run_clock_base())
        self._clock.attach(self.trainer)
        self._resumed_at = self.trainer.state.epoch  # epochs a resumed run's checkpoint already held
        self._finalizer = weakref.finalize(self, _finish, list(self.ctx.plugins), self._rundir)
        if output_dir is not None:
            _LIVE[Path(output_dir).resolve()] = weakref.ref(self)

    @property
    def config(self) -> Any:
        """The run's settings (a frozen ``Config``)."""
        return self.ctx.config

    @staticmethod
    def check_cuda_availability() -> bool:
        """Print and return whether CUDA is available (the seed's helper)."""
        available = torch.cuda.is_available()
        print("CUDA Available?", available)
        return available

    def show_summary(self, input_size: Sequence[int] = (1, 28, 28)) -> None:
        """Print the layer table (returns nothing, so a notebook cell does not echo it twice)."""
        print(summary(self.model, input_size))

    def train(self) -> tuple[float, float]:
        """Train one epoch (its evaluation follows, as in every run); append and return (loss, accuracy %)."""
        from mnist_ignite.errors import RunDirError
        from mnist_ignite.plugins.guard import named_failures

        if not self._finalizer.alive:
            raise RunDirError(f"this Model is closed{self._closed_why}; make a new one (resume=True continues its run)")
        epoch = self.trainer.state.epoch
        with named_failures():
            state = self.trainer.run(self.train_loader, max_epochs=epoch + 1)
        # a handler may stop the epoch early (time limit): then the running values so far
        running = {name: m.compute() for name, m in self.trainer.train_metrics.metrics.items()}
        values = {name: state.metrics.get(name, running[name]) for name in running}
        loss, acc = float(values["train_loss"]), 100.0 * float(values["train_acc"])
        record = getattr(state, "record", None)
        self._unread_record = record is not None and record["epoch"] == epoch + 1
        self.results["train_losses"].append(loss)
        self.results["train_acc"].append(acc)
        if self._rundir is not None and self._unread_record:
            self._save()
        return loss, acc

    def _save(self) -> None:
        """A folder you named holds a run like the CLI's after each epoch: config.json, final_model.pt and
        results.json, so ``evaluate``, ``export``, ``predict`` and ``compare`` take it."""
        from mnist_ignite.core.files import save_json, save_torch
        from mnist_ignite.core.results import summarize, write_results
        from mnist_ignite.core.rundir import CONFIG, FINAL_MODEL

        folder = Path(self.ctx.config.output_dir)
        epochs = max(self.ctx.config.epochs, self.trainer.state.epoch)
        save_json(folder / CONFIG, dataclasses.replace(self.ctx.config, epochs=epochs).to_dict())
        save_torch(folder / FINAL_MODEL, self.model.state_dict())
        write_results(self.ctx, summarize(self.ctx, self._clock, self._resumed_at))

    def test(self) -> tuple[float, float]:
        """Test without gradients; append and return (mean loss, accuracy %).

        Right after ``train()`` this is the evaluation that ran at the end of that epoch (the one
        the plugins saw); otherwise the evaluator runs now.
        """
        if self._unread_record:
            record = self.trainer.state.record
            loss, acc = record["test_loss"], record["test_acc"]
            self._unread_record = False
        else:
            metrics = self.evaluator.run(self.test_loader).metrics
            loss, acc = float(metrics["loss"]), 100.0 * float(metrics["accuracy"])
        self.results["test_losses"].append(loss)
        self.results["test_acc"].append(acc)
        print(f"Test set: Average loss: {loss:.4f}, Accuracy: {acc:.2f}%")
        return loss, acc

    def run(self, num_epochs: int = 20) -> dict[str, list[float]]:
        """The seed's loop: train and test each epoch (the LR schedule steps on trainer events)."""
        # the planned length (progress bars, schedules): the run's settings, made anew, never changed in place
        self.ctx.config = dataclasses.replace(self.ctx.config, epochs=self.trainer.state.epoch + num_epochs)
        for _ in range(num_epochs):
            print(f"Epoch {self.trainer.state.epoch + 1}")
            self.train()
            self.test()
            if self.stopped:
                print(f"stopped by a handler after epoch {self.trainer.state.epoch}")
                break
        return self.results

    def close(self) -> None:
        """End the run for the plugins (queued dashboard events sent, writer threads joined).

        Also done when the ``Model`` is garbage-collected or the interpreter exits.
        """
        self._finalizer()

    _closed_why = ""


# folder -> the live Model that holds it, so re-running a notebook cell hands the folder to the new Model
_LIVE: dict[Path, weakref.ref] = {}


def _close_earlier(folder: Path) -> None:
    """Close the Model of this process that holds ``folder``: the cell that made it was run again."""
    from mnist_ignite.log import note

    earlier = _LIVE.pop(folder.resolve(), lambda: None)()
    if earlier is not None and earlier._finalizer.alive:
        earlier.close()
        earlier._closed_why = f": a newer Model took {folder}"
        note(f"closed the earlier Model on {folder} (this kernel) so this one can use the folder")


def _finish(plugins: list[Any], rundir: Any) -> None:
    from mnist_ignite.plugins.guard import close_plugins

    close_plugins(plugins)
    if rundir is not None:
        rundir.release(started=True)


def _loader_settings(train_loader: Iterable, test_loader: Iterable) -> dict[str, Any]:
    """What the loaders say of the run, for its config.json: the MNIST folder, the batch size and the subset
    sizes when they are plain (a ``utils`` loader, or a ``Subset`` of one), so the commands and a resume from
    the command line read the same data. Anything else is left at the defaults."""
    from torch.utils.data import Subset

    found: dict[str, Any] = {}
    for loader, key in ((train_loader, "max_train_samples"), (test_loader, "max_eval_samples")):
        dataset = getattr(loader, "dataset", None)
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        root = getattr(base, "root", None)
        if isinstance(root, (str, os.PathLike)) and (Path(root) / "MNIST" / "raw").is_dir():
            found["data_dir"] = str(Path(root).resolve())
        if isinstance(dataset, Subset) and list(dataset.indices) == list(range(len(dataset))):
            found[key] = len(dataset)  # the first N images, as --max-*-samples takes them
    batch = getattr(train_loader, "batch_size", None)
    if isinstance(batch, int) and batch > 0:
        found["batch_size"] = batch
    return found


# the command line's words for a choice -> the keyword that makes it in Python
_FLAGS_AS_KEYWORDS = (
    ("--resume auto", "resume=True"),
    ("--resume", "resume=True"),
    ("--overwrite", "overwrite=True"),
    ("--output-dir", "output_dir"),
    ("--no-handler checkpoint", "no 'checkpoint' in handlers="),
)


def _keywords(text: str) -> str:
    """A refusal worded for the command line, in ``Model``'s keywords."""
    for flag, keyword in _FLAGS_AS_KEYWORDS:
        text = text.replace(flag, keyword)
    return text


def _check_options(config: Any) -> Any:
    """Handler options given as keywords: each must be an enabled handler's (a typo is an error, not a
    default), checked as the command line checks it; returns the config with the checked values."""
    from mnist_ignite.config.argv import check_option
    from mnist_ignite.discovery.handlers import options_of, unknown_option
    from mnist_ignite.errors import ConfigError

    known = options_of(config.handlers)
    checked = {}
    for key, value in config.options.items():
        if key not in known:
            why = unknown_option(key, config.handlers, key, list(known), enable="handlers=[..., {owner!r}]")
            enabled = ", ".join(config.handlers) or "none"
            raise ConfigError(f"Model(..., {key}={value!r}): {why} (enabled handlers: {enabled})")
        checked[key] = check_option(known[key][1], value, f"Model(..., {key}={value!r})")
    return dataclasses.replace(config, options=checked)
