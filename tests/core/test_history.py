from __future__ import annotations

from mnist_ignite.core.history import History


def row(epoch: int, acc: float) -> dict[str, float]:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": acc - 1, "test_loss": 0.5 / epoch, "test_acc": acc}


def test_each_epoch_appears_once_even_when_replayed() -> None:
    h = History()
    for e in (1, 2, 3):
        h.append(row(e, 90 + e))
    h.append(row(2, 99.0))  # a run resumed from epoch 1 redoes epoch 2: later rows go
    assert [r["epoch"] for r in h.rows] == [1, 2] and h.rows[-1]["test_acc"] == 99.0


def test_results_is_the_seed_dict_and_state_round_trips() -> None:
    h = History([row(1, 95.0), row(2, 97.0)])
    assert h.results == {
        "train_losses": [1.0, 0.5],
        "train_acc": [94.0, 96.0],
        "test_losses": [0.5, 0.25],
        "test_acc": [95.0, 97.0],
    }
    copy = History()
    copy.load_state_dict(h.state_dict())
    assert copy == h
