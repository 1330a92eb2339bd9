"""Wiring one run: the data as configured and sharded, and a run ready for ``trainer.run`` (on synthetic MNIST)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from ignite.engine import Events

from mnist_ignite.config.settings import Config
from mnist_ignite.core.build import build_data, build_run
from mnist_ignite.core.data import TensorTrainLoader, read_mnist
from mnist_ignite.core.step import LossScaler
from mnist_ignite.core.target import TimeToAccuracy
from mnist_ignite.errors import ConfigError, DataError, PluginError
from mnist_ignite.plugins import Plugin, RunContext, RunEvents
from mnist_ignite.testing import TinyNet, fake_mnist

CPU = torch.device("cpu")
TINY = "mnist_ignite.testing:TinyNet"


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_mnist(tmp_path_factory.mktemp("fake-mnist"), train=160, test=80)


def config(mnist: Path, **settings: Any) -> Config:
    return Config(**{"data_dir": str(mnist), "download": False, "device": "cpu", "model": TINY} | settings)


def test_each_rank_gets_its_share_of_the_configured_subset(mnist: Path) -> None:
    """The batch size is the global one; the ranks' shards cover the first N images once."""
    c = config(mnist, batch_size=32, max_train_samples=100, max_eval_samples=50)
    train_set, test_set = read_mnist(mnist, True, False), read_mnist(mnist, False, False)
    seen = []
    for rank in (0, 1):
        train, evaluation = build_data(c, CPU, rank, world=2)
        assert isinstance(train, TensorTrainLoader) and (train.batch_size, train.rank, train.world) == (16, rank, 2)
        assert torch.equal(torch.cat([y for _, y in evaluation]), test_set.targets[:50][rank::2])
        seen.append(torch.cat([y for _, y in train]))
    assert torch.equal(torch.cat(seen).sort().values, train_set.targets[:100].sort().values)


def test_overfit_batches_trains_and_evaluates_on_the_same_images_unaugmented(mnist: Path) -> None:
    train, evaluation = build_data(config(mnist, batch_size=16, overfit_batches=2), CPU)
    assert len(train) == 2 and not train.augment
    shown = torch.cat([x for x, _ in train]).flatten(1)
    judged = torch.cat([x for x, _ in evaluation]).flatten(1)
    assert shown.shape == judged.shape == (32, 784)
    by_content = [t[t.sum(1).argsort()] for t in (shown, judged)]  # the train order is shuffled
    torch.testing.assert_close(*by_content)


def test_a_label_that_is_no_digit_is_a_data_error(mnist: Path, tmp_path: Path) -> None:
    """nll_loss would fail deep inside a step (or count it silently as wrong on a GPU): it is found up front."""
    damaged = tmp_path / "damaged"
    shutil.copytree(mnist, damaged)
    labels = damaged / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8 + 3] = 11  # after the 8-byte header: label #3
    labels.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"MNIST training label #3 is 11, not a digit 0-9 \(1 such label\(s\)\)"):
        build_data(config(damaged), CPU)


def test_the_torchvision_pipeline_is_single_process(mnist: Path) -> None:
    with pytest.raises(ConfigError, match="--nproc-per-node > 1 runs on --pipeline tensor"):
        build_data(config(mnist, pipeline="torchvision"), CPU, rank=0, world=2)


class Recorder(Plugin):
    """Notes what it sees of the run, and when."""

    name = "recorder"

    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events = name, events

    def attach(self, ctx: RunContext) -> None:
        self.ctx = ctx
        ctx.trainer.add_event_handler(RunEvents.READY, self.ready)
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, self.epoch)

    def ready(self) -> None:
        self.events.append(f"{self.name} ready with {[p.name for p in self.ctx.plugins]}")

    def epoch(self, engine: Any) -> None:
        self.events.append(f"{self.name} sees epoch {engine.state.record['epoch']}")


def test_build_run_returns_a_run_ready_to_train(mnist: Path) -> None:
    """The model on its layout, SGD as configured, the checkpoint's entries, plugins in order, READY once."""
    c = config(mnist, batch_size=32, lr=0.02, momentum=0.5, precision="fp32", target_acc=99.0)
    train, evaluation = build_data(c, CPU)
    net, events = TinyNet(), []
    ctx = build_run(c, CPU, train, evaluation, net=net, plugins=[Recorder("a", events), Recorder("b", events)])
    assert ctx.model is net and net.head.weight.device == CPU
    assert net.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    group = ctx.optimizer.param_groups[0]
    assert isinstance(ctx.optimizer, torch.optim.SGD) and (group["lr"], group["momentum"]) == (0.02, 0.5)
    assert ctx.precision.name == "fp32" and ctx.epoch_length == len(train) == 5
    assert set(ctx.checkpoint_objects) == {"settings", "plugins", "trainer", "train_metrics", "history"}
    assert isinstance(ctx.target, TimeToAccuracy) and ctx.target.target == 99.0
    assert [p.name for p in ctx.plugins] == ["a", "b"]
    assert events == ["a ready with ['a', 'b']", "b ready with ['a', 'b']"]  # fired once, after every attach
    ends: list[int] = []
    ctx.trainer.add_event_handler(RunEvents.EPOCH_END, lambda e: ends.append(len(events)))
    ctx.trainer.run(train, max_epochs=2)
    assert events[2:] == ["a sees epoch 1", "b sees epoch 1", "a sees epoch 2", "b sees epoch 2"]
    assert ends == [4, 6]  # EPOCH_END after every plugin's EPOCH_COMPLETED
    assert [r["epoch"] for r in ctx.history.rows] == [1, 2]


def test_the_model_comes_from_the_config_and_fp16_checkpoints_its_scaler(mnist: Path) -> None:
    c = config(mnist, precision="fp16", channels_last=False)
    train, evaluation = build_data(c, CPU)
    ctx = build_run(c, CPU, train, evaluation, output_dir=Path("elsewhere"))
    assert isinstance(ctx.model, TinyNet) and ctx.model.features[0].weight.is_contiguous()
    assert isinstance(ctx.checkpoint_objects["grad_scaler"], LossScaler)
    assert ctx.checkpoint_objects["grad_scaler"] is ctx.trainer.grad_scaler
    assert ctx.target is None and ctx.output_dir == Path("elsewhere")


def test_a_plugin_failing_when_the_run_is_ready_is_named(mnist: Path) -> None:
    """READY's handlers are plugins' (a checkpoint is restored there): a failure there names its plugin."""

    class Restorer(Plugin):
        name = "restorer"

        def attach(self, ctx: RunContext) -> None:
            ctx.trainer.add_event_handler(RunEvents.READY, lambda: {}["missing"])

    c = config(mnist)
    train, evaluation = build_data(c, CPU)
    with pytest.raises(PluginError, match=r"handler 'restorer' failed in trainer READY.*KeyError: 'missing'"):
        build_run(c, CPU, train, evaluation, plugins=[Restorer()])


VIEW_NET = """\
import torch.nn as nn
import torch.nn.functional as F


class ViewNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return F.log_softmax(self.fc(F.relu(self.conv(x)).view(x.size(0), -1)), dim=1)
"""


def test_a_model_that_views_after_a_conv_trains_in_nchw_with_a_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """channels_last is chosen per model: a forward that cannot take it trains as it was written."""
    from mnist_ignite.testing import run_plugin

    (tmp_path / "viewnet.py").write_text(VIEW_NET)
    with caplog.at_level("INFO", logger="mnist_ignite"):
        run = run_plugin(model=f"{tmp_path / 'viewnet.py'}:ViewNet", train=128)
    assert "ViewNet does not take channels_last input (RuntimeError: view size is not compatible" in caplog.text
    assert run.outcome.rows and run.ctx.model.conv.weight.is_contiguous()
    assert run_plugin(train=128).ctx.model.features[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_an_empty_dataset_is_one_line(tmp_path: Path) -> None:
    from mnist_ignite.errors import DataError
    from mnist_ignite.testing import fake_mnist

    data = fake_mnist(tmp_path, train=0, test=16)
    with pytest.raises(DataError, match=r"the MNIST training set under .* holds no images"):
        build_data(Config(data_dir=str(data), download=False), torch.device("cpu"))


def test_a_batch_larger_than_the_data_is_capped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mnist_ignite.testing import fake_mnist

    data = fake_mnist(tmp_path, train=100, test=16)
    with caplog.at_level("WARNING", logger="mnist_ignite"):
        train, _ = build_data(Config(data_dir=str(data), download=False, batch_size=512), torch.device("cpu"))
    assert len(train) == 1 and train.batch_size == 100
    assert "--batch-size 512 is more than the 100 training images: batches of 100" in caplog.text


def test_a_view_after_conv_model_goes_through_summary_and_a_fast_dev_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnist_ignite.cli import main
    from mnist_ignite.testing import fake_mnist

    (tmp_path / "viewnet.py").write_text(VIEW_NET)
    spec = f"{tmp_path / 'viewnet.py'}:ViewNet"
    assert main(["summary", "--model", spec]) == 0
    assert "Total params: 27,090" in capsys.readouterr().out
    data = fake_mnist(tmp_path / "data", train=128, test=64)
    common = ["--model", spec, "--data-dir", str(data), "--no-download", "--device", "cpu"]
    assert main([*common, "--fast-dev-run", "2"]) == 0
    out = capsys.readouterr().out
    assert "does not take channels_last input" in out and "fast-dev-run passed: 2 training batches" in out


@pytest.mark.integration  # torch.compile and the ONNX exporter: tens of seconds
def test_a_view_after_conv_model_compiles_trains_and_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mnist_ignite.cli import main
    from mnist_ignite.testing import fake_mnist

    (tmp_path / "viewnet.py").write_text(VIEW_NET)
    spec = f"{tmp_path / 'viewnet.py'}:ViewNet"
    data = fake_mnist(tmp_path / "data", train=128, test=64)
    common = ["--model", spec, "--data-dir", str(data), "--no-download", "--device", "cpu"]
    assert main([*common, "--fast-dev-run", "--compile"]) == 0
    run = tmp_path / "run"
    assert main([*common, "--epochs", "1", "--output-dir", str(run), "--log-every", "0"]) == 0
    assert main(["export", str(run), "--format", "onnx", "--trust-code", "--check-samples", "32"]) == 0
    assert (run / "final_model.onnx").is_file()
