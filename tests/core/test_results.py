"""A run's clock and its results.json: read from a real tiny run and a real engine."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from ignite.engine import Engine, Events

from mnist_ignite.core import results
from mnist_ignite.core.history import History
from mnist_ignite.core.results import StartupClock, process_seconds, run_clock_base, summarize
from mnist_ignite.testing import PluginRun, run_plugin


@pytest.fixture(scope="module")
def run() -> PluginRun:
    return run_plugin(epochs=2)


def test_process_seconds_count_from_the_process_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """From /proc: the interpreter's start-up is counted, so it is more than the time since the import."""
    since_import = time.time() - results._IMPORTED
    first = process_seconds()
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    # older than the import (/proc counts in 10 ms clock ticks), younger than the machine; a loaded machine may
    # take minutes between the interpreter's start and this module's import (collection), so no tighter bound
    assert since_import - 0.02 <= first <= uptime
    assert process_seconds() >= first

    def no_clock_ticks(name: str) -> int:
        raise ValueError(name)

    monkeypatch.setattr(results.os, "sysconf", no_clock_ticks)  # no /proc clock: since the import instead
    assert process_seconds() == pytest.approx(time.time() - results._IMPORTED, abs=0.05)


def test_only_the_first_run_in_a_process_counts_the_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--repeat`` runs its seeds in one process: a later seed's start-up starts at its own call."""
    monkeypatch.setattr(results, "_runs_started", 0)
    assert run_clock_base() == 0.0
    assert run_clock_base() == pytest.approx(process_seconds(), abs=0.05)


def test_the_startup_clock_stops_at_the_first_step_less_what_is_excluded() -> None:
    engine = Engine(lambda e, batch: time.sleep(0.05))
    base = process_seconds()
    clock = StartupClock(base=base, excluded=0.5)
    clock.attach(engine)
    first: list[float] = []
    engine.add_event_handler(Events.ITERATION_STARTED(once=1), lambda: first.append(process_seconds()))
    engine.run(range(3), max_epochs=1)
    assert clock.seconds is not None
    assert clock.seconds == pytest.approx(first[0] - base - 0.5, abs=0.025)  # the first step's, not a later one
    assert clock.elapsed() >= 0.14  # the clock itself goes on


def test_results_are_the_whole_runs_numbers_and_written_as_json(run: PluginRun) -> None:
    got = run.outcome.results
    assert got is not None
    rows = run.rows
    best = max(rows, key=lambda r: r["test_acc"])
    assert got["epochs"] == 2 and got["final_test_acc"] == rows[-1]["test_acc"]
    assert (got["best_test_acc"], got["best_epoch"]) == (best["test_acc"], best["epoch"])
    assert got["train_seconds"] == round(sum(r["train_seconds"] for r in rows), 3) > 0
    assert got["eval_seconds"] == round(sum(r["eval_seconds"] for r in rows), 3) > 0
    assert 0 < got["startup_seconds"] <= got["total_seconds"]
    assert got["lr_find_seconds"] is None and got["resumed_at_epoch"] is None
    assert got["skipped_steps"] is None  # no fp16: no loss scaling
    assert got["target_acc"] is None and got["target_reached_epoch"] is None
    assert json.loads((run.output_dir / "results.json").read_text()) == got


def test_a_run_with_no_epoch_and_a_resumed_run_are_summarized(run: PluginRun) -> None:
    clock = StartupClock(base=process_seconds())
    empty = summarize(dataclasses.replace(run.ctx, history=History()), clock, resumed_at=0, lr_find_seconds=1.23456)
    assert (empty["epochs"], empty["final_test_acc"], empty["best_epoch"]) == (0, None, None)
    assert (empty["train_seconds"], empty["startup_seconds"], empty["lr_find_seconds"]) == (0, None, 1.235)
    resumed = summarize(run.ctx, clock, resumed_at=1)
    assert resumed["resumed_at_epoch"] == 1 and resumed["epochs"] == 2  # the whole run's epochs
