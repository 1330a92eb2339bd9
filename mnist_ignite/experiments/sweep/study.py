"""Hyperparameter sweeps on Optuna: the study, its workers and its results; each trial an ordinary run folder.

The sweep file and each trial's command line come from :mod:`mnist_ignite.sweep_file`. The core
(:func:`mnist_ignite.experiments.training.run_once`) runs a trial in ``SWEEP_DIR/trial-NNNN``, with one extra plugin,
:class:`TrialReporter`, that reports each epoch's test accuracy to Optuna and ends a pruned trial
cleanly (the folder is a complete run that ``compare``, ``evaluate`` and ``--resume auto`` accept).

The study lives in Optuna storage: a journal file in the sweep folder by default (several local
processes may write it at once), or any database URL (``--storage postgresql://...``), so workers
on several machines can share one study. ``workers`` local processes share the CPU threads.
The sweep's goal is ``trials`` COMPLETE + PRUNED trials; a failed trial (diverged, killed) does
not count. After ``kill -9`` of a worker or of the whole sweep, running the same command again
marks the trials whose worker is gone as FAIL and carries on. Databases also get Optuna's
heartbeat, which fails the trials of a machine that went silent.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import shlex
import signal
import socket
import sys
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import optuna
from ignite.engine import Engine
from optuna.trial import FrozenTrial, TrialState

from mnist_ignite.config.settings import short_value
from mnist_ignite.core.files import atomic_write, prepare_output_dir
from mnist_ignite.errors import ConfigError, PluginLoadError, StopTraining, StorageError
from mnist_ignite.experiments.sweep.space import SweepSpec, enabled_options, param_args, parse_trial
from mnist_ignite.log import PROG, note
from mnist_ignite.plugins.api import RunContext
from mnist_ignite.plugins.events import RunEvents

__all__ = [
    "StorageError",
    "TrialReporter",
    "fail_orphaned_trials",
    "intermediate_value",
    "objective_value",
    "open_study",
    "run_sweep",
    "run_worker",
    "worker_seed",
    "write_results",
]

JOURNAL = "optuna.journal"
LOCK = ".sweep.lock"
RESULTS_CSV = "sweep_results.csv"
# driver modules SQLAlchemy asks for -> the package to install
DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL", "MySQLdb": "mysqlclient"}
# a RUNNING trial that has not said which process runs it after this long has lost its worker
UNCLAIMED_SECONDS = 120
# database storage: Optuna's heartbeat fails a trial whose worker (on any machine) went silent
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120
# how often a worker with nothing left to start looks whether the other workers' last trials ended
POLL_SECONDS = 2.0


# ------------------------------------------------------------------------------ the objective


def objective_value(objective: str, rows: Sequence[dict[str, Any]], results: dict[str, Any]) -> float:
    """The trial's value: best or final test accuracy (%), or seconds to the target (inf: not reached)."""
    if not rows:
        raise ValueError("the run recorded no epoch")
    if objective == "best":
        return max(float(r["test_acc"]) for r in rows)
    if objective == "final":
        return float(rows[-1]["test_acc"])
    seconds = results.get("target_reached_seconds")
    return math.inf if seconds is None else float(seconds)


def intermediate_value(objective: str, rows: Sequence[dict[str, Any]]) -> float:
    """What the pruner compares at each epoch, in the objective's direction.

    Best: best test accuracy so far; final: this epoch's; time: this epoch's test error (100 - accuracy),
    which a faster trial lowers sooner.
    """
    if objective == "best":
        return max(float(r["test_acc"]) for r in rows)
    if objective == "final":
        return float(rows[-1]["test_acc"])
    return 100.0 - float(rows[-1]["test_acc"])


class TrialReporter:
    """Reports each epoch to the Optuna trial and ends the run cleanly when the pruner says so.

    It listens at ``RunEvents.EPOCH_END``, after the epoch is recorded and checkpointed, and stops
    the trainer with ``terminate()`` rather than raising: the pruned trial's folder is a complete,
    resumable run (final_model.pt, results.json, plots). The sweep then marks the trial PRUNED.
    (optuna-integration's ``PyTorchIgnitePruningHandler`` raises inside the evaluator instead, before
    the epoch's row and checkpoint are written.)
    """

    name = "sweep_trial"

    def __init__(self, trial: optuna.Trial, objective: str) -> None:
        self.trial, self.objective = trial, objective
        self.pruned_epoch: int | None = None
        self.rows: list[dict[str, Any]] = []

    def attach(self, ctx: RunContext) -> None:
        ctx.trainer.add_event_handler(RunEvents.EPOCH_END, self._epoch_end)

    def _epoch_end(self, engine: Engine) -> None:
        record = engine.state.record
        self.rows.append(record)
        self.trial.report(intermediate_value(self.objective, self.rows), step=int(record["epoch"]))
        if engine.should_terminate or record["epoch"] >= engine.state.max_epochs:
            return  # stopping anyway (target reached, last epoch): nothing to prune
        if self.trial.should_prune():
            self.pruned_epoch = int(record["epoch"])
            note(f"sweep: trial {self.trial.number} pruned after epoch {self.pruned_epoch}")
            engine.terminate()


# ---------------------------------------------------------------------------- study and storage


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage_label(spec: SweepSpec) -> str:
    """Where the study lives, for messages (a password in the URL is hidden)."""
    if spec.storage is None:
        return str(Path(spec.output_dir) / JOURNAL)
    try:
        from sqlalchemy.engine import make_url

        return make_url(spec.storage).render_as_string(hide_password=True)
    except Exception:
        return spec.storage.split("://", 1)[0] + "://..."


def open_storage(spec: SweepSpec) -> optuna.storages.BaseStorage:
    """The journal file in the sweep folder, or a database (with Optuna's heartbeat)."""
    if spec.storage is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(Path(spec.output_dir) / JOURNAL)))
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    def connect() -> optuna.storages.RDBStorage:
        return optuna.storages.RDBStorage(
            spec.storage,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
        )

    try:
        for _ in range(4):
            try:
                return connect()
            except (IntegrityError, ProgrammingError):
                # machines starting at once on an empty database race to create Optuna's tables:
                # the loser finds them made on the next try
                time.sleep(0.5 + random.random())
        return connect()
    except ImportError as err:  # SQLAlchemy names the driver module its dialect wants
        module = getattr(err.__cause__, "name", None) or err.name or "?"
        package = DRIVERS.get(module, module)
        raise ConfigError(
            f"--storage {storage_label(spec)} needs the database driver {module!r}: pip install '{package}'"
        ) from None
    except Exception as err:  # sqlalchemy's errors: bad URL, server down, refused login
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StorageError(f"cannot open the study storage {storage_label(spec)}: {reason}") from None


def worker_seed(seed: int | None, existing: int, worker: int, machine: str = "") -> int | None:
    """Each worker's sampler seed, from the sweep's seed, the trials the study held when this run
    started, the worker's index and ``machine``: equal seeds would draw equal trials, in parallel,
    on a rerun, or on two machines that start on one database at the same moment.
    """
    if seed is None:
        return None
    return (seed * 1_000_003 + existing * 7919 + worker + zlib.crc32(machine.encode()) * 31) % 2**32


def machine_name(spec: SweepSpec) -> str:
    """What tells this sweep command from one on another machine: nothing for the sweep folder's own
    journal (a seeded sweep then repeats exactly), host and PID for a shared database (whose trials
    interleave by timing anyway)."""
    return "" if spec.storage is None else f"{socket.gethostname()}:{os.getpid()}"


def _sampler(spec: SweepSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({p.name: p.grid() for p in spec.params}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.sampler_startup_trials, constant_liar=True)


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    # steps are epochs (1, 2, ...): the earliest prunable step is n_warmup_steps
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.pruner_startup_trials, n_warmup_steps=spec.pruner_warmup_epochs + 1
    )


def open_study(spec: SweepSpec, seed: int | None = None, create: bool = False) -> optuna.Study:
    """The sweep's study (created with ``create``), with a sampler seeded by ``seed`` and the pruner."""
    _quiet_optuna()
    storage = open_storage(spec)
    if create:
        study = optuna.create_study(
            storage=storage, study_name=spec.name, direction=spec.direction, load_if_exists=True
        )
        recorded = study.user_attrs.get("sweep")
        if recorded is None:
            study.set_user_attr("sweep", spec.defining())
        elif recorded != json.loads(json.dumps(spec.defining())):
            changed = [k for k in spec.defining() if recorded.get(k) != json.loads(json.dumps(spec.defining()[k]))]
            raise ConfigError(
                f"study {spec.name!r} in {storage_label(spec)} was made with other {', '.join(changed)}: "
                "rerun it with the same [run], [params] and objective, or give the sweep another name or folder"
            )
    try:
        return optuna.load_study(study_name=spec.name, storage=storage, sampler=_sampler(spec, seed),
                                 pruner=_pruner(spec))  # fmt: skip
    except KeyError:
        raise ConfigError(f"no study {spec.name!r} in {storage_label(spec)}") from None


def _counts(study: optuna.Study) -> Counter:
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def _done(counts: Counter) -> int:
    return counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]


# ------------------------------------------------------------------ which process runs a trial


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux): a PID reused later has another one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie is as good as gone


def _sweep_pid() -> int:
    """The PID of the sweep command this process works for (its own, or its parent's for a spawned worker)."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


def _identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid), "sweep": _sweep_pid()}


def _alive(worker: dict[str, Any]) -> bool:
    """Whether the process recorded in ``worker`` (on this host) still runs."""
    pid = int(worker["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = _process_start(pid)
    if Path("/proc").is_dir() and start is None:
        return False  # gone between the two looks, or a zombie
    return worker.get("start") is None or start == worker["start"]


def _fail(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    storage = study._storage  # the storage API is public; the study holds the one it was opened with
    try:
        # a FrozenTrial's id is private; the storage API that takes it is public (another process's trial)
        storage.set_trial_user_attr(trial._trial_id, "error", reason)
        return storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # its worker finished it meanwhile


def fail_orphaned_trials(study: optuna.Study, pid: int | None = None, other_sweeps: bool = False) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone; returns their numbers.

    Only this host's processes can be checked (by PID and start time); a trial that never said
    which process runs it is failed after ``UNCLAIMED_SECONDS``. With ``pid``, only that (dead)
    worker's trials; with ``other_sweeps``, only those of other sweep commands (this one's own
    workers are watched by its main process). Trials on other machines are left to the database heartbeat.
    """
    host, now = socket.gethostname(), time.time()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if worker is None:
            started = t.datetime_start.timestamp() if t.datetime_start else now
            unclaimed = pid is None and now - started > UNCLAIMED_SECONDS
            if unclaimed and _fail(study, t, "its worker stopped before the trial started"):
                failed.append(t.number)
            continue
        if worker.get("host") != host or (other_sweeps and worker.get("sweep") == _sweep_pid()):
            continue
        gone = int(worker["pid"]) == pid if pid is not None else not _alive(worker)
        if gone and _fail(study, t, f"its worker (pid {worker['pid']}) stopped while the trial was running"):
            failed.append(t.number)
    return failed


# ---------------------------------------------------------------------------------- the workers


class _SweepLock:
    """An OS lock on the sweep folder, held from "is another trial needed?" until that trial exists.

    So local workers never start more trials than the goal. The kernel drops it when its process
    dies, even by kill -9.
    """

    def __init__(self, path: Path) -> None:
        self.file: IO[str] = open(path, "a+")  # noqa: SIM115 - held for the worker's life
        self.held = False

    def acquire(self) -> None:
        fcntl.flock(self.file, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.held = False


@dataclass
class WorkerJob:
    """What a worker process needs (picklable: workers start with multiprocessing's spawn)."""

    spec: SweepSpec
    index: int
    seed: int | None  # the sampler's (worker_seed)
    threads: int | None
    deadline: float | None  # time.time() after which no trial starts
    fail_limit: int  # stop when the study holds this many FAIL trials


def _trial_line(spec: SweepSpec, t: FrozenTrial) -> str:
    params = "  ".join(f"{k}={short_value(v)}" for k, v in t.params.items())
    if t.state == TrialState.COMPLETE:
        v = t.value if t.value is not None else math.nan
        if spec.objective == "time":
            outcome = f"{v:.1f} s to {spec.target:g}%" if math.isfinite(v) else f"{spec.target:g}% not reached"
        else:
            outcome = f"{spec.objective} test acc {v:.2f}%"
    elif t.state == TrialState.PRUNED:
        outcome = f"pruned after epoch {t.user_attrs.get('pruned_epoch', '?')}"
    else:
        outcome = f"failed: {t.user_attrs.get('error', 'see its train.log')}"
    seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else 0.0
    return f"trial {t.number:>4}  {t.state.name:<8}  {outcome}  {params}  ({seconds:.0f} s)"


def _read_results(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}


def _objective(
    spec: SweepSpec, options: dict[str, Any], release: Callable[[], None]
) -> Callable[[optuna.Trial], float]:
    from mnist_ignite.errors import Interrupted
    from mnist_ignite.experiments.training import run_once

    def objective(trial: optuna.Trial) -> float:
        release()  # the trial exists (RUNNING): other workers count it from now on
        trial.set_user_attr("worker", _identity())
        values = {p.name: p.suggest(trial) for p in spec.params}
        args = spec.base_args()
        for p in spec.params:
            args += param_args(p.name, values[p.name], options)
        run_dir = Path(spec.output_dir) / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("command", shlex.join([PROG, *args]))
        reporter = TrialReporter(trial, spec.objective)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "train.log", "a", encoding="utf-8") as log:
            try:
                config = parse_trial([*args, "--output-dir", str(run_dir)])
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    rows = run_once(config, [reporter]).rows
            except Exception as err:
                if isinstance(err, Interrupted):  # a signal, not a bug: its one line, no traceback
                    print(f"{PROG}: {err}", file=log)
                else:
                    traceback.print_exc(file=log)
                trial.set_user_attr("error", f"{type(err).__name__}: {err}".splitlines()[0][:500])
                raise
        results = _read_results(run_dir)
        for key in ("best_test_acc", "final_test_acc", "epochs", "train_seconds", "target_reached_seconds"):
            if results.get(key) is not None:
                trial.set_user_attr(key, results[key])
        if reporter.pruned_epoch is not None:
            trial.set_user_attr("pruned_epoch", reporter.pruned_epoch)
            raise optuna.TrialPruned(f"pruned after epoch {reporter.pruned_epoch}")
        return objective_value(spec.objective, rows, results)

    return objective


def run_worker(job: WorkerJob) -> int:
    """Run trials until the study holds its goal of COMPLETE + PRUNED trials; returns an exit code.

    A diverged trial (:class:`StopTraining`) is marked FAIL and the worker goes on; any other error
    ends the worker (the trial's train.log holds the traceback).
    """
    spec = job.spec
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    study = open_study(spec, seed=job.seed)
    options, _ = enabled_options(parse_trial(spec.base_args()).handlers)
    lock = _SweepLock(Path(spec.output_dir) / LOCK)

    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        print(_trial_line(spec, trial), flush=True)

    objective = _objective(spec, options, lock.release)
    waiting: list[int] = []
    while True:
        lock.acquire()
        try:
            counts = _counts(study)
            if _done(counts) >= spec.goal:
                return 0
            if job.deadline is not None and time.time() >= job.deadline:
                return 0
            if counts[TrialState.FAIL] >= job.fail_limit:
                return 0
            if _done(counts) + counts[TrialState.RUNNING] >= spec.goal:
                # the last trials run in other workers (or on other machines): wait for them, as one
                # that fails (or whose worker is lost) leaves the goal to be made up here
                waiting = _look_at_running(study, waiting)
                lock.release()  # while it sleeps, the other local workers go on
                signum = _sleep_unless_terminated(POLL_SECONDS)
                if signum:
                    print(f"{PROG}: {signal.Signals(signum).name} received while waiting: no trial was running here",
                          file=sys.stderr, flush=True)  # fmt: skip
                    return 128 + signum
                continue
            try:
                study.optimize(objective, n_trials=1, catch=(StopTraining,), callbacks=[report])
            except optuna.exceptions.UpdateFinishedTrialError:
                note("a trial of this worker was marked FAIL by another process")
        finally:
            lock.release()


class _Terminated(Exception):
    pass


def _sleep_unless_terminated(seconds: float) -> int:
    """Sleep; a SIGTERM meanwhile ends the sleep at once. Returns that signal's number (0 if none)."""

    def handle(signum: int, _frame: Any) -> None:
        raise _Terminated(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread: leave signals alone
        time.sleep(seconds)
        return 0
    try:
        time.sleep(seconds)
    except _Terminated as stop:
        return int(stop.args[0])
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _look_at_running(study: optuna.Study, announced: list[int]) -> list[int]:
    """Fail the RUNNING trials whose worker is gone; say which ones the worker waits for.

    Returns the running trials' numbers, so the next call speaks only when they change.
    """
    fail_orphaned_trials(study, other_sweeps=True)
    if isinstance(study._storage, optuna.storages.RDBStorage):  # Study exposes no public storage attribute
        optuna.storages.fail_stale_trials(study)  # a silent machine's trials, by Optuna's heartbeat
    running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if running and running != announced:
        print(f"waiting for trial(s) {', '.join(map(str, running))}, run by another worker or machine", flush=True)
    return running


def _worker_main(job: WorkerJob) -> None:
    """A spawned worker process: its exit code says how it ended."""
    sys.exit(_run_guarded(job))


def _run_guarded(job: WorkerJob) -> int:
    from mnist_ignite.errors import Interrupted

    try:
        return run_worker(job)
    except Interrupted as err:
        print(f"{PROG}: worker {job.index}: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except (ConfigError, PluginLoadError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        return 2
    except Exception as err:  # the trial's train.log holds the traceback
        print(f"{PROG}: error: worker {job.index}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1


def _threads(workers: int) -> int:
    """CPU threads per worker: the machine's (or OMP_NUM_THREADS) divided between the workers."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    total = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    return max(1, total // workers)


def _run_processes(jobs: list[WorkerJob], study: optuna.Study) -> int:
    """Start one spawned process per job and wait for all; a worker that dies has its trial failed at once.

    Returns 0 when every worker ended normally, 130 after Ctrl-C, else 1.
    """
    ctx = multiprocessing.get_context("spawn")
    procs = {}
    for job in jobs:
        p = ctx.Process(target=_worker_main, args=(job,), name=f"sweep-worker-{job.index}")
        p.start()
        procs[p.sentinel] = (p, job)
    code = 0

    def forward(signum: int, _frame: Any) -> None:  # SIGTERM: let every worker stop cleanly
        for p, _ in procs.values():
            if p.is_alive():
                os.kill(p.pid, signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while procs:
            try:
                ready = multiprocessing.connection.wait(list(procs))
            except KeyboardInterrupt:  # the workers got the same Ctrl-C: they stop after saving
                code = 130
                continue
            for sentinel in ready:
                p, job = procs.pop(sentinel)
                p.join()
                if p.exitcode == 0:
                    continue
                code = code or (p.exitcode if p.exitcode in (130, 143) else 1)
                how = f"signal {signal.Signals(-p.exitcode).name}" if p.exitcode < 0 else f"exit code {p.exitcode}"
                failed = fail_orphaned_trials(study, pid=p.pid)
                note = f": trial(s) {', '.join(map(str, failed))} marked FAIL" if failed else ""
                print(f"{PROG}: worker {job.index} (pid {p.pid}) stopped with {how}{note}", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code


def _claim_folder(spec: SweepSpec) -> Path:
    """The sweep folder; one that holds another sweep (another study name) is refused."""
    folder = Path(spec.output_dir)
    meta = folder / "sweep.json"
    if meta.is_file():
        try:
            recorded = json.loads(meta.read_text())
        except ValueError:
            recorded = {}
        if recorded.get("name") not in (None, spec.name):
            raise ConfigError(
                f"{folder} holds sweep {recorded['name']!r}, not {spec.name!r}: choose another --output-dir"
            )
    prepare_output_dir(folder)  # one line (exit 1) for a folder that cannot be made or written
    text = json.dumps({"name": spec.name, "storage": storage_label(spec), "sweep_file": spec.path}, indent=2)
    atomic_write(meta, lambda f: f.write(text.encode()))
    return folder


def _check_data(spec: SweepSpec) -> None:
    """Read (or download, once) MNIST before the workers start, so they never download it at the same time."""
    from mnist_ignite.core.data import read_mnist

    config = parse_trial(spec.base_args())
    for train in (True, False):
        read_mnist(config.data_dir, train, config.download)


def _check_model(spec: SweepSpec) -> None:
    """The trials' model builds and takes a batch, before any folder or study exists (exit 2 otherwise)."""
    from mnist_ignite.models.registry import build_model, check_model

    config = parse_trial(spec.base_args())
    check_model(build_model(config.model, config.model_args), config.model, "cpu")


def run_sweep(spec: SweepSpec) -> int:
    """Run (or continue) the sweep, then write its results; returns the exit code.

    0: the goal is reached (or --timeout passed); 1: trials are missing (a worker died, or too
    many trials failed): running the same command again carries on.
    """
    _check_model(spec)
    folder = _claim_folder(spec)
    study = open_study(spec, create=True)
    for number in fail_orphaned_trials(study):
        print(f"trial {number}: its worker is gone (killed or crashed): marked FAIL", flush=True)
    counts = _counts(study)
    goal = spec.goal
    print(
        f"sweep {spec.name!r}: {_done(counts)} of {goal} trials done; study in {storage_label(spec)}; "
        f"trials in {folder}/trial-NNNN (train.log in each)",
        flush=True,
    )
    started = time.time()
    code = 0
    if _done(counts) < goal:
        _check_data(spec)
        limit = counts[TrialState.FAIL] + (spec.max_failures or spec.trials)
        deadline = None if spec.timeout is None else started + spec.timeout
        threads = _threads(spec.workers)
        existing = sum(counts.values())
        jobs = [
            WorkerJob(spec, i, worker_seed(spec.seed, existing, i, machine_name(spec)), threads, deadline, limit)
            for i in range(spec.workers)
        ]
        code = _run_guarded(jobs[0]) if spec.workers == 1 else _run_processes(jobs, study)
    write_results(study, spec, folder)
    counts = _counts(study)
    if code in (130, 143):
        print(f"{PROG}: interrupted: run the same command again to carry on", file=sys.stderr, flush=True)
        return code
    if _done(counts) >= goal:
        return 0
    if spec.timeout is not None and time.time() - started >= spec.timeout:
        print(f"timeout: {spec.timeout:g} s passed with {_done(counts)} of {goal} trials done", flush=True)
        return 0
    why = "a worker stopped early" if code else f"{counts[TrialState.FAIL]} trials failed"
    print(
        f"{PROG}: {_done(counts)} of {goal} trials done ({why}); run the same command again to carry on",
        file=sys.stderr,
        flush=True,
    )
    return 1


# ---------------------------------------------------------------------------------- the results


CSV_ATTRS = ("best_test_acc", "final_test_acc", "epochs", "pruned_epoch", "target_reached_seconds")


def _rounded(value: Any) -> Any:
    """Accuracies and seconds without float noise (94.19999999999999 -> 94.2); parameters keep every digit."""
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value


def write_results(study: optuna.Study, spec: SweepSpec, folder: Path) -> dict[str, Any] | None:
    """sweep_results.csv, Optuna's plots as PNGs, and the best trial printed with its command line."""
    trials = study.get_trials(deepcopy=False)
    names = [p.name for p in spec.params]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["trial", "state", "value", *names, *CSV_ATTRS, "seconds", "run_dir", "host", "error"])
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
        value = _rounded(t.value) if t.state == TrialState.COMPLETE else ""
        writer.writerow([
            t.number, t.state.name, value, *(t.params.get(n, "") for n in names),
            *(_rounded(t.user_attrs.get(a, "")) for a in CSV_ATTRS),
            round(seconds, 1) if seconds != "" else "", t.user_attrs.get("run_dir", ""),
            (t.user_attrs.get("worker") or {}).get("host", ""), t.user_attrs.get("error", ""),
        ])  # fmt: skip
    atomic_write(folder / RESULTS_CSV, lambda f: f.write(buf.getvalue().encode()))
    notes = write_plots(study, spec, folder / "plots")
    counts = Counter(t.state for t in trials)
    print(
        f"{len(trials)} trials: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed, {counts[TrialState.RUNNING]} running; {folder / RESULTS_CSV}",
        flush=True,
    )
    for line in notes:
        print(f"  note: {line}", flush=True)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    if not complete:
        print("no completed trial with a finite value yet: no best trial", flush=True)
        return None
    best = study.best_trial
    print(f"best: {_trial_line(spec, best)}", flush=True)
    print(f"  folder: {best.user_attrs.get('run_dir', '?')}", flush=True)
    print(f"  reproduce: {best.user_attrs.get('command', '?')}", flush=True)
    return {"number": best.number, "value": best.value, "params": best.params}


def write_plots(study: optuna.Study, spec: SweepSpec, folder: Path) -> list[str]:
    """The sweep's figures as PNGs (:mod:`.figures`); returns notes on the ones left out (too few trials)."""
    from mnist_ignite.experiments.sweep.figures import history_figure, importance_figure, parallel_figure

    trials = study.get_trials(deepcopy=False)
    finite = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    varied = {k for t in finite for k in t.params if len({repr(u.params.get(k)) for u in finite}) > 1}

    def importances() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for PED-ANOVA
            found = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
            )
        return importance_figure(found, spec)

    plots: list[tuple[str, Callable[[], Any], str | None]] = [
        ("optimization_history.png", lambda: history_figure(trials, spec), None if finite else
         "optimization_history.png needs a completed trial"),
        ("param_importances.png", importances, None if len(finite) >= 2 and varied else
         "param_importances.png needs 2 completed trials whose parameters differ"),
        ("parallel_coordinate.png", lambda: parallel_figure(trials, spec), None if finite else
         "parallel_coordinate.png needs a completed trial"),
    ]  # fmt: skip
    notes = []
    folder.mkdir(parents=True, exist_ok=True)
    for name, plot, missing in plots:
        if missing:
            notes.append(missing)
            continue
        try:
            fig = plot()
        except (ValueError, RuntimeError, ZeroDivisionError) as err:  # Optuna refuses degenerate studies
            notes.append(f"{name} left out: {err}")
            continue
        atomic_write(folder / name, lambda f, fig=fig: fig.savefig(f, format="png", dpi=90))
    return notes
