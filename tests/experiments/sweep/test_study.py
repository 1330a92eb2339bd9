"""The sweep's study without training: objectives, worker seeds, trials whose worker is gone."""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from mnist_ignite.experiments.sweep.study import fail_orphaned_trials, intermediate_value, objective_value, worker_seed

ROWS = [{"epoch": 1, "test_acc": 90.0}, {"epoch": 2, "test_acc": 95.0}, {"epoch": 3, "test_acc": 94.0}]


@pytest.mark.parametrize(
    ("objective", "results", "value", "intermediate"),
    [
        ("best", {}, 95.0, 95.0),
        ("final", {}, 94.0, 94.0),
        ("time", {"target_reached_seconds": 12.5}, 12.5, 6.0),
        ("time", {"target_reached_seconds": None}, math.inf, 6.0),
    ],
)
def test_objectives(objective: str, results: dict[str, Any], value: float, intermediate: float) -> None:
    assert objective_value(objective, ROWS, results) == value
    assert intermediate_value(objective, ROWS) == pytest.approx(intermediate)


def test_worker_seeds_differ_between_workers_and_reruns() -> None:
    seeds = {worker_seed(7, existing, worker) for existing in (0, 4, 9) for worker in range(4)}
    assert len(seeds) == 12 and worker_seed(None, 3, 1) is None
    assert worker_seed(7, 0, 1) == worker_seed(7, 0, 1)  # reproducible
    # two machines starting on one database at once: same seed, same trial count, same worker index
    assert worker_seed(7, 0, 0, "host-a:100") != worker_seed(7, 0, 0, "host-b:100") != worker_seed(7, 0, 0)


def _exit() -> None:
    pass


@pytest.mark.integration
def test_running_trials_of_dead_workers_are_failed_and_live_ones_kept() -> None:
    dead = multiprocessing.get_context("fork").Process(target=_exit)
    dead.start()
    dead.join()
    study = optuna.create_study()
    trials = {}
    host = socket.gethostname()
    for name, worker in {
        "dead": {"host": host, "pid": dead.pid, "start": None},
        "alive": {"host": host, "pid": os.getpid(), "start": None},
        "elsewhere": {"host": host + "-other", "pid": dead.pid, "start": None},
        "reused pid": {"host": host, "pid": os.getpid(), "start": "1"},  # same pid, another process start
    }.items():
        trial = study.ask()
        trial.set_user_attr("worker", worker)
        trials[name] = trial.number
    assert sorted(fail_orphaned_trials(study)) == sorted([trials["dead"], trials["reused pid"]])
    states = {name: study.trials[n].state for name, n in trials.items()}
    assert states == {
        "dead": TrialState.FAIL, "alive": TrialState.RUNNING, "elsewhere": TrialState.RUNNING,
        "reused pid": TrialState.FAIL,
    }  # fmt: skip
    assert "stopped while the trial was running" in study.trials[trials["dead"]].user_attrs["error"]
