"""One settings object for a run: defaults < TOML file (``--config``) < command-line flags.

Each setting is declared once, here, as a :class:`Config` field with its help, group and rule;
the command line (``mnist_ignite.cli``), the TOML reader and :func:`check_settings` are all
derived from these declarations. This module imports neither torch nor Ignite, so ``--help``
answers at once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mnist_ignite.errors import ConfigError

__all__ = [
    "DEFAULT_HANDLERS",
    "DEVICES",
    "PIPELINES",
    "PRECISIONS",
    "RUN_DEFINING",
    "Config",
    "ConfigError",
    "Setting",
    "check_settings",
    "check_value",
    "default_data_dir",
    "flat_settings",
    "is_device_name",
    "settings",
    "short_value",
    "value_type",
]

# Enabled unless switched off, attached in this order: NaN guard first (it sees a diverged epoch
# before anything records it), then the seed's schedule, checkpoints, metrics files, progress, plots.
DEFAULT_HANDLERS = ("nan_guard", "lr_schedule", "checkpoint", "history", "progress", "plots")
# what makes a run the run it is: a resume keeps these (checked against the checkpoint, adopted from config.json)
RUN_DEFINING = (
    "model",
    "model_args",
    "max_train_samples",
    "max_eval_samples",
    "batch_size",
    "seed",
    "lr",
    "momentum",
    "optimizer",
    "weight_decay",
    "grad_clip",
    "accumulate",
    "augment",
    "pipeline",
    "precision",
)
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PIPELINES = ("tensor", "torchvision")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
MAX_WORKERS = 4 * (os.cpu_count() or 1)


def default_data_dir() -> str:
    """``$MNIST_IGNITE_DATA`` or ``./data``."""
    return os.environ.get("MNIST_IGNITE_DATA", "./data")


@dataclass(frozen=True)
class Setting:
    """How a :class:`Config` field shows on the command line and what values it accepts."""

    help: str
    group: str
    rule: str = ""  # "must be ..." text, shown when ``check`` fails
    check: Callable[[Any], bool] | None = None
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    flag: str | None = None  # default: --name-with-dashes; for a True-by-default switch: --no-name
    accepts: tuple[str, ...] = ()  # words accepted besides values of the field's type (lr: "auto")
    const: Any = None  # a flag that may come without its value means this (TOML: true)


def _setting(default: Any = None, *, factory: Callable[[], Any] | None = None, **meta: Any) -> Any:
    kwargs: dict[str, Any] = {"metadata": {"setting": Setting(**meta)}}
    if factory is not None:
        kwargs["default_factory"] = factory
    else:
        kwargs["default"] = default
    return field(**kwargs)


def _seed_list(text: str) -> list[int] | None:
    """``"1,2,3"`` -> [1, 2, 3]; None when it is not a list of distinct seeds."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        return None
    ok = seeds and len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)
    return seeds if ok else None


def is_device_name(v: Any) -> bool:
    """The form of a torch device string, checked without importing torch (--help stays instant)."""
    return isinstance(v, str) and re.fullmatch(r"auto|[a-z][a-z0-9_]*(:\d+)?", v) is not None


def _positive(v: Any) -> bool:
    return v > 0


def _at_least_one_or_none(v: Any) -> bool:
    return v is None or v >= 1


@dataclass(frozen=True)
class Config:
    """Every setting of a run. The defaults are the seed's recipe.

    Frozen: a run's settings are decided once (:func:`mnist_ignite.core.resolve.resolve`) and
    never changed afterwards; a changed copy is ``dataclasses.replace(config, lr=0.05)``.
    """

    data_dir: str = _setting(
        factory=default_data_dir,
        help="MNIST root holding MNIST/raw/*-ubyte (env MNIST_IGNITE_DATA); downloaded there if absent",
        group="data",
    )
    download: bool = _setting(True, help="never download MNIST", group="data", flag="--no-download")
    max_train_samples: int | None = _setting(
        None,
        help="train on the first N images only",
        group="data",
        check=_at_least_one_or_none,
        rule="must be >= 1",
        metavar="N",
    )
    max_eval_samples: int | None = _setting(
        None,
        help="evaluate on the first N test images",
        group="data",
        check=_at_least_one_or_none,
        rule="must be >= 1",
        metavar="N",
    )
    pipeline: str = _setting(
        "tensor",
        help="tensor: MNIST on the device, batched augmentation; torchvision: the seed's PIL DataLoader",
        group="data",
        choices=PIPELINES,
    )
    num_workers: int = _setting(
        2,
        help=f"DataLoader worker processes (torchvision pipeline; at most {MAX_WORKERS} here)",
        group="data",
        check=lambda v: 0 <= v <= MAX_WORKERS,
        rule=f"must be between 0 and {MAX_WORKERS} (4 x the CPU count)",
    )
    epochs: int = _setting(20, help="training epochs", group="training", check=_positive, rule="must be > 0")
    batch_size: int = _setting(
        64, help="global training batch (split evenly across processes)", group="training", check=_positive,
        rule="must be > 0",
    )  # fmt: skip
    eval_batch_size: int = _setting(
        1000, help="evaluation batch", group="training", check=_positive, rule="must be > 0"
    )
    lr: float = _setting(
        0.01,
        help="SGD learning rate, or auto: run the lr finder (mnist-ignite lr-find) first and use its suggestion "
        "(recorded in config.json and OUTPUT/lr_find.json)",
        group="training",
        check=lambda v: v == "auto" or (v > 0 and math.isfinite(v)),
        rule="must be a finite number > 0, or auto",
        accepts=("auto",),
    )
    momentum: float = _setting(
        0.9, help="SGD momentum", group="training", check=lambda v: 0 <= v < 1, rule="must be in [0, 1)"
    )
    optimizer: str = _setting(
        "sgd",
        help="torch.optim's SGD (with --momentum), Adam, AdamW or Adadelta, with their default betas/rho; "
        "the seed's is SGD",
        group="training",
        choices=OPTIMIZERS,
    )
    weight_decay: float = _setting(
        0.0,
        help="L2 penalty (decoupled for adamw), the optimizer's weight_decay",
        group="training",
        check=lambda v: 0 <= v < math.inf,
        rule="must be a finite number >= 0",
    )
    grad_clip: float | None = _setting(
        None,
        help="clip the gradients' total norm to this before each update (torch.nn.utils.clip_grad_norm_)",
        group="training",
        check=lambda v: v is None or 0 < v < math.inf,
        rule="must be a finite number > 0",
        metavar="NORM",
    )
    accumulate: int = _setting(
        1,
        help="update once every N batches, their gradients averaged (an effective batch of N x --batch-size)",
        group="training",
        check=_positive,
        rule="must be > 0",
        metavar="N",
    )
    augment: bool = _setting(
        True, help="train without the seed's random rotation and scale", group="data", flag="--no-augment"
    )
    seed: int = _setting(
        1,
        help="seed for weights, data order and augmentation",
        group="training",
        check=lambda v: 0 <= v < 2**63,
        rule="must be between 0 and 2**63 - 1",
    )
    device: str = _setting(
        "auto",
        help="auto = the accelerator torch reports (cuda, mps, xpu, ...), else cpu; or a device type with an "
        "optional index (cpu, cuda, cuda:1, mps, xpu)",
        group="training",
        check=is_device_name,
        rule="must be auto, cpu, or a device type with an optional index (cuda:1)",
    )
    precision: str = _setting(
        "auto",
        help="autocast dtype; auto = bf16 where the hardware runs it natively, fp16 on pre-Ampere GPUs, else fp32",
        group="training",
        choices=PRECISIONS,
    )
    channels_last: bool = _setting(
        True,
        help="keep NCHW memory layout (channels_last is faster for convolutions)",
        group="training",
        flag="--no-channels-last",
    )
    compile: bool = _setting(False, help="torch.compile the model's forward", group="training")
    cuda_graphs: bool = _setting(
        True,
        help="on CUDA, run the train step eagerly instead of replaying it as a CUDA graph",
        group="training",
        flag="--no-cuda-graphs",
    )
    cudnn_benchmark: bool = _setting(
        False, help="let cuDNN autotune its kernels (costs seconds at start-up)", group="training"
    )
    output_dir: str = _setting("", help="run folder (default runs/<timestamp>)", group="output and resume")
    overwrite: bool = _setting(
        False, help="replace the run already in --output-dir (its files only)", group="output and resume"
    )
    resume: str | None = _setting(
        None,
        help="continue from the newest checkpoint in --output-dir (auto) or from PATH",
        group="output and resume",
        metavar="auto|PATH",
    )
    trust_code: bool = _setting(
        False,
        help="let a run's config.json or a checkpoint name the model code to import (module:Attr, file.py:Attr); "
        "without it only built-in and installed (entry-point) models are rebuilt from files",
        group="output and resume",
    )
    resume_force: bool = _setting(
        False,
        help="resume even when data subsets, seed, optimizer, lr, pipeline or precision differ from the checkpoint's "
        "(never the iterations per epoch: --batch-size, --max-train-samples and --nproc-per-node stay)",
        group="output and resume",
    )
    nproc_per_node: int = _setting(
        1,
        help="processes to spawn on this machine (data-parallel)",
        group="distributed (ignite.distributed)",
        check=_positive,
        rule="must be > 0",
    )
    backend: str | None = _setting(
        None,
        help="default nccl on CUDA, gloo on CPU",
        group="distributed (ignite.distributed)",
        choices=("gloo", "nccl"),
    )
    nnodes: int = _setting(
        1,
        help="machines taking part (with --node-rank)",
        group="distributed (ignite.distributed)",
        check=_positive,
        rule="must be > 0",
    )
    node_rank: int = _setting(
        0, help="this machine's index", group="distributed (ignite.distributed)", check=lambda v: v >= 0,
        rule="must be >= 0",
    )  # fmt: skip
    master_addr: str = _setting(
        "127.0.0.1", help="address of the node-rank 0 machine", group="distributed (ignite.distributed)"
    )
    master_port: int = _setting(
        29500,
        help="its free TCP port",
        group="distributed (ignite.distributed)",
        check=lambda v: 0 < v < 65536,
        rule="must be a TCP port (1-65535)",
    )
    log_every: int | None = _setting(
        None,
        help="a timestamped line every N iterations (loss, acc, img/s since the last line); by default 10 per "
        "epoch when stdout is not a terminal (a log, CI), none on one (the bar shows it); 0: never",
        group="output and resume",
        check=lambda v: v is None or v >= 0,
        rule="must be >= 0",
        metavar="N",
    )
    target_acc: float | None = _setting(
        None,
        help="stop when test accuracy reaches this %% and record the epoch and seconds it took (time-to-accuracy)",
        group="experiments and debugging",
        check=lambda v: v is None or 0 < v <= 100,
        rule="must be a percentage in (0, 100]",
        metavar="PCT",
    )
    repeat: int | None = _setting(
        None,
        help="run the same settings with N seeds (--seed, --seed+1, ...), each in OUTPUT/seed-S; summary.json "
        "and a table give mean ± std",
        group="experiments and debugging",
        check=_at_least_one_or_none,
        rule="must be >= 1",
        metavar="N",
    )
    seeds: str | None = _setting(
        None,
        help="like --repeat, with these seeds (comma-separated, e.g. 1,2,3)",
        group="experiments and debugging",
        check=lambda v: v is None or _seed_list(v) is not None,
        rule="must be distinct comma-separated seeds in [0, 2**63), e.g. 1,2,3",
        metavar="S,S,...",
    )
    fast_dev_run: int | None = _setting(
        None,
        help="smoke test: N training batches and N evaluation batches (1 without N) through every enabled "
        "handler, in a temporary folder that is removed; lists the handlers that never ran; exit 0 when all works",
        group="experiments and debugging",
        check=_at_least_one_or_none,
        rule="must be >= 1",
        metavar="N",
        const=1,
    )
    overfit_batches: int | None = _setting(
        None,
        help="train and evaluate on the same first N batches, without augmentation: a model that cannot "
        "overfit them is broken",
        group="experiments and debugging",
        check=_at_least_one_or_none,
        rule="must be >= 1",
        metavar="N",
    )
    model: str = _setting(
        "seed",
        help="the network: seed (the ERA Session 5 Net), package.module:Attr, path/file.py:Attr, or an "
        "mnist_ignite.models entry point; it maps (B, 1, 28, 28) to (B, 10) log-probabilities or logits",
        group="model",
        metavar="SPEC",
    )
    # --model-arg key=value (repeatable) or a [model] TOML table: the model's constructor keywords
    model_args: dict[str, Any] = field(default_factory=dict)
    # chosen with --handler/--no-handler (and the switches), not flags of their own
    handlers: list[str] = field(default_factory=lambda: list(DEFAULT_HANDLERS))
    options: dict[str, Any] = field(default_factory=dict)  # plugin options by dest name
    # the settings the user named (flags, TOML keys, keywords): a resumed run adopts the others from its config.json
    given: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        del values["given"]
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def flat_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings (``Config.to_dict()`` or its config.json) as one flat mapping.

    Handler options sit beside the core settings, nested tables become dotted keys
    (``model_args.width``) and lists are joined with commas: what a table of runs or a tracker's
    parameter list can show.
    """
    merged = {k: v for k, v in values.items() if k != "options"} | dict(values.get("options") or {})
    flat: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                put(f"{key}.{k}", v)
        elif isinstance(value, (list, tuple)):
            flat[key] = ",".join(map(str, value))
        else:
            flat[key] = value

    for key, value in merged.items():
        put(key, value)
    return flat


def short_value(value: Any) -> str:
    """A setting as a line or table shows it: floats to 4 significant digits (files keep them whole)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def settings() -> list[tuple[dataclasses.Field, Setting]]:
    """The declared settings of :class:`Config`, in declaration order."""
    return [(f, f.metadata["setting"]) for f in dataclasses.fields(Config) if "setting" in f.metadata]


def value_type(f: dataclasses.Field) -> type:
    """The field's value type (``int | None`` -> int)."""
    return {"int": int, "float": float, "str": str, "bool": bool}[str(f.type).split("|")[0].strip()]


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def check_value(name: str, kind: type, value: Any) -> Any:
    """``value`` if it has type ``kind`` (an int is a float too; a bool is not a number), else a ConfigError."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{name} must be {_TYPE_WORDS.get(kind, kind.__name__)}, got {value!r}")
    return value


def check_settings(config: Config) -> None:
    """Every declared setting has its type and passes its rule (for TOML files and Python callers)."""
    for f, s in settings():
        value = getattr(config, f.name)
        if value is None and f.default is None:
            continue
        name = s.flag or "--" + f.name.replace("_", "-")
        if value in s.accepts:
            continue
        check_value(name, value_type(f), value)
        if s.choices is not None and value not in s.choices:
            raise ConfigError(f"{name} must be one of {', '.join(map(str, s.choices))}, got {value!r}")
        if s.check is not None and not s.check(value):
            raise ConfigError(f"{name} {s.rule}, got {value!r}")
