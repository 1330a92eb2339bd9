"""The run's per-epoch rows (what metrics.json holds), and the evaluation that makes each row.

:func:`attach_epoch_record` evaluates after every training epoch and publishes the epoch's row
as ``trainer.state.record``; :class:`History` keeps the rows, checkpointed so a resumed run lists
each epoch once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ignite.engine import Engine

    from mnist_ignite.plugins.api import RunContext

__all__ = ["RECORD_KEYS", "History", "attach_epoch_record", "make_record", "seed_results"]

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


def attach_epoch_record(ctx: RunContext) -> None:
    """Evaluate after each training epoch and publish the epoch's row as ``trainer.state.record``.

    Registered before any plugin, so every plugin's ``EPOCH_COMPLETED`` handler sees the row.
    """
    import ignite.distributed as idist
    import torch
    from ignite.engine import Events

    trainer, evaluator, device = ctx.trainer, ctx.evaluator, ctx.device
    clock = {"start": 0.0, "images": 0}

    def start(_: Engine) -> None:
        clock["start"], clock["images"] = time.perf_counter(), 0

    def count(engine: Engine) -> None:
        clock["images"] += int(engine.state.output["y"].shape[0])  # shape only: no device sync

    def evaluate(engine: Engine) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - clock["start"]
        t0 = time.perf_counter()
        metrics = evaluator.run(ctx.eval_data).metrics
        eval_seconds = time.perf_counter() - t0
        images = clock["images"] * idist.get_world_size()
        row = make_record(
            epoch=engine.state.epoch,
            lr=float(ctx.optimizer.param_groups[0]["lr"]),
            train_loss=float(engine.state.metrics["train_loss"]),
            train_acc=100.0 * float(engine.state.metrics["train_acc"]),
            test_loss=float(metrics["loss"]),
            test_acc=100.0 * float(metrics["accuracy"]),
            train_seconds=round(train_seconds, 4),
            eval_seconds=round(eval_seconds, 4),
            train_images_per_second=round(images / max(train_seconds, 1e-9), 1),
        )
        ctx.history.append(row)
        engine.state.record = row

    trainer.add_event_handler(Events.EPOCH_STARTED, start)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, count)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, evaluate)
