from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
import torch

from mnist_ignite.cli import main
from mnist_ignite.core.files import atomic_write, load_tensors, save_json
from mnist_ignite.errors import OutputWriteError

from conftest import small_args


def test_a_crash_mid_write_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    save_json(path, [1, 2])

    def crash(f: Any) -> None:
        f.write(b"[1, 2, 3")
        raise KeyboardInterrupt  # killed halfway through

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert path.read_text() == "[\n  1,\n  2\n]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_disk_full_is_a_clear_error(tmp_path: Path) -> None:
    def full(_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputWriteError, match="the disk is full; the previous file is unchanged"):
        atomic_write(tmp_path / "x.pt", full)


def test_disk_full_during_a_run_keeps_the_previous_checkpoint(
    data_dir: str, tmp_path: Path, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import mnist_ignite.core.files as files

    real, calls = files.atomic_write, []

    def fills_up(path: Path, write: Any) -> Path:
        if Path(path).name.startswith("last_checkpoint"):
            calls.append(path)
        if len(calls) == 2 and Path(path).name.startswith(
            "last_checkpoint"
        ):  # the second checkpoint hits a full disk after writing half of it
            return real(path, lambda f: (f.write(b"half"), (_ for _ in ()).throw(OSError(errno.ENOSPC, "full"))))
        return real(path, write)

    monkeypatch.setattr(files, "atomic_write", fills_up)
    out = tmp_path / "run"
    assert main(small_args(data_dir, out, "--epochs", "3", train=128, eval_=64)) == 1
    err = capsys.readouterr().err
    assert "the disk is full" in err and "checkpoints/last_checkpoint_" in err
    (saved,) = (out / "checkpoints").glob("last_*.pt")
    assert saved.name == "last_checkpoint_2.pt"
    assert "model" in load_tensors(saved)


def test_outputs_are_readable_by_others(tmp_path: Path) -> None:
    path = save_json(tmp_path / "m.json", {})
    assert path.stat().st_mode & 0o044 == 0o044  # like open(): umask 022 gives rw-r--r--


def test_load_tensors_reads_a_plain_state_dict(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(load_tensors(tmp_path / "ok.pt")["w"], torch.ones(2))


def test_a_fifo_or_a_folder_as_a_checkpoint_is_refused_without_reading(tmp_path: Path) -> None:
    import os

    from mnist_ignite.core.files import load_tensors
    from mnist_ignite.errors import CheckpointLoadError

    os.mkfifo(tmp_path / "last.pt")
    (tmp_path / "dir.pt").mkdir()
    for name in ("last.pt", "dir.pt"):
        with pytest.raises(CheckpointLoadError, match=r"is not a regular file \(a folder, FIFO or device\)"):
            load_tensors(tmp_path / name)
    with pytest.raises(CheckpointLoadError, match="checkpoint not found"):
        load_tensors(tmp_path / "missing.pt")
