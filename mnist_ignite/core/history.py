"""The run's per-epoch rows (what metrics.json holds), checkpointed so a resumed run lists each epoch once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECORD_KEYS", "History", "make_record", "seed_results"]

# the epoch record (trainer.state.record, a row of metrics.json / metrics.csv), in column order
RECORD_KEYS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",  # %, the seed's running correct/processed over the epoch
    "test_loss",
    "test_acc",  # %
    "train_seconds",
    "eval_seconds",
    "train_images_per_second",
)


def make_record(**values: Any) -> dict[str, Any]:
    """An epoch record with exactly :data:`RECORD_KEYS`, in that order."""
    missing, extra = set(RECORD_KEYS) - set(values), set(values) - set(RECORD_KEYS)
    if missing or extra:
        raise ValueError(f"epoch record keys: missing {sorted(missing)}, unknown {sorted(extra)}")
    return {k: values[k] for k in RECORD_KEYS}


def seed_results(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The seed notebook's ``results`` dict from metrics rows."""
    return {
        "train_losses": [r["train_loss"] for r in rows],
        "train_acc": [r["train_acc"] for r in rows],
        "test_losses": [r["test_loss"] for r in rows],
        "test_acc": [r["test_acc"] for r in rows],
    }


@dataclass
class History:
    """One row per finished epoch; a row for an epoch already present replaces it and what follows."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def append(self, row: dict[str, Any]) -> None:
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]

    @property
    def results(self) -> dict[str, list[float]]:
        return seed_results(self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]
