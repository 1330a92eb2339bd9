"""The sweep file without training: the TOML space, its errors, trial -> command line -> Config."""

from __future__ import annotations

import shlex
from pathlib import Path

import optuna
import pytest

from mnist_ignite.config.argv import parse_config
from mnist_ignite.errors import ConfigError
from mnist_ignite.experiments.sweep.space import Param, load_spec, trial_args

MODEL = '''
from torch import nn

class Tiny(nn.Module):
    """A small model with a constructor keyword, to search over."""

    def __init__(self, width: int = 4, act: str = "relu"):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x):
        return self.net(x)
'''

SPACE = """
[sweep]
trials = 3
objective = "final"
sampler = "random"
seed = 5

[run]
epochs = 2
max_train_samples = 256
no_handlers = ["plots"]
model = "{model}"
device = "cpu"
download = false

[run.lr_schedule]
step_size = 3

[run.model_args]
act = "relu"

[params]
lr = {{ low = 1e-4, high = 0.3, log = true }}
batch_size = [16, 32, 64]
channels_last = [true, false]
gamma = {{ low = 0.05, high = 0.5 }}
warmup_iters = {{ low = 0, high = 40, step = 20 }}
lr_schedule = ["step", "cosine"]

[params.model_args]
width = {{ low = 4, high = 32, log = true }}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def model_spec(tmp_path: Path) -> str:
    return f"{write(tmp_path / 'tiny_model.py', MODEL)}:Tiny"


def test_every_kind_of_parameter_becomes_flags_that_parse_back(tmp_path: Path, model_spec: str) -> None:
    spec = load_spec(write(tmp_path / "space.toml", SPACE.format(model=model_spec)))
    assert spec.name == "space" and spec.output_dir == str(Path("sweeps") / "space")
    kinds = {p.name: p.kind for p in spec.params}
    assert kinds == {
        "lr": "float", "batch_size": "categorical", "channels_last": "categorical", "gamma": "float",
        "warmup_iters": "int", "lr_schedule": "categorical", "model_args.width": "int",
    }  # fmt: skip
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(6):  # several draws: switches on and off, every choice kind
        trial = study.ask()
        values = {p.name: p.suggest(trial) for p in spec.params}
        args = trial_args(spec, values)
        config = parse_config(shlex.split(shlex.join(args)))  # the printed line, read back
        assert config.lr == values["lr"] and config.batch_size == values["batch_size"]
        assert config.channels_last is values["channels_last"]
        assert config.options["gamma"] == values["gamma"] and config.options["warmup_iters"] == values["warmup_iters"]
        assert config.options["lr_schedule"] == values["lr_schedule"] and config.options["step_size"] == 3
        assert config.model == model_spec and config.model_args == {"act": "relu", "width": values["model_args.width"]}
        assert config.epochs == 2 and "plots" not in config.handlers and config.download is False
        study.tell(trial, 1.0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("lrr = [0.1]", "lrr is neither a setting, nor an option of an enabled handler"),
        ("lrr = [0.1]", "did you mean lr?"),
        ("output_dir = ['a']", "output_dir is decided by the sweep"),
        ("epochs = [1, 2]", "epochs is both fixed in [run] and searched"),
        ("lr = { low = 0.0, high = 0.1 }", "lr = 0.0 is refused: argument --lr: must be a finite number > 0"),
        ("lr = { low = 0.1, high = 0.01 }", "low must be < high"),
        ("lr = { low = 0.0, high = 0.1, log = true }", "a log range needs low > 0"),
        ("lr = { low = 0.01, high = 0.1, log = true, step = 0.01 }", "log and step do not combine"),
        ("lr = { low = 0.01 }", "a range needs low and high"),
        ("lr = { low = 0.01, high = 0.1, scale = 2 }", "unknown key 'scale'"),
        ("lr = []", "choices must be a non-empty list"),
        ("lr = [0.1, 0.1]", "choices repeat a value"),
        ("batch_size = { low = 8, high = 64.5 }", "an int range needs whole-number"),
        ("gamma = { low = 0.05, high = 2.0 }", "gamma = 2.0 is refused"),
        ("lr_schedule = ['step', 'sideways']", "lr_schedule = 'sideways' is refused"),
        ("patience = [1, 2]", "patience is an option of handler 'early_stopping', which [run] does not enable"),
        ("'model_args.width' = [4, 8]", "model_args.width = 4 is refused"),  # the seed Net takes no width
    ],
)
def test_a_bad_space_is_one_line_naming_the_entry(tmp_path: Path, params: str, message: str) -> None:
    path = write(tmp_path / "bad.toml", f"[run]\nepochs = 1\n[params]\n{params}\n")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("objective = 'time'", 'objective = "time" needs target'),
        ("target = 99.0", 'target is only used by objective = "time"'),
        ("objective = 'fastest'", "objective must be one of best, final, time"),
        ("trials = 0", "trials must be > 0"),
        ("sampler = 'cmaes'", "sampler must be one of tpe, random, grid"),
        ("sampler = 'grid'", "the grid sampler needs choices, or a range with a step"),
        ("storage = 'db.sqlite'", "storage must be a database URL"),
        ("trails = 3", "unknown key 'trails' (did you mean trials?)"),
    ],
)
def test_bad_sweep_settings_are_one_line(tmp_path: Path, sweep: str, message: str) -> None:
    path = write(tmp_path / "bad.toml", f"[sweep]\n{sweep}\n[params]\nlr = {{ low = 0.01, high = 0.1 }}\n")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert message in str(err.value)


def test_bad_run_table_and_file_errors(tmp_path: Path) -> None:
    cases = {
        "[run]\nbatch = 3\n[params]\nlr = [0.1]\n": "[run] unknown key 'batch' (did you mean batch_size?)",
        "[run]\nresume = 'auto'\n[params]\nlr = [0.1]\n": "resume is decided by the sweep",
        "[run.early_stopping]\npatience = 2\n[params]\nlr = [0.1]\n": "[early_stopping] is not an enabled handler",
        "[run]\nepochs = 'two'\n[params]\nlr = [0.1]\n": "epochs must be an integer",
        "[sweep]\n[params]\n": "[params] is empty",
        "[search]\n": "unknown key 'search'",
        "[params\n": "is not valid TOML",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as err:
            load_spec(write(tmp_path / "bad.toml", text))
        assert message in str(err.value), (text, str(err.value))
    with pytest.raises(ConfigError, match="sweep file not found"):
        load_spec(tmp_path / "missing.toml")


def test_command_line_overrides_and_the_grid(tmp_path: Path) -> None:
    path = write(
        tmp_path / "grid.toml",
        "[sweep]\nsampler = 'grid'\ntrials = 100\n[params]\nbatch_size = { low = 16, high = 64, step = 16 }\n"
        "momentum = { low = 0.5, high = 0.9, step = 0.2 }\nlr_schedule = ['step', 'none']\n",
    )
    spec = load_spec(path, {"workers": 3, "output_dir": str(tmp_path / "out"), "timeout": 60.0, "trials": None})
    assert spec.workers == 3 and spec.output_dir == str(tmp_path / "out") and spec.timeout == 60
    grids = {p.name: p.grid() for p in spec.params}
    assert grids == {"batch_size": [16, 32, 48, 64], "momentum": [0.5, 0.7, 0.9], "lr_schedule": ["step", "none"]}
    assert spec.goal == 24  # the grid has 24 points, fewer than the 100 trials asked for
    with pytest.raises(ConfigError, match="--workers must be between 1 and"):
        load_spec(path, {"workers": 0})


def test_time_objective_runs_with_target_acc(tmp_path: Path) -> None:
    path = write(tmp_path / "t.toml", "[sweep]\nobjective = 'time'\ntarget = 97.5\n[params]\nlr = [0.01, 0.05]\n")
    spec = load_spec(path)
    assert spec.direction == "minimize"
    config = parse_config(trial_args(spec, {"lr": 0.05}))
    assert config.target_acc == 97.5 and config.lr == 0.05


def test_param_suggests_within_its_range() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    params = [
        Param("a", "float", 1e-5, 1e-1, log=True),
        Param("b", "int", 2, 10, step=4),
        Param("c", "categorical", choices=(1, "x")),
    ]
    for _ in range(20):
        trial = study.ask()
        a, b, c = (p.suggest(trial) for p in params)
        assert 1e-5 <= a <= 1e-1 and b in (2, 6, 10) and c in (1, "x")
        study.tell(trial, 0.0)
