"""``mnist-ignite sweep``: real sweeps on MNIST subsets (CPU), workers, kill -9, pruning, PostgreSQL.

Every trial is a real run (default handlers on) of a few hundred images; the study is read back
with Optuna itself.
"""

from __future__ import annotations

import csv
import glob
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from mnist_ignite.cli import main as cli
from mnist_ignite.cli.commands import compare
from mnist_ignite.config.argv import parse_config

from conftest import ROOT, metrics, run_cli


def main(argv: list[str]) -> int:
    """``mnist-ignite sweep ARGV`` in this process, its errors mapped to exit codes by the dispatcher."""
    return cli(["sweep", *argv])


ENV = {"OMP_NUM_THREADS": "1"}


def sweep_file(path: Path, data_dir: str, sweep: str, params: str, epochs: int = 1) -> Path:
    """A sweep on 256 training and 256 test images, batch 16 (16 steps an epoch)."""
    path.write_text(
        f"[sweep]\n{sweep}\n"
        f"[run]\nepochs = {epochs}\nmax_train_samples = 256\nmax_eval_samples = 256\nbatch_size = 16\n"
        f"device = 'cpu'\ndata_dir = '{data_dir}'\ndownload = false\n"
        f"[params]\n{params}\n"
    )
    return path


def study_of(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(folder / "optuna.journal")))
    )


def states(study: optuna.Study) -> Counter:
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def test_four_trials_with_two_workers(data_dir: str, tmp_path: Path) -> None:
    spec = sweep_file(
        tmp_path / "two.toml",
        data_dir,
        "trials = 4\nsampler = 'random'\nseed = 2\npruner = 'none'",
        "lr = { low = 0.01, high = 0.1, log = true }\nmomentum = [0.8, 0.9]",
    )
    out = tmp_path / "sweep"
    result = run_cli("sweep", str(spec), "--workers", "2", "--output-dir", str(out), env=ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    study = study_of(out, "two")
    assert states(study) == {TrialState.COMPLETE: 4}  # exactly the goal: no extra trial from the second worker
    hosts_pids = {t.user_attrs["worker"]["pid"] for t in study.trials}
    assert len(hosts_pids) == 2  # both workers ran trials
    for t in study.trials:  # each trial an ordinary run folder
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir == out / f"trial-{t.number:04d}"
        assert {"config.json", "metrics.json", "results.json", "final_model.pt", "train.log"} <= {
            p.name for p in run_dir.iterdir()
        }
        assert t.value == t.user_attrs["best_test_acc"]
    rows = list(csv.DictReader((out / "sweep_results.csv").open()))
    assert [r["trial"] for r in rows] == ["0", "1", "2", "3"] and {r["state"] for r in rows} == {"COMPLETE"}
    assert {float(r["lr"]) for r in rows} == {t.params["lr"] for t in study.trials}
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        png = out / "plots" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    # the best trial, printed with a command line that reproduces it
    best = study.best_trial
    assert f"best: trial    {best.number}" in result.stdout
    line = next(ln for ln in result.stdout.splitlines() if "reproduce:" in ln).split("reproduce:", 1)[1]
    words = shlex.split(line)
    assert words[0] == "mnist-ignite"
    config = parse_config(words[1:])
    assert config.lr == best.params["lr"] and config.momentum == best.params["momentum"]
    assert (config.epochs, config.max_train_samples, config.batch_size) == (1, 256, 16)
    # compare reads the sweep folder like any folder of runs
    assert compare.main([str(out), "--output", str(tmp_path / "compare")]) == 0
    assert len(list(csv.DictReader((tmp_path / "compare" / "compare.csv").open()))) == 4
    # the same command again: nothing left to do, the results are rewritten
    again = run_cli("sweep", str(spec), "--workers", "2", "--output-dir", str(out), env=ENV)
    assert again.returncode == 0 and "4 of 4 trials done" in again.stdout
    assert len(study_of(out, "two").trials) == 4


def _running_mid_epoch(study: optuna.Study, skip: set[int]) -> optuna.trial.FrozenTrial | None:
    """A RUNNING trial, past its first epoch (metrics.json written), whose worker is known."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in skip or "worker" not in t.user_attrs or "run_dir" not in t.user_attrs:
            continue
        if (Path(t.user_attrs["run_dir"]) / "metrics.json").exists():
            return t
    return None


def _wait_for(find: Any, proc: subprocess.Popen, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = find()
        if found is not None:
            return found
        time.sleep(0.2)
    return None


def test_kill_9_of_a_worker_and_of_the_whole_sweep_then_rerun_completes(data_dir: str, tmp_path: Path) -> None:
    spec = sweep_file(
        tmp_path / "crash.toml",
        data_dir,
        "trials = 4\nsampler = 'random'\nseed = 1\npruner = 'none'",
        "lr = { low = 0.01, high = 0.08 }",
        epochs=3,
    )
    out = tmp_path / "sweep"
    command = [sys.executable, str(ROOT / "examples" / "train_mnist.py"), "sweep", str(spec), "--output-dir", str(out)]
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(
        [*command, "--workers", "2"], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ENV},
        start_new_session=True,
    )  # fmt: skip
    killed: dict[str, int] = {}
    try:
        study = _wait_for(lambda: study_of(out, "crash") if (out / "optuna.journal").exists() else None, proc)
        assert study is not None, (tmp_path / "first.log").read_text()
        # one worker, mid-trial: the sweep marks its trial FAIL at once and goes on with the other worker
        trial = _wait_for(lambda: _running_mid_epoch(study, set()), proc)
        assert trial is not None, (tmp_path / "first.log").read_text()
        os.kill(trial.user_attrs["worker"]["pid"], signal.SIGKILL)
        killed["worker"] = trial.number
        # let the sweep notice that death (slow on a loaded machine) before its whole process group goes
        log.flush()
        noticed = _wait_for(lambda: "stopped with signal" in (tmp_path / "first.log").read_text() or None, proc)
        assert noticed, (tmp_path / "first.log").read_text()
        # then the whole sweep (its process group), while another trial runs
        trial = _wait_for(lambda: _running_mid_epoch(study, {killed["worker"]}), proc)
        if trial is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed["sweep"] = trial.number
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    first = (tmp_path / "first.log").read_text()
    assert f"stopped with signal SIGKILL: trial(s) {killed['worker']} marked FAIL" in first, first
    assert "sweep" in killed, "the sweep finished before the second kill: make its trials longer"
    study = study_of(out, "crash")
    assert study.trials[killed["sweep"]].state == TrialState.RUNNING  # nobody was left to notice

    result = subprocess.run([*command, "--workers", "2"], capture_output=True, text=True, env={**os.environ, **ENV})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"trial {killed['sweep']}: its worker is gone (killed or crashed): marked FAIL" in result.stdout
    study = study_of(out, "crash")
    counts = states(study)
    assert counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] == 4 and counts[TrialState.RUNNING] == 0
    for number in killed.values():
        t = study.trials[number]
        assert t.state == TrialState.FAIL and "stopped while the trial was running" in t.user_attrs["error"]
        # the killed trial's folder keeps what it wrote: its finished epochs, resumable
        assert (Path(t.user_attrs["run_dir"]) / "metrics.json").exists()
    rows = list(csv.DictReader((out / "sweep_results.csv").open()))
    assert Counter(r["state"] for r in rows)["FAIL"] == counts[TrialState.FAIL] >= 2


def test_a_sweep_waits_for_trials_running_elsewhere_and_makes_up_a_failed_one(
    data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the study holds 3 trials of its goal of 3: one done, two running on another machine. This
    # machine has nothing to start, so it waits; one of them completes, the other fails: the goal
    # is made up here with one trial, and the command ends 0 (it ended 1 while they still ran)
    spec = sweep_file(
        tmp_path / "wait.toml", data_dir, "trials = 3\nsampler = 'random'\nseed = 3\npruner = 'none'",
        "lr = { low = 0.01, high = 0.05 }",
    )  # fmt: skip
    out = tmp_path / "sweep"
    out.mkdir()
    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    elsewhere = optuna.create_study(study_name="wait", storage=storage, direction="maximize")
    elsewhere.enqueue_trial({"lr": 0.02})
    elsewhere.tell(elsewhere.ask(), 20.0)
    running = [elsewhere.ask() for _ in range(2)]
    for trial in running:
        trial.set_user_attr("worker", {"host": "another-machine", "pid": 1, "start": None, "sweep": 1})

    def finish_them() -> None:
        time.sleep(3)
        elsewhere.tell(running[0], 21.0)
        time.sleep(3)
        elsewhere.tell(running[1], state=TrialState.FAIL)

    finisher = threading.Thread(target=finish_them)
    finisher.start()
    try:
        code = main([str(spec), "--output-dir", str(out)])
    finally:
        finisher.join()
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "1 of 3 trials done" in printed and "waiting for trial(s) 1, 2, run by another worker or machine" in printed
    assert "waiting for trial(s) 2, run by another worker or machine" in printed  # said again when it changed
    study = study_of(out, "wait")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL, TrialState.COMPLETE]
    assert Path(study.trials[3].user_attrs["run_dir"]) == out / "trial-0003"
    assert "trial    3  COMPLETE" in printed


def test_sigterm_ends_the_wait_for_trials_elsewhere(data_dir: str, tmp_path: Path) -> None:
    spec = sweep_file(tmp_path / "term.toml", data_dir, "trials = 1\nsampler = 'random'", "lr = [0.01]")
    out = tmp_path / "sweep"
    out.mkdir()
    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    elsewhere = optuna.create_study(study_name="term", storage=storage, direction="maximize")
    elsewhere.ask().set_user_attr("worker", {"host": "another-machine", "pid": 1, "start": None, "sweep": 1})
    log = tmp_path / "term.log"
    with log.open("w") as f:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "train_mnist.py"), "sweep", str(spec), "--output-dir", str(out)],
            stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **ENV},
        )  # fmt: skip
        try:
            assert _wait_for(lambda: "waiting for trial(s) 0" in log.read_text() or None, proc), log.read_text()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 143, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert "SIGTERM received while waiting: no trial was running here" in text
    assert "interrupted: run the same command again to carry on" in text
    assert study_of(out, "term").trials[0].state == TrialState.RUNNING  # another machine's trial: left alone


def test_median_pruner_stops_bad_trials_early(data_dir: str, tmp_path: Path) -> None:
    # lr from 1e-6 (learns nothing in 2 epochs) to 0.2; this seed draws 0.048 first, then tiny rates
    spec = sweep_file(
        tmp_path / "prune.toml",
        data_dir,
        "trials = 4\nsampler = 'random'\nseed = 6\npruner = 'median'\npruner_startup_trials = 2",
        "lr = { low = 1e-6, high = 0.2, log = true }",
        epochs=2,
    )
    out = tmp_path / "sweep"
    assert main([str(spec), "--output-dir", str(out)]) == 0
    study = study_of(out, "prune")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned and len(study.trials) == 4
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    for t in pruned:
        assert t.user_attrs["pruned_epoch"] == 1 and t.user_attrs["epochs"] == 1
        assert t.params["lr"] < min(c.params["lr"] for c in complete if c.value > 15)
        # the pruned run ended cleanly: a complete folder that --resume auto would continue
        run_dir = Path(t.user_attrs["run_dir"])
        assert (run_dir / "final_model.pt").exists() and (run_dir / "results.json").exists()
        assert "stopped early by a handler at epoch 1" in (run_dir / "train.log").read_text()
        assert t.intermediate_values == {1: t.user_attrs["best_test_acc"]}
    # and --resume auto continues a pruned trial to the end, with the trial's own command line
    t = pruned[0]
    words = shlex.split(t.user_attrs["command"])[1:]
    result = run_cli(*words, "--output-dir", t.user_attrs["run_dir"], "--resume", "auto", env=ENV)
    assert result.returncode == 0, result.stderr
    assert [r["epoch"] for r in metrics(Path(t.user_attrs["run_dir"]))] == [1, 2]


def test_time_objective_is_seconds_to_the_target(data_dir: str, tmp_path: Path) -> None:
    # 5% is reached after the first epoch by any run (chance is 10%): each trial stops there
    spec = sweep_file(
        tmp_path / "fast.toml",
        data_dir,
        "trials = 2\nobjective = 'time'\ntarget = 5.0\nsampler = 'random'\nseed = 0",
        "lr = { low = 0.01, high = 0.05 }",
        epochs=3,
    )
    out = tmp_path / "sweep"
    assert main([str(spec), "--output-dir", str(out)]) == 0
    study = study_of(out, "fast")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and len(study.trials) == 2
    for t in study.trials:
        assert t.state == TrialState.COMPLETE and t.user_attrs["epochs"] == 1
        assert 0 < t.value == t.user_attrs["target_reached_seconds"] < 600
        assert "--target-acc 5.0" in t.user_attrs["command"]


@pytest.mark.integration  # starts a process
def test_missing_optuna_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    code = "import sys; sys.modules['optuna'] = None; from mnist_ignite.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "sweep", "x.toml"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "mnist-ignite: error: the sweep command needs Optuna: pip install 'mnist-ignite[sweep]'\n"


def test_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[params]\nlr = { low = 0.1, high = 0.01 }\n")
    assert main([str(bad)]) == 2
    assert capsys.readouterr().err.strip().endswith("[params] lr: low must be < high, got 0.1 and 0.01")
    assert main([str(tmp_path / "none.toml")]) == 2
    assert "sweep file not found" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text("[params]\nlr = [0.01]\n")
    other = tmp_path / "other.toml"
    other.write_text("[params]\nlr = [0.01]\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "sweep.json").write_text('{"name": "good"}')
    assert main([str(other), "--output-dir", str(tmp_path / "used")]) == 2
    assert "holds sweep 'good', not 'other'" in capsys.readouterr().err
    assert main([str(good), "--workers", "1000"]) == 2
    assert "--workers must be between 1 and" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith("is a directory, not a file")
    # an output folder that cannot be made: one line, exit 1 (it was a traceback)
    assert main([str(good), "--output-dir", str(good)]) == 1
    assert capsys.readouterr().err == f"mnist-ignite: error: cannot use {good} as the output folder: it is a file\n"


def test_no_trial_starts_after_the_timeout(data_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = sweep_file(tmp_path / "late.toml", data_dir, "trials = 3", "lr = [0.01, 0.02]")
    assert main([str(spec), "--timeout", "0.001", "--output-dir", str(tmp_path / "sweep")]) == 0
    out = capsys.readouterr().out
    assert "timeout: 0.001 s passed with 0 of 3 trials done" in out
    assert study_of(tmp_path / "sweep", "late").trials == []


# ------------------------------------------------------------------ PostgreSQL: one study, two "machines"


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))), None)
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free port of 127.0.0.1, stopped by its PID afterwards.

    initdb refuses root: as root the server runs as the ``postgres`` (or ``nobody``) user.
    """
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian: apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="mnist-ignite-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = next(u for u in ("postgres", "nobody") if _has_user(u))
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    port = _free_port()
    data = folder / "data"
    pid = None
    try:
        subprocess.run(
            [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "sweep", "--auth=trust", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
             "-o", f"-p {port} -h 127.0.0.1 -k {folder}", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        yield f"postgresql+psycopg://sweep@127.0.0.1:{port}/postgres"  # psycopg 3, whatever SQLAlchemy's default
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGINT)  # "fast" shutdown
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_two_machines_share_one_study_in_postgresql(data_dir: str, tmp_path: Path, postgres_url: str) -> None:
    spec = sweep_file(
        tmp_path / "shared.toml",
        data_dir,
        "trials = 3\nsampler = 'tpe'\nsampler_startup_trials = 2\nseed = 4\npruner = 'median'",
        "lr = { low = 0.005, high = 0.1, log = true }",
    )
    # two sweep commands at once, each with its own folder (as on two machines), one database
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "examples" / "train_mnist.py"),
                "sweep",
                str(spec),
                "--storage",
                postgres_url,
                "--output-dir",
                str(tmp_path / f"machine-{i}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **ENV},
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    counts = states(study)
    # each process checks the goal before it starts a trial; two machines may race for the last one
    assert 3 <= counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] <= 4 and counts[TrialState.FAIL] == 0
    folders = {t.number: Path(t.user_attrs["run_dir"]) for t in study.trials}
    assert all((folder / "results.json").exists() for folder in folders.values())
    assert {folder.parent.name for folder in folders.values()} <= {"machine-0", "machine-1"}
    # one seed, both started at once: each machine still draws its own values (they used to repeat each other)
    assert len({t.params["lr"] for t in study.trials}) == len(study.trials)
    for i in range(2):  # each machine's results list the whole study
        rows = list(csv.DictReader((tmp_path / f"machine-{i}" / "sweep_results.csv").open()))
        assert len(rows) == len(study.trials)
    assert "sweep@127.0.0.1" in outputs[0]  # where the study lives is said (a password would be hidden)


def test_a_model_that_cannot_run_is_exit_2_before_the_study_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.py").write_text(
        "import torch.nn as nn\n\nclass Broken(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(3, 10)\n\n    def forward(self, x):\n        return self.fc(x)\n"
    )
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        f'[sweep]\nname = "bad"\ntrials = 1\n[run]\nepochs = 1\nmodel = "{tmp_path / "broken.py"}:Broken"\n'
        "[params]\nlr = {low = 0.001, high = 0.1, log = true}\n"
    )
    from mnist_ignite.cli import main as cli

    assert cli(["sweep", str(sweep), "--output-dir", str(tmp_path / "out")]) == 2
    assert "failed on a (2, 1, 28, 28) batch" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
