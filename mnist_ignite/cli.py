"""Command line: ``mnist-ignite`` and ``python examples/train_mnist.py`` (the same entry point).

Parsing happens in two passes, like pytest's addoption: the first finds ``--config`` and the
enabled handlers, the second adds each enabled handler's own options to ``--help`` and parses
everything. Settings come from defaults < the TOML file < flags. ``mnist-ignite NAME ...``
runs a plugin's own command when it has one (``mnist-ignite visdom``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnist_ignite.commands import COMMANDS, load_command
from mnist_ignite.config import DEFAULT_HANDLERS, Config, ConfigError, read_toml
from mnist_ignite.data import DataError, default_data_dir
from mnist_ignite.engine import DEVICES, PRECISIONS
from mnist_ignite.files import CheckpointLoadError, OutputWriteError
from mnist_ignite.plugins import PluginError, PluginLoadError, StopTraining, available_plugins, load_plugin_class
from mnist_ignite.run import PIPELINES, Interrupted, train

__all__ = ["build_parser", "main", "parse_config"]

PROG = "mnist-ignite"
# shortcuts for switching handlers on and off: flag -> (handler, enable)
SWITCHES = {
    "visdom": ("visdom", True),
    "plots": ("plots", True),
    "no_plots": ("plots", False),
    "no_progress": ("progress", False),
}


def _number(kind: Callable[[str], Any], minimum: float, strict: bool) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if value != value or (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


positive_int = _number(int, 0, strict=True)
non_negative_int = _number(int, 0, strict=False)
positive_float = _number(float, 0.0, strict=True)
non_negative_float = _number(float, 0.0, strict=False)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not for switches or empty values)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or isinstance(default, bool) or default in ("", []) or default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action) or ""


def _selection_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("handlers (plugins)")
    g.add_argument("--config", metavar="RUN.toml", help="TOML file setting any option below; flags override it")
    g.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="SPEC",
        help="enable a handler: a NAME from --list-handlers, package.module:Attr, or path/file.py:Attr (repeatable)",
    )
    g.add_argument(
        "--no-handler",
        action="append",
        default=[],
        metavar="NAME",
        help=f"disable a handler, including the defaults ({', '.join(DEFAULT_HANDLERS)})",
    )
    g.add_argument("--list-handlers", action="store_true", help="list the available handlers and exit")
    g.add_argument("--visdom", action="store_true", default=None, help="live Visdom dashboard (handler 'visdom')")
    g.add_argument("--plots", action="store_true", default=None, help="matplotlib PNGs in OUTPUT/plots (default on)")
    g.add_argument("--no-plots", action="store_true", default=None, help="no matplotlib plots")
    g.add_argument(
        "--no-progress", action="store_true", default=None, help="no progress bar (the per-epoch lines stay)"
    )


def build_parser(plugin_classes: Sequence[tuple[str, type]] = ()) -> argparse.ArgumentParser:
    """The full parser: core options, handler selection, and each enabled handler's options."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the ERA Session 5 MNIST CNN on PyTorch Ignite engines, with plugins. "
        "Defaults are the seed's recipe: SGD lr 0.01 momentum 0.9, StepLR(15, 0.1), batch 64, 20 epochs.",
        epilog="Outputs in OUTPUT: config.json, metrics.json/.csv, checkpoints/, plots/, final_model.pt. "
        "Exit codes: 0 done, 1 run failed, 2 bad usage, 130/143 interrupted (resumable).",
        formatter_class=_HelpFormatter,
    )
    d = Config()
    g = parser.add_argument_group("data")
    g.add_argument(
        "--data-dir",
        default=default_data_dir(),
        help="MNIST root holding MNIST/raw/*-ubyte (env MNIST_IGNITE_DATA); downloaded there if absent",
    )
    g.add_argument("--no-download", dest="download", action="store_false", help="never download MNIST")
    g.add_argument("--max-train-samples", type=positive_int, metavar="N", help="train on the first N images only")
    g.add_argument("--max-eval-samples", type=positive_int, metavar="N", help="evaluate on the first N test images")
    g.add_argument(
        "--pipeline",
        choices=PIPELINES,
        default=d.pipeline,
        help="tensor: MNIST on the device, batched augmentation; torchvision: the seed's PIL DataLoader",
    )
    g.add_argument(
        "--num-workers",
        type=non_negative_int,
        default=d.num_workers,
        help="DataLoader worker processes (torchvision pipeline)",
    )
    g = parser.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=d.epochs, help="training epochs")
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=d.batch_size,
        help="global training batch (split evenly across processes)",
    )
    g.add_argument("--eval-batch-size", type=positive_int, default=d.eval_batch_size, help="evaluation batch")
    g.add_argument("--lr", type=positive_float, default=d.lr, help="SGD learning rate")
    g.add_argument("--momentum", type=non_negative_float, default=d.momentum, help="SGD momentum")
    g.add_argument("--seed", type=int, default=d.seed, help="seed for weights, data order and augmentation")
    g.add_argument("--device", choices=DEVICES, default=d.device, help="auto = cuda, then mps, then cpu")
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="autocast dtype; auto = bf16 where the hardware runs it natively, else fp32",
    )
    g.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep NCHW memory layout (channels_last is faster for convolutions)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the model's forward")
    g.add_argument(
        "--no-cuda-graphs",
        dest="cuda_graphs",
        action="store_false",
        help="on CUDA, run the train step eagerly instead of replaying it as a CUDA graph",
    )
    g.add_argument(
        "--cudnn-benchmark", action="store_true", help="let cuDNN autotune its kernels (costs seconds at start-up)"
    )
    g = parser.add_argument_group("output and resume")
    g.add_argument("--output-dir", default="", help="run folder (default runs/<timestamp>)")
    g.add_argument(
        "--resume", metavar="auto|PATH", help="continue from the newest checkpoint in --output-dir (auto) or from PATH"
    )
    g = parser.add_argument_group("distributed (ignite.distributed)")
    g.add_argument(
        "--nproc-per-node",
        type=positive_int,
        default=d.nproc_per_node,
        help="processes to spawn on this machine (data-parallel)",
    )
    g.add_argument("--backend", choices=("gloo", "nccl"), help="default nccl on CUDA, gloo on CPU")
    g.add_argument("--nnodes", type=positive_int, default=d.nnodes, help="machines taking part (with --node-rank)")
    g.add_argument("--node-rank", type=non_negative_int, default=d.node_rank, help="this machine's index")
    g.add_argument("--master-addr", default=d.master_addr, help="address of the node-rank 0 machine")
    g.add_argument("--master-port", type=positive_int, default=d.master_port, help="its free TCP port")
    _selection_args(parser)
    core = {a.dest for a in parser._actions}
    for spec, cls in plugin_classes:
        options = getattr(cls, "options", ())
        if not options:
            continue
        g = parser.add_argument_group(f"handler {spec}", getattr(cls, "description", None))
        for opt in options:
            if opt.dest in core:
                raise PluginLoadError(f"handler {spec!r}: option --{opt.name} clashes with a core option")
            kwargs: dict[str, Any] = {"dest": opt.dest, "default": opt.default, "help": opt.help or " "}
            if opt.type is bool:
                g.add_argument(f"--{opt.name}", action=argparse.BooleanOptionalAction, **kwargs)
            else:
                g.add_argument(f"--{opt.name}", type=opt.type, choices=opt.choices, **kwargs)
            core.add(opt.dest)
    return parser


def _enabled_handlers(pre: argparse.Namespace, toml: dict[str, Any]) -> list[str]:
    names = list(DEFAULT_HANDLERS)
    changes = [(h, True) for h in toml.pop("handlers", [])] + [(h, False) for h in toml.pop("no_handlers", [])]
    changes += [(h, True) for h in pre.handler] + [(h, False) for h in pre.no_handler]
    for flag, change in SWITCHES.items():
        if toml.pop(flag, None) or getattr(pre, flag):
            changes.append(change)
    for name, enable in changes:
        if enable and name not in names:
            names.append(name)
        elif not enable and name in names:
            names.remove(name)
    return names


def parse_config(argv: Sequence[str]) -> Config:
    """Parse flags (and ``--config``) into a :class:`Config`; usage errors exit 2 via argparse."""
    pre_parser = argparse.ArgumentParser(add_help=False)
    _selection_args(pre_parser)
    pre, _ = pre_parser.parse_known_args(argv)
    toml = read_toml(pre.config) if pre.config else {}
    names = _enabled_handlers(pre, toml)
    classes = [(spec, load_plugin_class(spec)) for spec in names]
    parser = build_parser(classes)
    known = {a.dest for a in parser._actions}
    unknown = sorted(set(toml) - known)
    if unknown:
        raise ConfigError(f"{pre.config}: unknown setting(s) {', '.join(unknown)}")
    parser.set_defaults(**toml)
    args = parser.parse_args(argv)
    values = vars(args)
    fields = set(Config.__dataclass_fields__)
    config = Config(**{k: v for k, v in values.items() if k in fields and k not in ("handlers", "options")})
    config.handlers = names
    config.options = {o.dest: values[o.dest] for _, cls in classes for o in getattr(cls, "options", ())}
    return config


def _list_handlers() -> None:
    for name in sorted(available_plugins()):
        try:
            description = getattr(load_plugin_class(name), "description", "") or ""
        except PluginLoadError as err:
            description = f"(cannot load: {err})"
        default = " [default]" if name in DEFAULT_HANDLERS else ""
        print(f"{name:<16}{description}{default}")


def _resume_command(argv: Sequence[str], output_dir: Path) -> str:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--resume", "--output-dir"):
            skip = True
            continue
        if arg.startswith(("--resume=", "--output-dir=")):
            continue
        kept.append(arg)
    return shlex.join([PROG, *kept, "--output-dir", str(output_dir), "--resume", "auto"])


def _plugin_command(argv: Sequence[str]) -> int | None:
    """``mnist-ignite NAME ...`` where handler NAME defines ``command(argv) -> int``."""
    if not argv or argv[0].startswith("-") or argv[0] not in available_plugins():
        return None
    cls = load_plugin_class(argv[0])
    command = getattr(cls, "command", None)
    if command is None:
        raise PluginLoadError(f"handler {argv[0]!r} has no command; did you mean --handler {argv[0]}?")
    return int(command(list(argv[1:])))


def main(argv: Sequence[str] | None = None, plugins: Sequence[Any] = ()) -> int:
    """Run the command line; returns the exit code.

    Args:
        argv: arguments (default ``sys.argv[1:]``).
        plugins: ready-made plugin objects to attach too (what examples/custom_handler.py does).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return int(load_command(argv[0])(argv[1:]))
        code = _plugin_command(argv)
        if code is not None:
            return code
        if "--list-handlers" in argv:
            _list_handlers()
            return 0
        config = parse_config(argv)
        train(config, plugins)
        return 0
    except (ConfigError, PluginLoadError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except (DataError, CheckpointLoadError, OutputWriteError, PluginError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except StopTraining as err:
        print(f"{PROG}: stopped: {err}", file=sys.stderr)
        return err.exit_code
    except Interrupted as err:
        print(f"{PROG}: {err}\nresume with:\n  {_resume_command(argv, err.output_dir)}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
