"""Command line: ``mnist-ignite`` and ``python examples/train_mnist.py`` (the same entry point).

``mnist-ignite [OPTIONS]`` trains; ``mnist-ignite COMMAND ...`` runs a subcommand
(:mod:`mnist_ignite.commands`, or a handler's own command such as ``visdom``).

Every core option is derived from the :class:`~mnist_ignite.config.Config` declarations. Parsing
happens in two passes, like pytest's addoption: the first finds ``--config`` and the enabled
handlers, the second adds each enabled handler's own options and parses everything. Settings
come from defaults < the TOML file < flags. Torch and Ignite load only when a run starts, so
``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnist_ignite.commands import COMMANDS, load_command
from mnist_ignite.commands.common import HelpFormatter, Parser, flag_type
from mnist_ignite.config import (
    DEFAULT_HANDLERS,
    Config,
    ConfigError,
    check_settings,
    check_value,
    read_toml,
    settings,
    value_type,
)

__all__ = ["build_parser", "main", "parse_config"]

PROG = "mnist-ignite"
# shortcuts for switching handlers on and off: flag -> (handler, enable)
SWITCHES = {
    "visdom": ("visdom", True),
    "plots": ("plots", True),
    "no_plots": ("plots", False),
    "no_progress": ("progress", False),
}


def _option_type(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A handler option's type for argparse: its ValueError's own words become the message."""

    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError as err:
            words = str(err) if kind not in (int, float) else f"{text!r} is not a valid {kind.__name__}"
            raise argparse.ArgumentTypeError(words) from None

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


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


def _commands_epilog() -> str:
    width = max(len(n) for n in COMMANDS) if COMMANDS else 0
    lines = [f"  {PROG} {name:<{width}}  {text}" for name, (_, text) in sorted(COMMANDS.items())]
    return "commands (each has its own --help):\n" + "\n".join(lines) + "\n\n" if lines else ""


def build_parser(plugin_classes: Sequence[tuple[str, type]] = ()) -> argparse.ArgumentParser:
    """The full parser: core options (from ``Config``), handler selection, each enabled handler's options."""
    parser = Parser(
        prog=PROG,
        description="Train the ERA Session 5 MNIST CNN on PyTorch Ignite engines, with plugins. "
        "Defaults are the seed's recipe: SGD lr 0.01 momentum 0.9, StepLR(15, 0.1), batch 64, 20 epochs.",
        epilog=_commands_epilog()
        + "Outputs in OUTPUT: config.json, metrics.json/.csv, checkpoints/, plots/, final_model.pt.\n"
        "Exit codes: 0 done, 1 run failed, 2 bad usage, 130/143 interrupted (resumable).",
        formatter_class=HelpFormatter,
    )
    groups: dict[str, Any] = {}
    defaults = Config()
    for f, s in settings():
        g = groups.get(s.group) or groups.setdefault(s.group, parser.add_argument_group(s.group))
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            if default:
                g.add_argument(s.flag or f"--no-{f.name}", dest=f.name, action="store_false", help=s.help)
            else:
                g.add_argument(s.flag or f"--{f.name.replace('_', '-')}", dest=f.name, action="store_true", help=s.help)
            continue
        kind = value_type(f)
        g.add_argument(
            s.flag or f"--{f.name.replace('_', '-')}",
            dest=f.name,
            default=default,
            type=flag_type(kind, s.check, s.rule, s.accepts) if kind is not str else str,
            choices=s.choices,
            metavar=s.metavar,
            help=s.help,
        )
    groups["model"].add_argument(
        "--model-arg",
        dest="model_arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword for the model's constructor (repeatable; values are Python literals)",
    )
    _selection_args(parser)
    core = {a.dest for a in parser._actions}
    for spec, cls in plugin_classes:
        options = getattr(cls, "options", ())
        if not options:
            continue
        g = parser.add_argument_group(f"handler {spec}", getattr(cls, "description", None))
        for opt in options:
            if opt.dest in core:
                from mnist_ignite.plugins import PluginLoadError

                raise PluginLoadError(f"handler {spec!r}: option --{opt.name} clashes with a core option")
            kwargs: dict[str, Any] = {"dest": opt.dest, "default": opt.default, "help": opt.help or " "}
            if opt.type is bool:
                g.add_argument(f"--{opt.name}", action=argparse.BooleanOptionalAction, **kwargs)
            else:
                g.add_argument(f"--{opt.name}", type=_option_type(opt.type), choices=opt.choices, **kwargs)
            core.add(opt.dest)
    return parser


def _names(toml: dict[str, Any], key: str, path: str) -> list[str]:
    value = toml.pop(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{path}: {key} must be a list of handler names, e.g. {key} = ["visdom"], got {value!r}')
    return value


def _enabled_handlers(pre: argparse.Namespace, toml: dict[str, Any], path: str) -> list[str]:
    from mnist_ignite.plugins import check_handler_name

    names = list(DEFAULT_HANDLERS)
    changes = [(h, True) for h in _names(toml, "handlers", path)] + [
        (h, False) for h in _names(toml, "no_handlers", path)
    ]
    changes += [(h, True) for h in pre.handler] + [(h, False) for h in pre.no_handler]
    for flag, change in SWITCHES.items():
        value = toml.pop(flag, None)
        if value is not None:
            check_value(f"{path}: {flag}", bool, value)
        if value or getattr(pre, flag):
            changes.append(change)
    for name, enable in changes:
        if not enable and name not in names:
            check_handler_name(name)  # a typo in --no-handler must not pass silently
        if enable and name not in names:
            names.append(name)
        elif not enable and name in names:
            names.remove(name)
    return names


def _toml_values(
    path: str, top: dict[str, Any], tables: dict[str, dict[str, Any]], classes: Sequence[tuple[str, type]]
) -> dict[str, Any]:
    """Type-checked TOML values: core settings at the top, handler options in their ``[handler]`` table."""
    core = {f.name: f for f, _ in settings()}
    values: dict[str, Any] = {}
    for key, value in top.items():
        if key not in core:
            close = difflib.get_close_matches(key, list(core), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{path}: unknown setting(s) {key}{hint}")
        kind = value_type(core[key])
        accepted = core[key].metadata["setting"].accepts
        values[key] = value if value in accepted else check_value(f"{path}: {key}", kind, value)
    by_handler = {spec: cls for spec, cls in classes} | {getattr(cls, "name", spec): cls for spec, cls in classes}
    for table, entries in tables.items():
        if table == "model":  # spec = "..." and the model's constructor keywords
            entries = dict(entries)
            if "spec" in entries:
                values["model"] = check_value(f"{path}: [model] spec", str, entries.pop("spec"))
            values["model_args"] = entries
            continue
        if table not in by_handler:
            raise ConfigError(f"{path}: [{table}] is not an enabled handler (enabled: {', '.join(by_handler)})")
        for key, value in entries.items():
            if key in core:
                raise ConfigError(f"{path}: [{table}] sets {key}, a core setting: put it at the top of the file")
            own = {o.dest: o for o in getattr(by_handler[table], "options", ())}
            if key not in own:
                raise ConfigError(f"{path}: [{table}] has no option {key} (options: {', '.join(own) or 'none'})")
            opt = own[key]
            if opt.type in (int, float, str, bool):
                value = check_value(f"{path}: [{table}] {key}", opt.type, value)
            if opt.choices is not None and value not in opt.choices:
                raise ConfigError(f"{path}: [{table}] {key} must be one of {', '.join(map(str, opt.choices))}")
            values[key] = value
    return values


def parse_config(argv: Sequence[str]) -> Config:
    """Parse flags (and ``--config``) into a :class:`Config`; usage errors exit 2 via argparse."""
    from mnist_ignite.plugins import load_plugin_class

    pre_parser = argparse.ArgumentParser(add_help=False)
    _selection_args(pre_parser)
    pre, _ = pre_parser.parse_known_args(argv)
    top, tables = read_toml(pre.config) if pre.config else ({}, {})
    names = _enabled_handlers(pre, top, pre.config or "")
    classes = [(spec, load_plugin_class(spec)) for spec in names]
    parser = build_parser(classes)
    toml_values = _toml_values(pre.config or "", top, tables, classes)
    model_args = toml_values.pop("model_args", {})
    parser.set_defaults(**toml_values)
    values = vars(parser.parse_args(argv))
    config = Config(**{f.name: values[f.name] for f, _ in settings()})
    from mnist_ignite.models import parse_model_arg

    config.model_args = model_args | dict(parse_model_arg(a) for a in values["model_arg"])
    config.handlers = names
    config.options = {o.dest: values[o.dest] for _, cls in classes for o in getattr(cls, "options", ())}
    check_settings(config)
    return config


def _list_handlers() -> None:
    from mnist_ignite.plugins import PluginLoadError, available_plugins, load_plugin_class

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
        if arg.startswith(("--resume=", "--output-dir=")) or arg == "--overwrite":
            continue
        kept.append(arg)
    return shlex.join([PROG, *kept, "--output-dir", str(output_dir), "--resume", "auto"])


def _plugin_command(argv: Sequence[str]) -> int | None:
    """``mnist-ignite NAME ...`` where handler NAME defines ``command(argv) -> int``."""
    from mnist_ignite.plugins import PluginLoadError, available_plugins, load_plugin_class

    if not argv or argv[0].startswith("-") or argv[0] not in available_plugins():
        return None
    cls = load_plugin_class(argv[0])
    command = getattr(cls, "command", None)
    if command is None:
        raise PluginLoadError(f"handler {argv[0]!r} has no command; did you mean --handler {argv[0]}?")
    return int(command(list(argv[1:])))


def _exit_code(err: BaseException) -> tuple[int, str] | None:
    """Exit code and message for the errors a user can cause; None for a bug (its traceback is shown)."""
    from mnist_ignite.files import CheckpointLoadError, OutputWriteError
    from mnist_ignite.plugins import PluginError, PluginLoadError, StopTraining
    from mnist_ignite.rundir import RunDirError

    if isinstance(err, (ConfigError, PluginLoadError, RunDirError)):
        return 2, f"{PROG}: error: {err}"
    if isinstance(err, (CheckpointLoadError, OutputWriteError, PluginError)):
        return 1, f"{PROG}: error: {err}"
    from mnist_ignite.lr_find import LRFindError

    if isinstance(err, LRFindError):
        return 1, f"{PROG}: error: {err}"
    if isinstance(err, StopTraining):
        return err.exit_code, f"{PROG}: stopped: {err}"
    # these modules need torch: only a run (or a command) that already loaded it gets here
    from mnist_ignite.data import DataError
    from mnist_ignite.run import Interrupted

    if isinstance(err, DataError):
        return 1, f"{PROG}: error: {err}"
    if isinstance(err, Interrupted):
        return err.exit_code, str(err)
    return None


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
        if config.repeat or config.seeds:
            from mnist_ignite.repeats import run_repeats

            run_repeats(config, plugins)
        else:
            from mnist_ignite.run import train

            train(config, plugins)
        return 0
    except KeyboardInterrupt:  # a second Ctrl-C while stopping: nothing more is saved
        print(
            f"{PROG}: interrupted again: stopped at once, without saving; the last checkpoint on disk is "
            "the newest complete one",
            file=sys.stderr,
        )
        return 130
    except Exception as err:
        handled = _exit_code(err)
        if handled is None:
            raise
        code, message = handled
        if code in (130, 143):
            message = f"{PROG}: {err}\nresume with:\n  {_resume_command(argv, err.output_dir)}"  # type: ignore[attr-defined]
        print(message, file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
