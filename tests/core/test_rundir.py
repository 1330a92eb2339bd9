"""The run folder: used folders refused, --overwrite, the OS lock, no debris from failed starts."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.core.rundir import LOCK, RunDir
from mnist_ignite.errors import RunDirError

from conftest import metrics, run_cli, small_args


@pytest.fixture(scope="module")
def finished(data_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    assert main(small_args(data_dir, out, "--epochs", "1", train=128, eval_=64)) == 0
    return out


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_second_run_into_a_used_folder_is_refused_and_changes_nothing(
    finished: Path, data_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(finished)
    assert main(small_args(data_dir, finished, "--epochs", "1", train=128, eval_=64)) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume auto" in err and "--overwrite" in err
    assert snapshot(finished) == before


def test_overwrite_replaces_the_old_run_and_its_checkpoints(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(small_args(data_dir, out, "--epochs", "2", train=128, eval_=64)) == 0
    (out / "notes.txt").write_text("mine")
    (out / "plots" / "my_figure.png").write_text("mine too")
    (out / "checkpoints" / "my_backup.pt").write_text("and this")
    assert main(small_args(data_dir, out, "--epochs", "1", "--overwrite", train=128, eval_=64)) == 0
    assert [r["epoch"] for r in metrics(out)] == [1]
    # the old run's epoch-2 checkpoint is gone: --resume auto cannot pick it up
    assert sorted(p.name for p in (out / "checkpoints").glob("last_*.pt")) == ["last_checkpoint_2.pt"]
    assert (out / "notes.txt").read_text() == "mine"  # not a run file: never touched
    assert (out / "plots" / "my_figure.png").is_file() and (out / "checkpoints" / "my_backup.pt").is_file()


def test_a_folder_with_other_files_is_used_without_touching_them(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "shared"
    out.mkdir()
    (out / "README.txt").write_text("my notes")
    assert main(small_args(data_dir, out, "--epochs", "1", train=128, eval_=64)) == 0
    assert (out / "README.txt").read_text() == "my notes" and (out / "final_model.pt").is_file()


def test_a_folder_in_use_by_another_process_is_refused(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    with open(out / LOCK, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running mnist-ignite holds
        result = run_cli(*small_args(data_dir, out, "--epochs", "1", train=64, eval_=64))
    assert result.returncode == 2 and "in use by another mnist-ignite process" in result.stderr
    assert not (out / "config.json").exists()


@pytest.mark.integration  # starts a process
def test_a_run_that_never_started_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "never"
    result = run_cli(
        "--data-dir", str(tmp_path / "nodata"), "--no-download", "--device", "cpu", "--output-dir", str(out)
    )
    assert result.returncode == 1 and "MNIST" in result.stderr
    assert not out.exists()


def test_rundir_refuses_without_resume_or_overwrite(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RunDirError, match="already holds a run"):
        RunDir(tmp_path, resume=False, overwrite=False).claim()
    claimed = RunDir(tmp_path, resume=True, overwrite=False)
    assert claimed.claim() == tmp_path
    claimed.release(started=True)
    assert (tmp_path / "config.json").exists()
