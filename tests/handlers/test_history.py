from __future__ import annotations

import csv
from pathlib import Path

from mnist_ignite.cli import main
from mnist_ignite.handlers.history import COLUMNS

from conftest import metrics, small_args


def test_json_and_csv_hold_the_same_rows(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "h"
    assert main(small_args(data_dir, out, "--epochs", "2", train=128, eval_=64)) == 0
    rows = metrics(out)
    with (out / "metrics.csv").open() as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == COLUMNS
    assert [int(r["epoch"]) for r in table] == [1, 2]
    assert [float(r["test_acc"]) for r in table] == [r["test_acc"] for r in rows]
