"""Reading TOML files: one-line errors naming the file, bounded reads, and keys spelt with ``-`` or ``_``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mnist_ignite.cli import main
from mnist_ignite.config.toml import load_toml, read_text_file, read_toml
from mnist_ignite.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return str(path)


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_toml(write(tmp_path, "epochs = = 3"))


def test_a_config_that_is_a_directory_or_not_utf8_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    path = tmp_path / "latin1.toml"
    path.write_bytes("# caf\xe9\nepochs = 2\n".encode("latin-1"))
    assert main(["--config", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_keys_take_either_spelling_and_tables_are_kept_apart(tmp_path: Path) -> None:
    text = 'batch-size = 64\nmax_train_samples = 10\n[early_stopping]\nmin-delta = 0.1\n[model]\nspec = "seed"\n'
    top, tables = read_toml(write(tmp_path, text))
    assert top == {"batch_size": 64, "max_train_samples": 10}
    assert tables == {"early_stopping": {"min_delta": 0.1}, "model": {"spec": "seed"}}


def test_a_key_spelt_both_ways_in_a_table_is_an_error_not_a_merge(tmp_path: Path) -> None:
    path = write(tmp_path, "[plots]\nevery-n = 1\nevery_n = 2\n")
    with pytest.raises(ConfigError) as refused:
        read_toml(path)
    assert str(refused.value) == f"{path}: [plots] 'every_n' is set twice (as '-' and '_' spellings)"


def test_a_missing_file_is_named_as_its_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_toml(tmp_path / "sweep.toml", "sweep file")
    assert str(refused.value) == f"sweep file not found: {tmp_path / 'sweep.toml'}"


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_a_device_is_refused_before_it_is_opened(tmp_path: Path, kind: str) -> None:
    """``--config /dev/zero`` would never end, a FIFO would block: neither is read."""
    path = Path("/dev/zero")
    if kind == "fifo":
        path = tmp_path / "run.toml"
        os.mkfifo(path)
    raised: list[BaseException] = []

    def read() -> None:
        try:
            read_toml(path)
        except ConfigError as err:
            raised.append(err)

    reader = threading.Thread(target=read, daemon=True)  # a blocked open() must not hang the suite
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "read_toml blocked on a FIFO or device"
    assert [str(e) for e in raised] == [
        f"config file {path} is not a regular file (a FIFO, socket or device): refusing to read it"
    ]


def test_a_file_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = Path(write(tmp_path, "epochs = 3\nlr = 0.1\n"))  # 20 bytes
    assert read_text_file(path, "sweep file", max_bytes=20) == "epochs = 3\nlr = 0.1\n"
    with pytest.raises(ConfigError) as refused:
        read_text_file(path, "sweep file", max_bytes=19)
    assert str(refused.value) == f"sweep file {path} is 20 bytes: more than a sweep file holds (limit 19)"
