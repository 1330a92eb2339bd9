"""The command line of a run, derived from the :class:`~mnist_ignite.config.settings.Config` declarations.

Parsing happens in two passes, like pytest's addoption: the first finds ``--config`` and the
enabled handlers, the second adds each enabled handler's own options and parses everything.
Settings come from defaults < the TOML file < flags. Nothing here imports torch or Ignite, so
``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from mnist_ignite.config.settings import DEFAULT_HANDLERS, Config, check_settings, check_value, settings, value_type
from mnist_ignite.config.toml import read_toml
from mnist_ignite.discovery.handlers import check_handler_name, load_plugin_class, option_owner, unknown_option
from mnist_ignite.errors import ConfigError, did_you_mean
from mnist_ignite.log import PROG, note

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
    g.add_argument(
        "--debug", action="store_true", help="show the full traceback of any failure (env MNIST_IGNITE_DEBUG=1)"
    )
    g.add_argument("--visdom", action="store_true", default=None, help="live Visdom dashboard (handler 'visdom')")
    g.add_argument("--plots", action="store_true", default=None, help="matplotlib PNGs in OUTPUT/plots (default on)")
    g.add_argument("--no-plots", action="store_true", default=None, help="no matplotlib plots")
    g.add_argument(
        "--no-progress", action="store_true", default=None, help="no progress bar (the per-epoch lines stay)"
    )


def build_parser(plugin_classes: Sequence[tuple[str, type]] = (), commands: str = "") -> argparse.ArgumentParser:
    """The full parser: core options (from ``Config``), handler selection, each enabled handler's options.

    ``commands`` is the list of subcommands for ``--help`` (the command line's dispatcher knows them).
    """
    parser = Parser(
        prog=PROG,
        description="Train the ERA Session 5 MNIST CNN on PyTorch Ignite engines, with plugins. "
        "Defaults are the seed's recipe: SGD lr 0.01 momentum 0.9, StepLR(15, 0.1), batch 64, 20 epochs.",
        epilog=commands + "Outputs in OUTPUT: config.json, metrics.json/.csv, checkpoints/, plots/, final_model.pt.\n"
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
            **({"nargs": "?", "const": s.const} if s.const is not None else {}),
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
    core = {a.dest for a in parser._actions}  # argparse has no public list of its actions
    for spec, cls in plugin_classes:
        options = getattr(cls, "options", ())
        if not options:
            continue
        g = parser.add_argument_group(f"handler {spec}", getattr(cls, "description", None))
        for opt in options:
            if opt.dest in core:
                from mnist_ignite.errors import PluginLoadError

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
    enabled = [spec for spec, _ in classes]
    for key, value in top.items():
        if key not in core:
            owner = option_owner(key)
            if owner is not None:
                where = "under [" + owner + "]" if owner in enabled else f"under [{owner}], with {owner} enabled"
                raise ConfigError(f"{path}: {key} is an option of handler {owner!r}: put it {where}")
            raise ConfigError(f"{path}: unknown setting {key}{did_you_mean(key, core)}")
        kind = value_type(core[key])
        setting = core[key].metadata["setting"]
        accepted = setting.accepts
        if setting.const is not None and isinstance(value, bool):  # fast_dev_run = true
            value = setting.const if value else None
        if value is None:
            values[key] = None
            continue
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
                listed = ", ".join(own) or "none"
                raise ConfigError(f"{path}: [{table}] has no option {key}{did_you_mean(key, own)} (options: {listed})")
            values[key] = check_option(own[key], value, f"{path}: [{table}] {key}")
    return values


def parse_config(argv: Sequence[str], commands: str = "") -> Config:
    """Parse flags (and ``--config``) into a :class:`Config`; usage errors exit 2 via argparse.

    ``commands``: the subcommands listed by ``--help``.
    """
    pre_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _selection_args(pre_parser)
    pre, _ = pre_parser.parse_known_args(argv)
    top, tables = read_toml(pre.config) if pre.config else ({}, {})
    names = _enabled_handlers(pre, top, pre.config or "")
    classes = [(spec, load_plugin_class(spec)) for spec in names]
    parser = build_parser(classes, commands)
    flags = [f for a in parser._actions for f in a.option_strings]  # argparse keeps its actions in _actions
    parser.unknown = lambda flag: unknown_option(flag.lstrip("-").replace("-", "_"), names, flag, flags)
    toml_values = _toml_values(pre.config or "", top, tables, classes)
    model_args = toml_values.pop("model_args", {})
    parser.set_defaults(**toml_values)
    values = vars(parser.parse_args(argv))
    named = {
        a.dest
        for a in parser._actions  # argparse keeps its actions in _actions
        for arg in argv
        for flag in a.option_strings
        if arg == flag or arg.startswith(flag + "=")
    }
    _command_line_wins(values, named, set(toml_values), pre.config or "")
    config = Config(
        given=frozenset(named | set(toml_values) | ({"model_args"} if model_args or values["model_arg"] else set())),
        **{f.name: values[f.name] for f, _ in settings()},
        model_args=model_args | dict(parse_model_arg(a) for a in values["model_arg"]),
        handlers=names,
        options={o.dest: values[o.dest] for _, cls in classes for o in getattr(cls, "options", ())},
    )
    check_settings(config)
    return config


# settings that contradict each other: the one named on the command line beats the other from the TOML file
_CONTRADICTING = {
    ("resume", "overwrite"): "overwrite = true left out: --resume on the command line continues the run",
    ("overwrite", "resume"): "resume left out: --overwrite on the command line replaces the run",
}


def _command_line_wins(values: dict[str, Any], named: set[str], from_toml: set[str], path: str) -> None:
    """``--resume auto`` on the command line continues the run even when the ``--config`` file says
    ``overwrite = true`` (the resume command a stopped run prints must work as printed), and the other way round."""
    for (flag, other), why in _CONTRADICTING.items():
        if flag in named and values.get(flag) and other in from_toml and other not in named and values.get(other):
            values[other] = None if other == "resume" else False
            note(f"{path}: {why}")


class Parser(argparse.ArgumentParser):
    """Short errors with a hint (whose option it is, or "did you mean"), instead of the whole usage block.

    Abbreviated flags are refused (``--overw`` is not ``--overwrite``): a script keeps meaning what it says
    when a new flag arrives. ``unknown(flag)`` words the error for an unknown flag.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.unknown: Callable[[str], str] | None = None

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            unknown = [a.split("=")[0] for a in message.split(":", 1)[1].split() if a.startswith("-")]
            flags = [s for a in self._actions for s in a.option_strings]
            hints = [
                self.unknown(arg) if self.unknown else f"unknown option {arg}{did_you_mean(arg, flags)}"
                for arg in unknown
            ]
            if hints:
                message = "; ".join(hints)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def check_option(option: Any, value: Any, where: str) -> Any:
    """``value`` for a handler ``option`` from a TOML file or a keyword: its type, its own rule, its choices.

    A custom type (``Option("warmup-iters", non_negative_int)``) is applied to the value's text, so
    a TOML file and ``Model(...)`` are checked exactly as the command line checks the flag.
    """
    if option.type in (int, float, str, bool):
        value = check_value(where, option.type, value)
    elif value is not None:
        try:
            value = option.type(str(value))
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{where}: {err}") from None
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(str, option.choices))}, got {value!r}")
    return value


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not for switches or empty values)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or isinstance(default, bool) or default in ("", []) or default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action) or ""


class HelpFormatter(DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The same, keeping the description's own line breaks (the main command's examples)."""


def flag_type(
    kind: type, check: Callable[[Any], bool] | None, rule: str, accepts: tuple[str, ...] = ()
) -> Callable[[str], Any]:
    """An argparse ``type`` from a value type and its rule (``check``), with one-line messages."""

    def parse(text: str) -> Any:
        if text in accepts:
            return text
        try:
            value = kind(text)
        except ValueError:
            words = "".join(f" or {w}" for w in accepts)
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}{words}") from None
        if check is not None and (value != value or not check(value)):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def parse_model_arg(text: str) -> tuple[str, Any]:
    """``key=value`` -> (key, value); the value is a Python literal (``16``, ``0.1``, ``True``) or else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise ConfigError(f"--model-arg wants key=value (e.g. --model-arg width=16), got {text!r}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value
