from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ignite.engine import Events
from torch.utils.data import DataLoader, Subset

from mnist_ignite import utils
from mnist_ignite.model import Model, summary
from mnist_ignite.models.net import Net


def test_summary_lists_layers_shapes_and_total() -> None:
    text = summary(Net())
    assert "Conv2d-1" in text and "[-1, 32, 26, 26]" in text and "Linear-2" in text
    assert "Total params: 593,200" in text


@pytest.fixture(scope="module")
def loaders(data_dir: str) -> tuple[DataLoader, DataLoader]:
    train, test = utils.get_train_and_test_mnist_data(data_dir)
    torch.manual_seed(0)
    return (
        DataLoader(Subset(train, range(640)), batch_size=64, shuffle=True),
        DataLoader(Subset(test, range(200)), batch_size=100),
    )


def test_seed_notebook_flow(loaders: tuple[DataLoader, DataLoader], capsys: pytest.CaptureFixture[str]) -> None:
    train_loader, test_loader = loaders
    assert isinstance(Model.check_cuda_availability(), bool)
    model = Model(train_loader, test_loader, lr=0.01, momentum=0.9, device="cpu")
    model.show_summary()
    results = model.run(num_epochs=2)
    assert results is model.results
    assert set(results) == {"train_losses", "train_acc", "test_losses", "test_acc"}
    assert all(len(v) == 2 for v in results.values())
    assert all(0 <= a <= 100 for a in results["train_acc"] + results["test_acc"])
    assert model.trainer.state.epoch == 2 and model.trainer.state.iteration == 20
    loss, acc = model.train()  # one more epoch continues, it does not restart
    assert loss == model.results["train_losses"][-1] and acc == model.results["train_acc"][-1]
    assert model.trainer.state.epoch == 3 and len(model.results["train_losses"]) == 3
    out = capsys.readouterr().out
    assert "Total params: 593,200" in out and "Test set: Average loss" in out


def test_model_accepts_learning_rate_alias(loaders: tuple[DataLoader, DataLoader]) -> None:
    model = Model(*loaders, learning_rate=0.05, device="cpu", handlers=())
    assert model.optimizer.param_groups[0]["lr"] == 0.05


def test_model_steps_lr_per_epoch_like_the_seed(loaders: tuple[DataLoader, DataLoader]) -> None:
    train_loader, test_loader = loaders
    tiny = DataLoader(Subset(train_loader.dataset, range(64)), batch_size=64)
    model = Model(tiny, test_loader, device="cpu", handlers=("lr_schedule",))
    lrs = []
    for _ in range(17):
        model.train()
        lrs.append(model.optimizer.param_groups[0]["lr"])
    assert lrs[:15] == [0.01] * 15
    assert lrs[15:] == pytest.approx([0.001, 0.001])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_builtin_handler_works_under_the_notebook_facade(
    loaders: tuple[DataLoader, DataLoader], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    handlers = ["nan_guard", "lr_schedule", "checkpoint", "history", "progress", "plots", "time_limit", "visdom"]
    model = Model(
        *loaders,
        device="cpu",
        handlers=[*handlers, "early_stopping"],
        output_dir=tmp_path,
        progress_always=True,
        patience=1,
        min_delta=100.0,  # no epoch can gain 100 points: early stopping ends the run after epoch 2
        visdom_port=free_port(),  # no server there: the dashboard goes to visdom.log only
    )
    results = model.run(num_epochs=5)
    model.close()
    assert model.stopped and model.trainer.state.epoch == 2 and len(results["test_acc"]) == 2
    rows = json.loads((tmp_path / "metrics.json").read_text())  # history
    assert [r["epoch"] for r in rows] == [1, 2] and [r["test_acc"] for r in rows] == results["test_acc"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("last_*.pt")) == [
        "last_checkpoint_10.pt",
        "last_checkpoint_20.pt",
    ]
    assert list((tmp_path / "checkpoints").glob("best_model_*.pt"))
    for png in ("metrics.png", "samples.png", "confusion_matrix.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 1000, png
    events = [json.loads(line) for line in (tmp_path / "visdom.log").read_text().splitlines()]
    assert {msg.get("win") for _, msg in events} >= {"loss", "accuracy", "samples"}
    err = capsys.readouterr().err
    assert "train" in err and "%" in err  # the progress bar, forced on outside a terminal
    assert model.optimizer.param_groups[0]["lr"] == 0.01  # lr_schedule: StepLR(15) has not decayed yet


def test_a_diverging_model_stops_with_the_nan_guard(loaders: tuple[DataLoader, DataLoader]) -> None:
    from mnist_ignite.errors import StopTraining

    model = Model(*loaders, lr=1e6, device="cpu", handlers=["nan_guard"])
    with pytest.raises(StopTraining, match="NaN/Inf"):
        model.run(num_epochs=2)


def test_a_plugin_error_under_the_facade_is_raised_naming_it(loaders: tuple[DataLoader, DataLoader]) -> None:
    from mnist_ignite.errors import PluginError

    def exploding(ctx):
        ctx.trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: 1 / 0)

    model = Model(*loaders, device="cpu", handlers=["lr_schedule", exploding])  # a plugin object or function too
    with pytest.raises(PluginError, match=r"handler .exploding. failed in trainer EPOCH_COMPLETED at test_model\.py"):
        model.train()


def test_time_limit_stops_the_facade(loaders: tuple[DataLoader, DataLoader]) -> None:
    model = Model(*loaders, device="cpu", handlers=["time_limit"], time_limit=1)
    model.trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: __import__("time").sleep(0.15))
    model.run(num_epochs=3)
    assert model.stopped and model.trainer.state.epoch == 1  # 10 iterations x 0.15 s > 1 s


def test_the_facade_refuses_a_named_folder_that_holds_a_run_and_typos_in_options(
    loaders: tuple[DataLoader, DataLoader], tmp_path: Path
) -> None:
    from mnist_ignite.errors import ConfigError, RunDirError

    first = Model(*loaders, device="cpu", handlers=["checkpoint", "history"], output_dir=tmp_path)
    first.train()
    first.close()
    with pytest.raises(
        RunDirError,
        match=r"already holds a run \(.*\): resume=True continues it, overwrite=True replaces it, "
        r"or choose another output_dir$",
    ):
        Model(*loaders, device="cpu", handlers=["checkpoint"], output_dir=tmp_path)
    again = Model(*loaders, device="cpu", handlers=["checkpoint"], output_dir=tmp_path, overwrite=True)
    again.close()
    with pytest.raises(ConfigError, match=r"patiense=2\): unknown option patiense \(did you mean patience\?\)"):
        Model(*loaders, device="cpu", handlers=["early_stopping"], patiense=2)


def test_a_notebook_run_folder_is_a_run_that_the_commands_take(tmp_path: Path) -> None:
    """Model(output_dir=...) writes config.json, final_model.pt and results.json after each epoch."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from mnist_ignite.artifacts.trained import load_trained
    from mnist_ignite.cli import main
    from mnist_ignite.core.data import read_mnist
    from mnist_ignite.model import Model
    from mnist_ignite.testing import fake_mnist

    data = fake_mnist(tmp_path / "data", train=128, test=64)

    def loader(train: bool) -> DataLoader:
        split = read_mnist(str(data), train, False)
        x = (split.data.float() / 255 - 0.1307).div(0.3081).unsqueeze(1)
        return DataLoader(TensorDataset(x, split.targets), batch_size=64)

    folder = tmp_path / "nb"
    model = Model(loader(True), loader(False), device="cpu", handlers=[], output_dir=folder)
    model.run(num_epochs=1)
    assert {"config.json", "final_model.pt", "results.json"} <= {p.name for p in folder.iterdir()}
    assert __import__("json").loads((folder / "results.json").read_text())["epochs"] == 1
    trained = load_trained(str(folder), torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(trained.model.parameters(), model.model.parameters(), strict=True))
    code = main(
        ["evaluate", str(folder), "--data-dir", str(data), "--device", "cpu", "--output-dir", str(tmp_path / "e")]
    )
    assert code == 0


def test_resume_true_continues_a_notebook_run_after_a_restart(
    loaders: tuple[DataLoader, DataLoader], tmp_path: Path, data_dir: str
) -> None:
    """A named folder gets checkpoints by default; resume=True picks the run up where it stopped."""
    from mnist_ignite.errors import ConfigError, RunDirError

    folder = tmp_path / "nb"
    first = Model(*loaders, device="cpu", output_dir=folder)
    assert {"checkpoint", "history"} <= set(first.config.handlers)  # the defaults with a named folder
    first.run(num_epochs=2)
    import json

    recorded = json.loads((folder / "config.json").read_text())
    assert recorded["data_dir"] == str(Path(data_dir).resolve())  # what the loaders read, for the commands
    assert (recorded["max_train_samples"], recorded["max_eval_samples"], recorded["batch_size"]) == (640, 200, 64)
    assert [r["epoch"] for r in json.loads((folder / "metrics.json").read_text())] == [1, 2]  # compare takes it
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}
    lr, results = first.optimizer.param_groups[0]["lr"], {k: list(v) for k, v in first.results.items()}
    first.close()

    again = Model(*loaders, device="cpu", output_dir=folder, resume=True)
    assert again.trainer.state.epoch == 2 and again.trainer.state.iteration == 20
    assert all(torch.equal(weights[k], v) for k, v in again.model.state_dict().items())
    assert again.optimizer.param_groups[0]["lr"] == lr
    assert again.results == results  # the earlier epochs, for plot_model_results
    again.run(num_epochs=1)
    assert again.trainer.state.epoch == 3 and len(again.results["test_acc"]) == 3
    again.close()
    results = json.loads((folder / "results.json").read_text())
    assert results["epochs"] == 3 and results["resumed_at_epoch"] == 2

    with pytest.raises(ConfigError, match=r"resume=True\) needs output_dir="):
        Model(*loaders, device="cpu", resume=True)
    with pytest.raises(ConfigError, match="resume=True and overwrite=True contradict each other"):
        Model(*loaders, device="cpu", output_dir=folder, resume=True, overwrite=True)
    plain = tmp_path / "plain"
    earlier = Model(*loaders, device="cpu", handlers=[], output_dir=plain)
    earlier.run(num_epochs=1)
    with pytest.raises(ConfigError, match=r"resume=True needs the checkpoint handler"):
        Model(*loaders, device="cpu", handlers=[], output_dir=plain, resume=True)
    with pytest.raises(RunDirError, match=r"no checkpoint .* overwrite=True replaces that run$"):
        Model(*loaders, device="cpu", output_dir=plain, resume=True)
    assert not (plain / "checkpoints").exists() or not any((plain / "checkpoints").iterdir())
    # the cell run again while the earlier Model still lives: the new one takes the folder, the old one is closed
    rerun = Model(*loaders, device="cpu", output_dir=plain, overwrite=True)
    with pytest.raises(RunDirError, match=r"this Model is closed: a newer Model took .*plain; make a new one"):
        earlier.train()
    rerun.run(num_epochs=1)
    rerun.close()
