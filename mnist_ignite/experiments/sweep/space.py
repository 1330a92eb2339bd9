"""The sweep file: a search space in TOML, checked whole before any trial, and each trial's command line.

A sweep file has three tables::

    [sweep]                      # how to search: trials, objective, sampler, pruner, ...
    [run]                        # what every trial shares, written as in a run's --config TOML
    [params]                     # what each trial draws: ranges (log scale, step) and choices

A trial's values become command-line words (``--lr 0.0312 --gamma 0.4 --model-arg width=16``)
appended to the words of ``[run]``; :func:`mnist_ignite.cli.parse_config` turns them into the
trial's :class:`~mnist_ignite.config.Config`, so a trial is validated like any run and the same
words, printed, reproduce it. :mod:`mnist_ignite.sweep` runs the study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.config.argv import SWITCHES, parse_config
from mnist_ignite.config.settings import MAX_WORKERS, Config, check_value, settings, value_type
from mnist_ignite.config.toml import load_toml
from mnist_ignite.discovery.handlers import build_plugins, load_plugin_class, option_owner, options_of
from mnist_ignite.errors import ConfigError, PluginLoadError, did_you_mean
from mnist_ignite.log import PROG

if TYPE_CHECKING:
    import optuna

__all__ = [
    "OBJECTIVES",
    "PRUNERS",
    "RESERVED",
    "SAMPLERS",
    "Param",
    "SweepSpec",
    "check_sweep_value",
    "enabled_options",
    "load_spec",
    "param_args",
    "parse_trial",
    "run_table_args",
    "trial_args",
]

# objective -> Optuna direction; "time" is seconds to reach [sweep] target (the core's --target-acc)
OBJECTIVES = {"best": "maximize", "final": "maximize", "time": "minimize"}
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
# settings a sweep decides itself (the trial's folder) or that would change what a trial is
RESERVED = ("output_dir", "overwrite", "resume", "resume_force", "repeat", "seeds", "fast_dev_run", "target_acc")


# ----------------------------------------------------------------------------- the sweep file


@dataclass(frozen=True)
class Param:
    """One dimension of the search space.

    ``name`` is a core setting (``lr``), an enabled handler's option (``gamma``), or
    ``model_args.NAME`` (a keyword of the model's constructor, ``--model-arg NAME=VALUE``).
    """

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """Every value the grid sampler visits: the choices, or the range walked by ``step``."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None or self.log:
            raise ConfigError(f"[params] {self.name}: the grid sampler needs choices, or a range with a step (no log)")
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        values = [self.low + i * self.step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int" else [round(float(v), 12) for v in values]

    def probes(self) -> list[Any]:
        """Values checked before the sweep starts: the bounds, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class SweepSpec:
    """A sweep file, read and checked; command-line flags override its ``[sweep]`` values."""

    path: str
    name: str
    output_dir: str
    trials: int = 20
    objective: str = "best"
    target: float | None = None
    sampler: str = "tpe"
    sampler_startup_trials: int = 10
    pruner: str = "median"
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 0
    seed: int | None = None
    workers: int = 1
    timeout: float | None = None
    storage: str | None = None
    max_failures: int | None = None  # default: trials
    run_args: list[str] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    @property
    def goal(self) -> int:
        """COMPLETE + PRUNED trials to reach (a grid has no more points than it has)."""
        if self.sampler == "grid":
            return min(self.trials, math.prod(len(p.grid()) for p in self.params))
        return self.trials

    def base_args(self) -> list[str]:
        """The words every trial shares: ``[run]``, and ``--target-acc`` for the time objective."""
        target = ["--target-acc", repr(self.target)] if self.objective == "time" else []
        return [*self.run_args, *target]

    def defining(self) -> dict[str, Any]:
        """What makes the study the study it is: a rerun must keep it (execution settings may change)."""
        return {
            "objective": self.objective,
            "target": self.target,
            "run_args": self.run_args,
            "params": [p.to_dict() for p in self.params],
        }


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


# [sweep] key -> (type, rule check or None, rule text, choices)
SWEEP_KEYS: dict[str, tuple[type, Callable[[Any], bool] | None, str, tuple[str, ...] | None]] = {
    "name": (str, lambda v: bool(v.strip()), "must not be empty", None),
    "output_dir": (str, lambda v: bool(v.strip()), "must not be empty", None),
    "trials": (int, _positive, "must be > 0", None),
    "objective": (str, None, "", tuple(OBJECTIVES)),
    "target": (float, lambda v: 0 < v <= 100, "must be a percentage in (0, 100]", None),
    "sampler": (str, None, "", SAMPLERS),
    "sampler_startup_trials": (int, _non_negative, "must be >= 0", None),
    "pruner": (str, None, "", PRUNERS),
    "pruner_startup_trials": (int, _non_negative, "must be >= 0", None),
    "pruner_warmup_epochs": (int, _non_negative, "must be >= 0", None),
    "seed": (int, lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1", None),
    "workers": (int, lambda v: 0 < v <= MAX_WORKERS, f"must be between 1 and {MAX_WORKERS} (4 x the CPU count)", None),
    "timeout": (float, _positive, "must be > 0 (seconds)", None),
    "storage": (str, lambda v: "://" in v, "must be a database URL (e.g. postgresql://user@host/db)", None),
    "max_failures": (int, _positive, "must be > 0", None),
}


def check_sweep_value(where: str, key: str, value: Any) -> Any:
    """``value`` checked against ``[sweep] key``'s type, choices and rule (a :class:`ConfigError` otherwise)."""
    kind, check, rule, choices = SWEEP_KEYS[key]
    value = check_value(f"{where}{key}", kind, value)
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}{key} must be one of {', '.join(choices)}, got {value!r}")
    if check is not None and not check(value):
        raise ConfigError(f"{where}{key} {rule}, got {value!r}")
    return value


def _norm(table: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("-", "_"): v for k, v in table.items()}


def _unknown(where: str, key: str, known: Sequence[str]) -> ConfigError:
    return ConfigError(f"{where}unknown key {key!r}{did_you_mean(key, known)}")


# ------------------------------------------------------------------ settings -> command-line words


def _render(value: Any) -> str:
    """A value as a command-line word that parses back to the same value (floats keep every digit)."""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _core_flags() -> dict[str, tuple[dataclasses.Field, Any]]:
    return {f.name: (f, s) for f, s in settings()}


def _setting_args(name: str, value: Any, where: str) -> list[str]:
    """Words for core setting ``name`` = ``value`` (a switch is present or absent)."""
    f, s = _core_flags()[name]
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
    kind = value_type(f)
    value = check_value(f"{where}{name}", kind, value)
    if kind is bool:
        if value == default:
            return []
        return [s.flag or (f"--no-{f.name}" if default else f"--{f.name.replace('_', '-')}")]
    return [s.flag or f"--{f.name.replace('_', '-')}", _render(value)]


def _option_args(option: Any, value: Any) -> list[str]:
    """Words for a handler option (a bool option is ``--name`` / ``--no-name``)."""
    if option.type is bool:
        check_value(option.name, bool, value)
        return [f"--{option.name}" if value else f"--no-{option.name}"]
    return [f"--{option.name}", _render(value)]


def _model_arg(name: str, value: Any) -> list[str]:
    # a Python literal, as --model-arg reads it back (ast.literal_eval)
    return ["--model-arg", f"{name}={value!r}"]


def enabled_options(handlers: Sequence[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Options of the enabled handlers: by dest name, and by handler (spec and name) then dest."""
    by_dest = {dest: option for dest, (_, option) in options_of(handlers).items()}
    by_handler: dict[str, dict[str, Any]] = {}
    for spec in handlers:
        cls = load_plugin_class(spec)
        own = {o.dest: o for o in getattr(cls, "options", ())}
        by_handler[spec] = by_handler[getattr(cls, "name", spec) or spec] = own
    return by_dest, by_handler


def parse_trial(args: Sequence[str]) -> Config:
    """:func:`parse_config`, with argparse's complaint (it exits) turned into a :class:`ConfigError` line."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse_config(list(args))
    except SystemExit:
        lines = [ln for ln in err.getvalue().strip().splitlines() if ln and not ln.startswith("See '")]
        message = lines[-1] if lines else "invalid arguments"
        raise ConfigError(message.removeprefix(f"{PROG}: error: ")) from None
    except PluginLoadError as error:
        raise ConfigError(str(error)) from None


def run_table_args(run: dict[str, Any], where: str, base_dir: Path) -> list[str]:
    """``[run]`` as command-line words: what parse_config reads from a run TOML, spelled as flags."""
    run = _norm(run)
    tables = {k: _norm(v) for k, v in run.items() if isinstance(v, dict)}
    top = {k: v for k, v in run.items() if not isinstance(v, dict)}
    args: list[str] = []
    if "config" in top:
        path = Path(check_value(f"{where}config", str, top.pop("config")))
        args += ["--config", str(path if path.is_absolute() else base_dir / path)]
    for key, flag in (("handlers", "--handler"), ("no_handlers", "--no-handler")):
        names = top.pop(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f'{where}{key} must be a list of handler names, e.g. {key} = ["visdom"]')
        for n in names:
            args += [flag, n]
    for key in SWITCHES:
        if key in top and check_value(f"{where}{key}", bool, top.pop(key)):
            args.append("--" + key.replace("_", "-"))
    core = _core_flags()
    for key, value in top.items():
        if key in RESERVED:
            raise ConfigError(f"{where}{key} is decided by the sweep, not set in [run]")
        if key not in core:
            raise _unknown(where, key, [*core, "config", "handlers", "no_handlers", *SWITCHES])
        args += _setting_args(key, value, where)
    _, by_handler = enabled_options(parse_trial(args).handlers)
    for table, entries in tables.items():
        if table in ("model", "model_args"):  # model_args: a table that can sit beside model = "SPEC"
            for key, value in entries.items():
                args += _model_arg(key, value)
            continue
        if table not in by_handler:
            raise ConfigError(f"{where}[{table}] is not an enabled handler (enabled: {', '.join(sorted(by_handler))})")
        for key, value in entries.items():
            if key not in by_handler[table]:
                raise _unknown(f"{where}[{table}] ", key, list(by_handler[table]))
            args += _option_args(by_handler[table][key], value)
    return args


def param_args(name: str, value: Any, options: dict[str, Any]) -> list[str]:
    """The words that set searched parameter ``name`` to ``value``.

    The place to teach the sweep a new kind of parameter: core settings, handler options (by
    their dest name, from ``options``), and ``model_args.NAME`` (the model's constructor keywords).
    """
    if name.startswith("model_args."):
        return _model_arg(name.removeprefix("model_args."), value)
    if name in _core_flags():
        return _setting_args(name, value, "")
    if name in options:
        return _option_args(options[name], value)
    raise ConfigError(f"unknown parameter {name!r}")


def _param(name: str, spec: Any, where: str, kind_hint: type | None) -> Param:
    """A ``[params]`` entry: a list (choices), or a table with choices, or low/high [log, step, type]."""
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}{name} must be a list of choices or a table like {{ low = 0.001, high = 0.1 }}")
    spec = _norm(spec)
    allowed = {"choices", "low", "high", "log", "step", "type"}
    for key in spec:
        if key not in allowed:
            raise _unknown(f"{where}{name}: ", key, sorted(allowed))
    if "choices" in spec:
        choices = spec["choices"]
        extra = set(spec) - {"choices", "type"}
        if extra:
            raise ConfigError(f"{where}{name}: choices do not combine with {', '.join(sorted(extra))}")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}{name}: choices must be a non-empty list")
        if not all(isinstance(c, (bool, int, float, str)) for c in choices):
            raise ConfigError(f"{where}{name}: choices must be numbers, strings or true/false")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where}{name}: choices repeat a value")
        return Param(name, "categorical", choices=tuple(choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}{name}: a range needs low and high (or give choices)")
    low, high, step = spec["low"], spec["high"], spec.get("step")
    log = check_value(f"{where}{name}: log", bool, spec.get("log", False))
    for key, v in (("low", low), ("high", high), ("step", step)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise ConfigError(f"{where}{name}: {key} must be a finite number, got {v!r}")
    kind = spec.get("type")
    if kind is None:
        if kind_hint in (int, float):
            kind = kind_hint.__name__
        else:
            kind = "int" if all(isinstance(v, int) for v in (low, high, step) if v is not None) else "float"
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}{name}: type must be int or float, got {kind!r}")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step) if v is not None):
        raise ConfigError(f"{where}{name}: an int range needs whole-number low, high and step")
    if not low < high:
        raise ConfigError(f"{where}{name}: low must be < high, got {low!r} and {high!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}{name}: a log range needs low > 0")
    if log and step is not None:
        raise ConfigError(f"{where}{name}: log and step do not combine (Optuna)")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}{name}: step must be > 0")
    if kind == "int":
        low, high, step = int(low), int(high), None if step is None else int(step)
    else:
        low, high, step = float(low), float(high), None if step is None else float(step)
    return Param(name, kind, low=low, high=high, log=log, step=step)


def _param_entries(params: dict[str, Any], where: str) -> list[tuple[str, Any]]:
    """``[params]`` entries, with a nested ``[params.model_args]`` table flattened to ``model_args.NAME``."""
    entries = []
    for key, spec in params.items():
        name = key.replace("-", "_")
        if name == "model_args" and isinstance(spec, dict):
            entries += [(f"model_args.{k}", v) for k, v in spec.items()]
        else:
            entries.append((name, spec))
    names = [n for n, _ in entries]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"{where}{n} is set twice")
    return entries


def load_spec(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """Read and check a sweep file; ``overrides`` are ``[sweep]`` values from the command line.

    Every parameter's bounds (or choices) are put through the run's own validation
    (:func:`parse_config`, the handlers' constructors, and the model's for model arguments) before
    anything runs.
    """
    path = Path(path)
    data = load_toml(path, "sweep file")
    for key in data:
        if key not in ("sweep", "run", "params"):
            raise _unknown(f"{path}: ", key, ["sweep", "run", "params"])
        if not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key} must be a table ([{key}])")
    sweep = _norm(data.get("sweep", {}))
    values: dict[str, Any] = {}
    for key, value in sweep.items():
        if key not in SWEEP_KEYS:
            raise _unknown(f"{path}: [sweep] ", key, list(SWEEP_KEYS))
        values[key] = check_sweep_value(f"{path}: [sweep] ", key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = check_sweep_value("--", key, value)
    values.setdefault("name", path.stem)
    values.setdefault("output_dir", str(Path("sweeps") / values["name"]))
    spec = SweepSpec(path=str(path), **values)
    if spec.objective == "time" and spec.target is None:
        raise ConfigError(f'{path}: [sweep] objective = "time" needs target = <test accuracy %>')
    if spec.objective != "time" and spec.target is not None:
        raise ConfigError(f'{path}: [sweep] target is only used by objective = "time"')

    spec.run_args = run_table_args(data.get("run", {}), f"{path}: [run] ", path.parent)
    base = parse_trial(spec.base_args())
    options, _ = enabled_options(base.handlers)
    core = _core_flags()
    run = _norm(data.get("run", {}))
    fixed = {k for k, v in run.items() if not isinstance(v, dict)}
    fixed |= {k.replace("-", "_") for t, v in run.items() if isinstance(v, dict) and t not in ("model", "model_args")
              for k in v}  # fmt: skip
    raw = data.get("params", {})
    if not raw:
        raise ConfigError(f"{path}: [params] is empty: nothing to search")
    for name, entry in _param_entries(raw, f"{path}: [params] "):
        where = f"{path}: [params] "
        if name in RESERVED:
            raise ConfigError(f"{where}{name} is decided by the sweep and cannot be searched")
        if name in fixed or (name.startswith("model_args.") and name.split(".", 1)[1] in base.model_args):
            raise ConfigError(f"{where}{name} is both fixed in [run] and searched in [params]: keep one")
        hint: type | None = None
        if name in core:
            f = core[name][0]
            hint = value_type(f) if value_type(f) in (int, float) else None
        elif name in options:
            hint = options[name].type if options[name].type in (int, float) else None
        elif not name.startswith("model_args."):
            owner = option_owner(name)
            if owner is not None:
                raise ConfigError(
                    f"{where}{name} is an option of handler {owner!r}, which [run] does not enable: "
                    f'add handlers = ["{owner}"] to [run]'
                )
            raise ConfigError(
                f"{where}{name} is neither a setting, nor an option of an enabled handler "
                f"({', '.join(base.handlers)}), nor model_args.NAME{did_you_mean(name, [*core, *options])}"
            )
        spec.params.append(_param(name, entry, where, hint))
    for p in spec.params:
        for value in p.probes():
            try:
                config = parse_trial([*spec.base_args(), *param_args(p.name, value, options)])
                build_plugins(config.handlers, config.options)  # the handlers' own checks (e.g. 0 < gamma <= 1)
                if p.name.startswith("model_args."):
                    from mnist_ignite.models.registry import build_model

                    build_model(config.model, config.model_args)
            except PluginLoadError as err:
                raise ConfigError(f"{path}: [params] {p.name} = {value!r} is refused: {err}") from None
            except ConfigError as err:
                raise ConfigError(f"{path}: [params] {p.name} = {value!r} is refused: {err}") from None
    if spec.sampler == "grid":
        for p in spec.params:
            try:
                p.grid()
            except ConfigError as err:
                raise ConfigError(f"{path}: {err}") from None
    return spec


def trial_args(spec: SweepSpec, values: dict[str, Any]) -> list[str]:
    """The command-line words of a trial with these parameter values (without ``--output-dir``)."""
    options, _ = enabled_options(parse_trial(spec.base_args()).handlers)
    args = spec.base_args()
    for p in spec.params:
        args += param_args(p.name, values[p.name], options)
    return args
