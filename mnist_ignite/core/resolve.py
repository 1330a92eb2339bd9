"""A run's settings checked and resolved once, before anything heavy: the one place a config becomes a run's.

:func:`validate` rejects impossible combinations (each single setting's rule is declared on
``Config``); :func:`resolve` returns a new, frozen ``Config`` with every choice made: the run
folder (``runs/<timestamp>`` by default), a model file spec made absolute (so ``evaluate`` and
``export`` work from anywhere), and on resume the model the run was made with. Nothing changes a
config afterwards: later steps (``--lr auto``) make a new one with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_ignite.config.settings import RUN_DEFINING, Config, check_settings
from mnist_ignite.core.checkpoint import run_dir_of
from mnist_ignite.core.rundir import CONFIG, read_run_config
from mnist_ignite.errors import ConfigError
from mnist_ignite.log import note
from mnist_ignite.models.registry import require_trusted

if TYPE_CHECKING:
    import torch

__all__ = ["absolute_model_spec", "resolve", "resolve_output_dir", "validate"]


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
    from mnist_ignite.core.device import choose_precision, select_device

    try:
        device = select_device(config.device)
        choose_precision(config.precision, device)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _check_processes(config, device)


def _check_processes(config: Config, device: torch.device) -> None:
    """--nproc-per-node: at most one process per GPU, at most one per CPU core on the CPU."""
    import os

    import torch

    if config.nproc_per_node <= 1:
        return
    if device.type == "cpu":
        limit, what = os.cpu_count() or 1, "CPU cores"
    else:
        module = getattr(torch, device.type, None)
        limit = module.device_count() if module is not None and hasattr(module, "device_count") else 1
        what = f"{device.type} devices"
    if config.nproc_per_node > limit:
        raise ConfigError(f"--nproc-per-node {config.nproc_per_node}: this machine has {limit} {what}")


def resolve_output_dir(config: Config) -> Path:
    """``config.output_dir`` or ``runs/<timestamp>``."""
    if config.output_dir:
        return Path(config.output_dir)
    if config.resume == "auto":
        raise ConfigError("--resume auto needs --output-dir (the run folder to continue)")
    base = Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    folder, n = base, 1
    while folder.exists():  # two runs started in one second get a folder each
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def absolute_model_spec(spec: str) -> str:
    """``path/file.py:Attr`` with the path made absolute, when that file exists; any other spec as it is."""
    where, sep, attr = spec.rpartition(":")
    if sep and where.endswith(".py") and Path(where).is_file():
        return f"{Path(where).resolve()}:{attr}"
    return spec


ADOPTED = (*RUN_DEFINING, "epochs", "data_dir")  # what a resume takes from config.json unless named


def _resumed(config: Config, folder: Path) -> Config:
    """On resume: every run-defining setting the user did not name (and ``epochs``, ``data_dir``, and the
    options of the handlers enabled now) from the run's config.json, so ``--output-dir D --resume auto``
    alone continues it; the lr an ``--lr auto`` run found; without ``--model`` the model the run was made with.

    A recorded spec that imports code (``module:Attr``, ``file.py:Attr``) is used only when it is
    trusted (:func:`~mnist_ignite.models.registry.require_trusted`): a run folder cannot make this
    tool run code the user never named.
    """
    recorded = read_run_config(folder)
    if recorded is None:
        return config
    if not config.given:  # a Config built in Python: what differs from the defaults is what the user set
        defaults = Config()
        named = frozenset(
            f.name for f in dataclasses.fields(Config) if getattr(config, f.name) != getattr(defaults, f.name)
        )
        config = dataclasses.replace(config, given=named)
    adopted = {
        name: recorded[name]
        for name in ADOPTED
        if name not in ("model", "model_args", "lr")
        and name not in config.given
        and name in recorded
        and recorded[name] != getattr(config, name)
    }
    # handler options too (the schedule's lr_schedule, warmup_iters, min_lr ...): those of handlers enabled now
    recorded_options = recorded.get("options") if isinstance(recorded.get("options"), dict) else {}
    options = {
        name: value
        for name, value in recorded_options.items()
        if name in config.options and name not in config.given and value != config.options[name]
    }
    if options:
        config = dataclasses.replace(config, options=config.options | options)
    if adopted or options:
        config = dataclasses.replace(config, **adopted)
        shown = ", ".join(f"{name.replace('_', '-')} {value}" for name, value in (adopted | options).items())
        note(f"resuming with the run's {shown} (from {folder / CONFIG})")
    if ("lr" not in config.given or config.lr == "auto") and isinstance(recorded.get("lr"), (int, float)):
        config = dataclasses.replace(config, lr=float(recorded["lr"]))
    if config.lr == "auto" and isinstance(recorded.get("lr"), (int, float)):
        config = dataclasses.replace(config, lr=float(recorded["lr"]))  # the finder's pick, not a new search
    if (
        "model" in config.given
        or config.model != "seed"
        or config.model_args
        or recorded.get("model", "seed") == "seed"
    ):
        return config
    spec, args = str(recorded["model"]), dict(recorded.get("model_args") or {})
    require_trusted(spec, f"{folder / CONFIG}", config.trust_code)
    note(f"resuming a run of model {spec}{''.join(f' {k}={v!r}' for k, v in args.items())} (from {folder / CONFIG})")
    return dataclasses.replace(config, model=spec, model_args=args)


def resolve(config: Config) -> Config:
    """``config`` validated, with its run folder chosen, its model spec absolute and, on resume, its model adopted."""
    validate(config)
    folder = resolve_output_dir(config)
    config = dataclasses.replace(config, output_dir=str(folder), model=absolute_model_spec(config.model))
    if config.resume:
        run = folder if config.resume == "auto" else run_dir_of(Path(config.resume))
        config = _resumed(config, run)
    return config
