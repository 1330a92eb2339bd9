"""The checkpoint format: names, finding the newest, reading back, plugin states checked at save time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_ignite.core.checkpoint import (
    FORMAT,
    PluginStates,
    best_name,
    find_best,
    find_checkpoints,
    last_name,
    model_record,
    read_checkpoint,
    run_dir_of,
)
from mnist_ignite.core.files import save_torch
from mnist_ignite.errors import CheckpointLoadError, PluginError


def test_newest_checkpoint_first_and_names_that_are_no_files_skipped(tmp_path: Path) -> None:
    for i in (5, 40, 12):
        (tmp_path / last_name(i)).write_bytes(b"x")
    (tmp_path / last_name(99)).mkdir()  # a folder named like the newest: not a checkpoint
    os.symlink(tmp_path / last_name(5), tmp_path / last_name(100))  # nor a symlink
    (tmp_path / best_name(9, 99.0)).write_bytes(b"x")
    assert [p.name for p in find_checkpoints(tmp_path)] == [last_name(40), last_name(12), last_name(5)]
    assert find_checkpoints(tmp_path / "missing") == []
    assert find_best(tmp_path).name == "best_model_9_test_acc=99.0000.pt"


def test_run_dir_of_a_checkpoint(tmp_path: Path) -> None:
    assert run_dir_of(tmp_path / "run" / "checkpoints" / "last_checkpoint_3.pt") == tmp_path / "run"
    assert run_dir_of(tmp_path / "elsewhere" / "model.pt") == tmp_path / "elsewhere"


def test_read_checkpoint_checks_the_format_and_the_epoch_length(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    save_torch(good, {"meta": {"format": FORMAT, "spec": "seed"}, "trainer": {"epoch_length": 8}})
    assert read_checkpoint(good, 8)["meta"]["spec"] == "seed"
    with pytest.raises(CheckpointLoadError, match="made with 8 iterations per epoch, this run has 9"):
        read_checkpoint(good, 9)
    other = tmp_path / "other.pt"
    save_torch(other, {"model": {"w": torch.zeros(1)}})
    with pytest.raises(CheckpointLoadError, match="not an mnist-ignite checkpoint"):
        read_checkpoint(other)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"meta": {"spec": "pkg:Net", "model_args": {"w": 2}}}, ("pkg:Net", {"w": 2})),
        ({"meta": {}, "settings": {"model": "seed", "model_args": {}}}, ("seed", {})),
        ({"model": {}}, None),
    ],
)
def test_model_record(state: dict, expected: tuple | None) -> None:
    assert model_record(state) == expected


class _Stateful:
    def __init__(self, name: str, state: object) -> None:
        self.name, self.state = name, state

    def state_dict(self) -> object:
        return self.state


@pytest.mark.parametrize(
    ("state", "where"),
    [
        ({"best": np.float64(0.5)}, "['best'] (a numpy.float64)"),  # a float subclass torch refuses
        ({"where": Path("x")}, "['where'] (a pathlib.PosixPath)"),
    ],
)
def test_a_state_a_weights_only_load_refuses_fails_at_save_naming_the_plugin(state: object, where: str) -> None:
    with pytest.raises(PluginError, match="handler 'picky' failed in state_dict") as err:
        PluginStates([_Stateful("picky", state)]).state_dict()
    assert where in str(err.value)


def test_plain_states_are_kept_by_name() -> None:
    states = PluginStates([_Stateful("a", {"n": 1, "t": torch.ones(2)}), _Stateful("b", [1.5, "x"])]).state_dict()
    assert states["a"]["n"] == 1 and states["b"] == [1.5, "x"]
