"""One settings object for a run: defaults < TOML file (``--config``) < command-line flags."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_ignite.data import default_data_dir

__all__ = ["DEFAULT_HANDLERS", "Config", "ConfigError", "read_toml"]

# Enabled unless switched off: the seed's schedule, checkpoints, metrics files, progress, plots, NaN guard.
DEFAULT_HANDLERS = ("lr_schedule", "checkpoint", "history", "progress", "plots", "nan_guard")


class ConfigError(ValueError):
    """A bad setting (usage error: exit 2)."""


@dataclass
class Config:
    """Every setting of a run. The defaults are the seed's recipe."""

    data_dir: str = field(default_factory=default_data_dir)  # MNIST root (holds MNIST/raw)
    output_dir: str = ""  # run folder; "" = runs/<timestamp>
    epochs: int = 20
    batch_size: int = 64  # global batch, split across processes
    eval_batch_size: int = 1000
    lr: float = 0.01
    momentum: float = 0.9
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | mps
    num_workers: int = 2  # DataLoader workers (torchvision pipeline)
    max_train_samples: int | None = None  # first N training images
    max_eval_samples: int | None = None  # first N test images
    download: bool = True  # fetch MNIST when the files are absent
    pipeline: str = "tensor"  # tensor (device-resident) | torchvision (the seed's PIL loader)
    precision: str = "auto"  # auto | fp32 | bf16
    channels_last: bool = True
    compile: bool = False
    cuda_graphs: bool = True  # replay the train step as a CUDA graph (CUDA, one process)
    cudnn_benchmark: bool = False  # autotune cuDNN kernels: seconds of start-up for small convs
    resume: str | None = None  # auto | path to a checkpoint
    nproc_per_node: int = 1
    backend: str | None = None  # gloo | nccl; default by device
    nnodes: int = 1  # machines, when idist.Parallel spawns (torchrun sets these itself)
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    handlers: list[str] = field(default_factory=lambda: list(DEFAULT_HANDLERS))
    options: dict[str, Any] = field(default_factory=dict)  # plugin options by dest name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a run file; keys are option names with ``-`` or ``_`` (``batch-size`` = ``batch_size``)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # [handler-name] tables hold that handler's options
            flat.update({k.replace("-", "_"): v for k, v in value.items()})
        else:
            flat[key.replace("-", "_")] = value
    return flat
