from __future__ import annotations

import csv
import json

from mnist_ignite.core.history import RECORD_KEYS
from mnist_ignite.testing import run_plugin


def test_json_and_csv_hold_the_same_rows_after_every_epoch() -> None:
    run = run_plugin(handlers=["history"], epochs=2)
    rows = json.loads((run.output_dir / "metrics.json").read_text())
    with (run.output_dir / "metrics.csv").open() as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == RECORD_KEYS
    assert [int(r["epoch"]) for r in table] == [1, 2] == [r["epoch"] for r in rows]
    assert [float(r["test_acc"]) for r in table] == [r["test_acc"] for r in rows] == [r["test_acc"] for r in run.rows]
    assert run.calls["history"] == {"trainer EPOCH_COMPLETED": 2}
