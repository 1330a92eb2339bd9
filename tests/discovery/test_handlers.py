from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.discovery.handlers import available_plugins, load_plugin_class
from mnist_ignite.errors import PluginLoadError

from conftest import ROOT, run_cli, small_args

PLUGIN_SOURCE = textwrap.dedent(
    """
    from ignite.engine import Events
    from mnist_ignite.plugins import Option, Plugin

    class Marker(Plugin):
        name = "marker"
        description = "writes marker.txt at the end"
        options = (Option("marker-text", str, "hello", "what to write"),)

        def attach(self, ctx):
            ctx.trainer.add_event_handler(
                Events.COMPLETED, lambda e: (ctx.output_dir / "marker.txt").write_text(self.marker_text))

    class Exploding(Plugin):
        name = "exploding"

        def attach(self, ctx):
            @ctx.trainer.on(Events.EPOCH_COMPLETED(once=2))
            def boom(engine):
                raise ValueError("kaboom")

    class Picky(Plugin):
        name = "picky"
        options = (Option("level", int, 1, "must be positive"),)

        def __init__(self, **values):
            super().__init__(**values)
            if self.level < 1:
                raise ValueError("level must be >= 1")

        def attach(self, ctx):
            pass

    NOT_A_CLASS = 42
    """
)


@pytest.fixture()
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "my_plugins.py"
    path.write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield path
    sys.modules.pop("my_plugins", None)


def test_builtins_are_listed_by_name() -> None:
    names = set(available_plugins())
    assert {
        "lr_schedule",
        "checkpoint",
        "history",
        "progress",
        "early_stopping",
        "nan_guard",
        "time_limit",
        "plots",
        "visdom",
    } <= names
    assert load_plugin_class("history").__name__ == "HistoryPlugin"


def test_list_handlers_prints_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-handlers"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 6 and any(line.startswith("checkpoint") and "[default]" in line for line in lines)
    assert not any("cannot load" in line for line in lines)


@pytest.mark.parametrize("how", ["module", "file"])
def test_plugin_by_module_or_file_with_its_option(how: str, plugin_module: Path, data_dir: str, tmp_path: Path) -> None:
    spec = "my_plugins:Marker" if how == "module" else f"{plugin_module}:Marker"
    out = tmp_path / "out"
    args = small_args(data_dir, out, "--epochs", "1", "--handler", spec, "--marker-text", how, train=128, eval_=64)
    assert main(args) == 0
    assert (out / "marker.txt").read_text() == how


def test_plugin_from_an_entry_point(tmp_path: Path, plugin_module: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "thirdparty-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mnist_ignite.handlers]\nmarker = my_plugins:Marker\n")
    assert available_plugins()["marker"] == "my_plugins:Marker"
    assert load_plugin_class("marker").__name__ == "Marker"


def test_plugin_options_show_in_help_once_enabled(plugin_module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--handler", "my_plugins:Marker", "--help"]) == 0
    assert "--marker-text" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "--marker-text" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch", "unknown handler 'nosuch'"),
        ("no_such_module_xyz:Thing", "cannot import no_such_module_xyz: ModuleNotFoundError"),
        ("my_plugins:Missing", "has no attribute 'Missing'"),
        ("my_plugins:NOT_A_CLASS", "is not a plugin (a class with attach(ctx), or a function attach(ctx))"),
        ("missing/file.py:Thing", "file not found"),
    ],
)
def test_bad_plugins_exit_2_naming_the_plugin(
    spec: str, message: str, plugin_module: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--handler", spec, "--output-dir", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert message in err and spec in err
    assert not (tmp_path / "never").exists()  # nothing ran


def test_bad_option_value_exits_2_naming_the_plugin(
    plugin_module: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--handler", "my_plugins:Picky", "--level", "0", "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "handler 'my_plugins:Picky': level must be >= 1" in err


def test_import_error_inside_a_plugin_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import not_installed_anywhere\n")
    assert main(["--handler", f"{broken}:X"]) == 2
    assert "cannot import" in capsys.readouterr().err


def test_exception_in_a_plugin_names_it_and_the_event_and_keeps_the_checkpoint(
    plugin_module: Path, data_dir: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(
        *small_args(
            data_dir, out, "--epochs", "3", "--handler", str(plugin_module) + ":Exploding", train=128, eval_=64
        ),
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    assert (
        "handler 'exploding' failed in trainer EPOCH_COMPLETED(once=2) at my_plugins.py:20 in boom: ValueError: kaboom"
        in result.stderr
    )
    assert "--debug" in result.stderr and "Traceback" not in result.stderr
    assert "Traceback" not in result.stderr
    ckpts = sorted((out / "checkpoints").glob("last_checkpoint_*.pt"))
    assert [p.name for p in ckpts] == ["last_checkpoint_2.pt"]  # epoch 1's; epoch 2 failed before saving
    resumed = run_cli(*small_args(data_dir, out, "--epochs", "3", "--resume", "auto", train=128, eval_=64))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout


def test_build_plugin_wraps_constructor_errors() -> None:
    from mnist_ignite.discovery.handlers import build_plugin

    with pytest.raises(PluginLoadError, match="handler 'lr_schedule': lr-schedule must be one of"):
        build_plugin("lr_schedule", load_plugin_class("lr_schedule"), {"lr_schedule": "zigzag"})


CONTRACT_SOURCE = textwrap.dedent(
    '''
    from ignite.engine import Events
    from mnist_ignite.plugins import Plugin

    class Counter(Plugin):
        """Counts iterations; its count rides in checkpoints (attached after the checkpoint handler)."""
        name = "counter"

        def __init__(self):
            self.count = 0

        def attach(self, ctx):
            self.ctx = ctx
            ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED, self.tick)
            ctx.trainer.add_event_handler(Events.COMPLETED, self.report)

        def tick(self, engine):
            self.count += 1

        def report(self, engine):
            (self.ctx.output_dir / "count.txt").write_text(str(self.count))

        def state_dict(self):
            return {"count": self.count}

        def load_state_dict(self, state):
            self.count = state["count"]

    class BadState(Plugin):
        name = "bad_state"

        def attach(self, ctx):
            pass

        def state_dict(self):
            return {"when": object()}

    class BrokenAttach(Plugin):
        name = "broken_attach"

        def attach(self, ctx):
            raise RuntimeError("no such thing")

    def grad_logger(ctx):
        """A plain function plugin: writes iterations.txt at the end."""
        ctx.trainer.add_event_handler(
            Events.COMPLETED, lambda e: (ctx.output_dir / "iterations.txt").write_text(str(e.state.iteration))
        )
    '''
)


@pytest.fixture()
def contract(tmp_path: Path) -> Path:
    path = tmp_path / "contract.py"
    path.write_text(CONTRACT_SOURCE)
    return path


def test_a_plugin_attached_after_the_checkpoint_gets_its_state_back(
    contract: Path, data_dir: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    counter = ["--handler", f"{contract}:Counter"]
    assert main(small_args(data_dir, out, "--epochs", "1", *counter, train=128, eval_=64)) == 0
    assert (out / "count.txt").read_text() == "2"
    assert main(small_args(data_dir, out, "--epochs", "2", "--resume", "auto", *counter, train=128, eval_=64)) == 0
    assert (out / "count.txt").read_text() == "4"  # 2 restored + 2 new


def test_state_of_a_plugin_no_longer_enabled_resumes_with_a_warning(
    contract: Path, data_dir: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert main(small_args(data_dir, out, "--epochs", "1", "--handler", f"{contract}:Counter", train=128)) == 0
    result = run_cli(*small_args(data_dir, out, "--epochs", "2", "--resume", "auto", train=128))
    assert result.returncode == 0, result.stderr
    assert "holds state of handler 'counter', which is not enabled" in result.stderr


def test_a_state_that_cannot_load_fails_at_the_first_save_naming_the_plugin(
    contract: Path, data_dir: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(*small_args(data_dir, out, "--epochs", "2", "--handler", f"{contract}:BadState", train=128))
    assert result.returncode == 1
    assert "handler 'bad_state' failed in state_dict" in result.stderr and "builtins.object" in result.stderr
    assert not list((out / "checkpoints").glob("last_*.pt"))  # no whole-run checkpoint that could not load later


def test_a_failing_attach_names_the_handler(contract: Path, data_dir: str, tmp_path: Path) -> None:
    result = run_cli(*small_args(data_dir, tmp_path / "o", "--handler", f"{contract}:BrokenAttach", train=64))
    assert result.returncode == 1
    assert "handler 'broken_attach' failed in attach at contract.py:42 in attach: RuntimeError: no such thing" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_a_plain_function_is_a_plugin(contract: Path, data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(small_args(data_dir, out, "--epochs", "1", "--handler", f"{contract}:grad_logger", train=128)) == 0
    assert (out / "iterations.txt").read_text() == "2"
    assert load_plugin_class(f"{contract}:grad_logger").name == "grad_logger"


def test_a_bare_file_names_its_one_plugin(tmp_path: Path) -> None:
    from mnist_ignite.discovery.handlers import load_plugin_class
    from mnist_ignite.errors import PluginLoadError

    one = tmp_path / "gradnorm.py"
    one.write_text(
        "class Helper:\n    pass\n\nclass GradNorm:\n    name = 'gradnorm'\n    def attach(self, ctx): pass\n"
    )
    assert load_plugin_class(str(one)).name == "gradnorm"
    function = tmp_path / "chatty.py"
    function.write_text("def attach(ctx):\n    'says hello'\n")
    assert load_plugin_class(str(function)).name == "chatty"  # the file's stem
    two = tmp_path / "two.py"
    two.write_text("class A:\n    def attach(self, ctx): pass\n\nclass B:\n    def attach(self, ctx): pass\n")
    with pytest.raises(PluginLoadError, match=r"holds 2 plugins; name one: .*two.py:A, .*two.py:B"):
        load_plugin_class(str(two))
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(PluginLoadError, match="the file has no plugin"):
        load_plugin_class(str(empty))
