"""The tensorboard handler on real runs, read back with TensorBoard's own event reader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, metrics, run_cli, small_args

pytest.importorskip("tensorboard", reason="pip install 'mnist-ignite[tensorboard]'")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

ENV = {"OMP_NUM_THREADS": "1"}


def args(data_dir: str, out: Path, *extra: str) -> list[str]:
    """A small CPU run with the default handlers on (plots included)."""
    return [a for a in small_args(data_dir, out, *extra) if a != "--no-plots"]


def read(log_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_scalars_hparams_and_images_read_back(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = args(data_dir, out, "--epochs", "2", "--handler", "tensorboard", "--tensorboard-every", "4")
    result = run_cli(*run, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning" not in result.stderr
    rows = metrics(out)
    events = read(out / "tensorboard")

    def scalars(tag: str) -> list[tuple[int, float]]:
        return [(e.step, e.value) for e in events.Scalars(tag)]

    # per epoch: the rows of metrics.json, step = the iteration the epoch ends at (8 an epoch)
    for key, tag in [("test_acc", "accuracy/test"), ("train_loss", "loss/train"), ("test_loss", "loss/test")]:
        assert scalars(tag) == [(8 * r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]
    # per iteration: 512 images / batch 64 = 8 iterations an epoch, logged every 4th
    assert [s for s, _ in scalars("train/batch_loss")] == [4, 8, 12, 16]
    assert all(0 < v < 5 for _, v in scalars("train/batch_loss"))
    assert scalars("lr/group_0") == [(s, pytest.approx(0.01)) for s in (4, 8, 12, 16)]
    # the HPARAMS tab: this run's settings, a finished session
    hp = {k: HParamsPluginData.FromString(v) for k, v in events.PluginTagToContent("hparams").items()}
    start = hp["_hparams_/session_start_info"].session_start_info.hparams
    assert start["lr"].number_value == pytest.approx(0.01)
    assert start["batch_size"].number_value == 64
    assert start["handlers"].string_value.endswith("tensorboard")
    assert hp["_hparams_/session_end_info"].session_end_info.status == 1  # STATUS_SUCCESS
    metric_tags = {m.name.tag for m in hp["_hparams_/experiment"].experiment.metric_infos}
    assert metric_tags == {"accuracy/test", "loss/test"}
    # a grid of training images (12, PNG-encoded by TensorBoard)
    images = events.Images("samples")
    assert len(images) == 1 and images[0].encoded_image_string.startswith(b"\x89PNG")
    config = json.loads((out / "config.json").read_text())
    assert config["handlers"][-1] == "tensorboard"


def test_a_resumed_run_replaces_what_came_after_its_checkpoint(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = args(data_dir, out, "--handler", "tensorboard", "--tensorboard-every", "4", "--epochs", "2")
    first = run_cli(*run, env=ENV)
    assert first.returncode == 0, first.stderr[-2000:]
    # as after a crash in epoch 2: resume from the end of epoch 1 (iteration 8); steps 12 and 16 are redone
    (epoch1,) = (out / "checkpoints").glob("last_checkpoint_8.pt")
    again = run_cli(*run, "--resume", str(epoch1), env=ENV)
    assert again.returncode == 0, again.stderr[-2000:]
    events = read(out / "tensorboard")
    assert [e.step for e in events.Scalars("train/batch_loss")] == [4, 8, 12, 16]  # each step once
    assert [e.step for e in events.Scalars("accuracy/test")] == [8, 16]
    assert [e.value for e in events.Scalars("accuracy/test")] == pytest.approx([r["test_acc"] for r in metrics(out)])


def test_a_broken_log_folder_warns_once_and_training_goes_on(data_dir: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tmp_path / "run"
    run = args(data_dir, out, "--epochs", "2", "--handler", "tensorboard", "--tensorboard-dir", str(blocker / "tb"))
    result = run_cli(*run, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "warning: tensorboard" in line]
    assert len(warnings) == 1, result.stderr
    assert "training goes on" in warnings[0]
    assert [r["epoch"] for r in metrics(out)] == [1, 2]
    assert (out / "final_model.pt").is_file()


@pytest.mark.integration  # starts a process
def test_missing_package_is_one_line_naming_the_extra_before_any_data(tmp_path: Path) -> None:
    # an uninstalled package, as import machinery sees it: sys.modules[name] = None
    code = (
        "import sys; sys.modules['tensorboard'] = None; from mnist_ignite.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    missing_data = tmp_path / "no-mnist-here"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--handler",
            "tensorboard",
            "--data-dir",
            str(missing_data),
            "--no-download",
            "--output-dir",
            str(tmp_path / "run"),
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mnist-ignite: error: handler 'tensorboard': the tensorboard package is missing: "
        "pip install 'mnist-ignite[tensorboard]'"
    ]
    assert not (tmp_path / "run").exists()
