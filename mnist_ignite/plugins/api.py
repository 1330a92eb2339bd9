"""The plugin contract: what a plugin is, its options, and what it sees of a run (:class:`RunContext`).

A plugin is an object with a ``name`` and ``attach(ctx)``; it hooks itself onto Ignite events of
``ctx.trainer`` / ``ctx.evaluator``. Optional parts, all duck-typed:

* ``description`` (one line for ``--list-handlers``) and ``options``: a tuple of :class:`Option`,
  shown in ``--help`` once the plugin is enabled and passed to the constructor as keywords;
* ``state_dict()`` / ``load_state_dict(state)``: the plugin's state rides inside checkpoints,
  under the plugin's name, whatever order plugins attach in. It must hold only tensors, numbers,
  strings, lists and dicts (checkpoints load with ``weights_only=True``); anything else fails at
  the first checkpoint, naming the plugin.
* ``idle_reason``: set in ``attach`` when it chose to attach nothing (``--fast-dev-run`` shows it);
* ``close()``: called once by the core when the run ends, succeeded or failed. (Never listen to
  ``Events.EXCEPTION_RAISED``: a handler there makes Ignite swallow every exception.)

A plain function ``attach(ctx)`` is a plugin too (named after the function), and so are Ignite
handlers ``fn(engine)`` marked with :func:`on` (``--handler file.py`` attaches every one in the file).

Plugins attach in the order they are enabled and see the run through :class:`RunContext`. At the
trainer's ``EPOCH_COMPLETED`` the evaluation has run and ``ctx.trainer.state.record`` holds the
epoch's numbers (the row of metrics.json). Two events of the core's own (:class:`RunEvents`) need
no ordering numbers: ``READY`` fires once every plugin is attached (a checkpoint is restored
there, so every plugin gets its state back), ``EPOCH_END`` after every ``EPOCH_COMPLETED``
handler (the epoch's state is complete: checkpoints are saved there).

Plugins are found by name (built-ins and the ``mnist_ignite.handlers`` entry-point group),
as ``package.module:Attr``, or as ``path/to/file.py:Attr``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mnist_ignite.discovery.handlers import ON_ATTR
from mnist_ignite.errors import PluginError, PluginLoadError, StopTraining
from mnist_ignite.log import note

if TYPE_CHECKING:  # torch and Ignite load when a run starts, not for --help
    import torch
    from ignite.engine import Engine

    from mnist_ignite.config.settings import Config

__all__ = ["Option", "Output", "Plugin", "PluginError", "PluginLoadError", "RunContext", "StopTraining", "on"]


ENGINES = ("trainer", "evaluator")


def on(event: Any, engine: str = "trainer") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark ``fn(engine)`` as an Ignite handler of ``event`` on the run's ``trainer`` or ``evaluator``.

    Code from Ignite's docs runs as it is: ``@trainer.on(Events.X)`` becomes ``@on(Events.X)``, and
    ``--handler file.py`` (or ``Model(handlers=["file.py"])``) attaches every marked function in
    the file, as one plugin named after the file. A function may carry several marks.
    """
    if engine not in ENGINES:
        raise ValueError(f"on(..., engine={engine!r}): the run's engines are {', '.join(ENGINES)}")

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        marks = list(getattr(func, ON_ATTR, ()))
        setattr(func, ON_ATTR, [(engine, event), *marks])  # decorators apply bottom-up: keep source order
        return func

    return mark


def _cpu() -> torch.device:
    import torch

    return torch.device("cpu")


@dataclass(frozen=True)
class Option:
    """A plugin option: becomes ``--NAME`` on the command line and ``NAME`` in the TOML file."""

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    choices: Sequence[Any] | None = None

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class Output:
    """A file or folder a plugin writes into the run folder: declared, so the core can list it and clean it up.

    ``path`` is relative to the run folder; a folder ends with ``/``. ``files`` are the globs inside
    a folder that are the plugin's own (``--overwrite`` removes those and leaves anything else a
    user put there). ``what`` and ``open_with`` (a command with ``{path}``) are shown by the footer.
    """

    path: str
    what: str = ""
    open_with: str = ""
    files: tuple[str, ...] = ("*",)

    @property
    def is_folder(self) -> bool:
        return self.path.endswith("/")

    @property
    def name(self) -> str:
        return self.path.rstrip("/")


@dataclass
class RunContext:
    """What a plugin sees of a run.

    Attributes:
        trainer: the training engine; ``trainer.state.output`` after each step is a dict of
            detached tensors ``loss`` (the batch's mean cross-entropy), ``y_pred`` (B, 10), ``y``
            (B,) and ``correct`` (B, 1); ``trainer.state.record`` is the epoch's row at
            ``EPOCH_COMPLETED`` (the row of metrics.json).
        evaluator: the evaluation engine; its ``state.metrics`` hold ``accuracy`` and ``loss``.
        model: the network being trained (the module itself, not a distributed wrapper).
        optimizer: its optimizer.
        config: the run's settings, resolved (no ``auto`` left in ``lr``, the folder chosen). Never
            changed during a run.
        output_dir: the run folder.
        is_main_process: False on the other ranks of a distributed run (write files on the main one).
        device: where the model trains.
        precision: the autocast precision (``fp32``, ``bf16``, ``fp16``) and why.
        train_data: the training batches; ``eval_data``: the test batches.
        epoch_length: iterations per epoch.
        plugins: the plugins attached so far, in order.
        history: the epoch rows so far (``history.rows``; ``history.results`` is the seed's dict).
        checkpoint_objects: objects saved in every checkpoint (a plugin adds its scheduler here).
        target: the time-to-accuracy service when ``--target-acc`` is set (``target.reached``).
    """

    trainer: Engine
    evaluator: Engine
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    config: Config
    output_dir: Path
    is_main_process: bool = True
    device: torch.device = field(default_factory=_cpu)
    precision: Any = None
    train_data: Any = None
    eval_data: Any = None
    epoch_length: int = 0
    plugins: list[Any] = field(default_factory=list)
    history: Any = None
    checkpoint_objects: dict[str, Any] = field(default_factory=dict)
    target: Any = None

    def log(self, message: str) -> None:
        """Write a line above the progress bar (never through it), on the main process only.

        It goes to ``logging.getLogger("mnist_ignite")`` as a note: shown on the console, in a
        notebook cell, in a log file when output is piped, and capturable like any log record.
        """
        if self.is_main_process:
            note(message)


class Plugin:
    """Convenience base: stores declared options as attributes and checks unknown keywords."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    outputs: ClassVar[tuple[Output, ...]] = ()  # what it writes into the run folder

    def __init__(self, **values: Any) -> None:
        known = {o.dest: o for o in self.options}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
        for dest, opt in known.items():
            setattr(self, dest, values.get(dest, opt.default))

    def attach(self, ctx: RunContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
