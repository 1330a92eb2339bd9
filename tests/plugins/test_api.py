"""The plugin contract: options, outputs, the Plugin base, and what RunContext promises a plugin during a real run."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from ignite.engine import Engine, Events

from mnist_ignite.config.settings import Config
from mnist_ignite.plugins.api import Option, Output, Plugin, RunContext, on
from mnist_ignite.testing import run_plugin


class Snapshot(Plugin):
    """Writes down what the contract says a plugin sees, at the events where it says so."""

    name = "snapshot"
    options = (Option("every-n", int, 2, "how often"), Option("label", str, "x"))
    outputs = (Output("snapshot.txt", "what it saw"),)

    def attach(self, ctx: RunContext) -> None:
        self.ctx, self.seen = ctx, {}
        ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED(once=1), self.step)
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self.epoch)
        ctx.log(f"snapshot attached to {ctx.output_dir.name}")

    def step(self, engine: Engine) -> None:
        self.seen["output"] = {k: (tuple(v.shape), v.requires_grad) for k, v in engine.state.output.items()}

    def epoch(self, engine: Engine) -> None:
        self.seen["record"] = dict(engine.state.record)
        self.seen["metrics"] = set(self.ctx.evaluator.state.metrics)


@pytest.mark.parametrize(
    ("option", "dest"), [(Option("every-n"), "every_n"), (Option("label"), "label"), (Option("a-b-c"), "a_b_c")]
)
def test_an_options_dest_is_its_name_with_underscores(option: Option, dest: str) -> None:
    assert option.dest == dest and option.type is str and option.default is None


@pytest.mark.parametrize(
    ("output", "folder", "name"),
    [
        (Output("plots/"), True, "plots"),
        (Output("visdom.log"), False, "visdom.log"),
        (Output("a/b.txt"), False, "a/b.txt"),
    ],
)
def test_an_output_ending_in_a_slash_is_a_folder(output: Output, folder: bool, name: str) -> None:
    assert (output.is_folder, output.name, output.files) == (folder, name, ("*",))


def test_the_plugin_base_sets_declared_options_and_refuses_others() -> None:
    assert (Snapshot().every_n, Snapshot().label) == (2, "x")
    assert (Snapshot(every_n=5).every_n, Snapshot(every_n=5).label) == (5, "x")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['evry_n'\]; known: \['every_n', 'label'\]"):
        Snapshot(evry_n=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Snapshot.options[0].name = "other"  # type: ignore[misc]


def test_log_writes_a_note_on_the_main_process_only(capsys: pytest.CaptureFixture[str]) -> None:
    net = torch.nn.Linear(2, 2)
    parts: dict[str, Any] = {"trainer": Engine(lambda e, b: None), "evaluator": Engine(lambda e, b: None)}
    parts |= {"model": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1), "config": Config()}
    RunContext(**parts, output_dir=Path("run")).log("on rank 0")
    RunContext(**parts, output_dir=Path("run"), is_main_process=False).log("on rank 1")
    assert capsys.readouterr().out == "on rank 0\n"
    first, second = (RunContext(**parts, output_dir=Path("run")) for _ in range(2))
    assert first.device == torch.device("cpu") and first.plugins == [] and first.plugins is not second.plugins


def test_a_plugin_sees_what_the_contract_promises_in_a_real_run(capsys: pytest.CaptureFixture[str]) -> None:
    snapshot = Snapshot(label="real")
    run = run_plugin(snapshot, epochs=1, batch_size=32, precision="fp32")
    ctx = snapshot.ctx
    assert ctx is run.ctx and ctx.plugins[0] is snapshot and ctx.is_main_process and ctx.output_dir == run.output_dir
    assert ctx.epoch_length == len(ctx.train_data) == 8 and ctx.config.lr == 0.01 and ctx.precision.name == "fp32"
    assert snapshot.seen["output"] == {  # detached tensors, batch-shaped
        "loss": ((), False),
        "y_pred": ((32, 10), False),
        "y": ((32,), False),
        "correct": ((32, 1), False),
    }
    assert snapshot.seen["record"] == ctx.history.rows[0] and snapshot.seen["record"]["epoch"] == 1
    assert snapshot.seen["metrics"] >= {"accuracy", "loss"}
    assert "snapshot attached to run\n" in capsys.readouterr().out


def test_on_marks_ignite_handlers_that_a_file_attaches_as_one_plugin(tmp_path: Path) -> None:
    """Code from Ignite's docs: ``@trainer.on(...)`` becomes ``@on(...)``; the file is the plugin."""
    from mnist_ignite.discovery.handlers import load_plugin_class
    from mnist_ignite.testing import run_plugin

    path = tmp_path / "log_loss.py"
    path.write_text(
        "from ignite.engine import Events\n"
        "from mnist_ignite.plugins import on\n"
        "seen = []\n\n"
        "@on(Events.ITERATION_COMPLETED(every=2))\n"
        "def log_training_loss(engine):\n"
        "    seen.append(f'{engine.state.iteration} {engine.state.output:.2f}')\n\n"
        "@on(Events.COMPLETED, engine='evaluator')\n"
        "def log_validation(engine):\n"
        "    seen.append(sorted(engine.state.metrics))\n"
    )
    cls = load_plugin_class(str(path))
    assert cls.name == "log_loss"
    run = run_plugin(cls(), train=256)  # 4 iterations of 64
    module = sys.modules[cls.function.__module__]
    assert [s.split()[0] for s in module.seen if isinstance(s, str)] == ["2", "4"]
    assert all(float(s.split()[1]) > 0 for s in module.seen if isinstance(s, str))  # the loss, formatted as a float
    assert next(s for s in module.seen if isinstance(s, list)) == ["accuracy", "loss", "nll"]  # Ignite docs' names
    assert run.calls["log_loss"] == {"trainer ITERATION_COMPLETED(every=2)": 2, "evaluator COMPLETED": 1}


def test_an_unmarked_ignite_handler_is_refused_with_how_to_mark_it(tmp_path: Path) -> None:
    from mnist_ignite.discovery.handlers import load_plugin_class
    from mnist_ignite.errors import PluginLoadError

    path = tmp_path / "h.py"
    path.write_text("def log_loss(engine):\n    print(engine.state.output)\n")
    with pytest.raises(PluginLoadError, match=r"log_loss\(engine\) looks like an Ignite event handler.*@on\(Events"):
        load_plugin_class(f"{path}:log_loss")
    with pytest.raises(ValueError, match="the run's engines are trainer, evaluator"):
        on("x", engine="validator")
