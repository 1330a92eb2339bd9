"""The run's per-epoch rows (what metrics.json holds), checkpointed so a resumed run lists each epoch once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["History", "seed_results"]


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
