"""The test harness users test their handlers with: a real tiny run, in-process, without MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest
from ignite.engine import Events

from mnist_ignite.core.data import read_mnist
from mnist_ignite.plugins import Plugin, RunContext
from mnist_ignite.testing import TinyNet, fake_mnist, run_plugin


def test_fake_mnist_reads_like_the_real_one(tmp_path: Path) -> None:
    root = fake_mnist(tmp_path, train=100, test=40)
    train, test = read_mnist(root, True, download=False), read_mnist(root, False, download=False)
    assert (len(train), len(test)) == (100, 40)
    assert train.data.shape[1:] == (28, 28) and int(train.data.max()) > 200
    assert set(train.targets.tolist()) <= set(range(10)) and len(set(train.targets.tolist())) > 5


class Counter(Plugin):
    name = "counter"

    def attach(self, ctx: RunContext) -> None:
        self.seen = 0
        ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED(every=2), self.count)

    def count(self) -> None:
        self.seen += 1


def test_run_plugin_returns_the_context_rows_files_and_calls() -> None:
    counter = Counter()
    run = run_plugin(counter, epochs=2, handlers=["history"])
    assert [r["epoch"] for r in run.rows] == [1, 2]
    assert run.iterations == 8 and counter.seen == 4
    assert run.calls["counter"] == {"trainer ITERATION_COMPLETED(every=2)": 4}
    assert {"metrics.json", "metrics.csv", "final_model.pt", "config.json", "results.json"} <= set(run.files)
    assert run.ctx.plugins[0].name == "history" and isinstance(run.ctx.model, TinyNet)


def test_a_tiny_run_learns_the_synthetic_digits() -> None:
    run = run_plugin(epochs=3, train=1024, lr=0.05)
    assert run.rows[-1]["test_acc"] > 40.0  # chance is 10%


def test_run_plugin_takes_any_setting() -> None:
    run = run_plugin(batch_size=32, train=128, seed=3)
    assert run.ctx.config.batch_size == 32 and run.iterations == 4 and run.ctx.config.seed == 3


def test_a_failing_plugin_fails_the_run_with_its_name() -> None:
    def attach(ctx: RunContext) -> None:
        ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED(once=3), lambda: 1 / 0)

    attach.name = "divider"  # type: ignore[attr-defined]
    from mnist_ignite.errors import PluginError

    with pytest.raises(PluginError, match=r"handler 'divider' failed in trainer ITERATION_COMPLETED\(once=3\)"):
        run_plugin(attach)
