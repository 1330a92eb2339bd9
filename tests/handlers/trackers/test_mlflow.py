"""The mlflow handler on real runs, read back with MLflow's own client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from subprocess import Popen

import pytest
import torch

from conftest import ROOT, metrics, run_cli, small_args

pytest.importorskip("mlflow", reason="pip install 'mnist-ignite[mlflow]'")

from mlflow.tracking import MlflowClient

ENV = {"OMP_NUM_THREADS": "1"}
# MLflow's own SQLAlchemy store, on SQLAlchemy 2.1
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


def args(data_dir: str, out: Path, *extra: str) -> list[str]:
    """A small CPU run with the default handlers on (plots included)."""
    return [a for a in small_args(data_dir, out, *extra) if a != "--no-plots"]


def client_for(out: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{(out.parent / 'mlflow.db').resolve()}")  # shared by the runs there


def only_run(client: MlflowClient) -> object:
    experiment = client.get_experiment_by_name("mnist-ignite")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_params_metrics_and_artifacts_read_back(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = args(data_dir, out, "--epochs", "2", "--lr", "0.02", "--handler", "mlflow", "--mlflow-every", "4")
    result = run_cli(*run, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning" not in result.stderr
    rows = metrics(out)
    client = client_for(out)
    found = only_run(client)
    run_id = found.info.run_id
    assert found.info.status == "FINISHED"
    assert found.info.run_name == "run"
    assert found.data.params["lr"] == "0.02"
    assert found.data.params["max_train_samples"] == "512"
    assert found.data.params["handlers"].endswith(",mlflow")
    for key in ("test_acc", "train_loss", "test_loss", "train_images_per_second"):
        assert history(client, run_id, key) == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]
    # 512 images / batch 64 = 8 iterations an epoch, logged every 4th (no spaces in the names)
    assert [s for s, _ in history(client, run_id, "train/batch_loss")] == [4, 8, 12, 16]
    assert history(client, run_id, "lr") == [(s, pytest.approx(0.02)) for s in (4, 8, 12, 16)]
    # artifacts: the final model (the same weights as final_model.pt), run files and plots
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"final_model.pt", "config.json", "metrics.csv", "plots"} <= names
    plots = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/metrics.png", "plots/samples.png", "plots/confusion_matrix.png"} <= plots
    local = Path(client.download_artifacts(run_id, "final_model.pt", str(tmp_path)))
    logged, saved = torch.load(local), torch.load(out / "final_model.pt")
    assert logged.keys() == saved.keys()
    assert all(torch.equal(logged[k], saved[k]) for k in saved)
    # everything stays in the folder of runs, shared by them (not the run's own files)
    assert (out.parent / "mlartifacts").is_dir() and not (out / "mlflow.db").exists()
    assert "mlflow: logging to the store shared by the runs in" in result.stdout
    assert not (ROOT / "mlruns").exists() and not (ROOT / "mlartifacts").exists()


def test_a_resumed_run_continues_the_same_mlflow_run(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_cli(*args(data_dir, out, "--epochs", "1", "--handler", "mlflow"), env=ENV)
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_cli(*args(data_dir, out, "--epochs", "2", "--handler", "mlflow", "--resume", "auto"), env=ENV)
    assert again.returncode == 0, again.stderr[-2000:]
    client = client_for(out)
    found = only_run(client)
    assert [s for s, _ in history(client, found.info.run_id, "test_acc")] == [1, 2]
    assert found.info.status == "FINISHED"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_absent_tracking_server_warns_once_and_training_goes_on(data_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    result = run_cli(*args(data_dir, out, "--epochs", "2", "--handler", "mlflow", "--mlflow-uri", uri), env=ENV)
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "warning: mlflow" in line]
    assert len(warnings) == 1, result.stderr
    assert "starting the MLflow run failed" in warnings[0] and "training goes on" in warnings[0]
    assert [r["epoch"] for r in metrics(out)] == [1, 2]
    assert (out / "final_model.pt").is_file()
    assert elapsed < 120, f"the run took {elapsed:.0f} s: a tracker must not hold it up"


def test_a_server_that_goes_away_mid_run_warns_once_and_training_goes_on(data_dir: str, tmp_path: Path) -> None:
    """A real ``mlflow server``, stopped after the first epoch."""
    port = free_port()
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    server_db = f"sqlite:///{tmp_path / 'server.db'}"
    stores = ["--backend-store-uri", server_db, "--default-artifact-root", str(tmp_path / "server-artifacts")]
    server = subprocess.Popen(
        [mlflow_cli, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *stores],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopping it stops its workers too
    )
    training: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 180
        while not up(port):
            assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(1)
        out = tmp_path / "run"
        run = args(data_dir, out, "--epochs", "6", "--handler", "mlflow", "--mlflow-uri", f"http://127.0.0.1:{port}")
        log = (tmp_path / "stderr.txt").open("w")  # a file, not a pipe: nobody reads while it runs
        training = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "train_mnist.py"), *run],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, **ENV},
        )
        client = MlflowClient(tracking_uri=server_db)
        while not epoch_logged(client) and training.poll() is None:  # the first epoch reached the server
            time.sleep(0.5)
        epochs_before = len(metrics(out))
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        training.wait(timeout=600)
        log.close()
    finally:  # whatever failed, nothing this test started outlives it
        for process, kill in ((server, lambda p: os.killpg(p.pid, signal.SIGKILL)), (training, Popen.kill)):
            if process is not None and process.poll() is None:
                kill(process)
                process.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert training.returncode == 0, stderr[-2000:]
    warnings = [line for line in stderr.splitlines() if "warning: mlflow" in line]
    assert len(warnings) == 1 and "training goes on" in warnings[0], stderr
    assert epochs_before < 6, "the server had to go away mid-run"
    assert [r["epoch"] for r in metrics(out)] == [1, 2, 3, 4, 5, 6]
    assert (out / "final_model.pt").is_file()


def epoch_logged(client: MlflowClient) -> bool:
    try:
        experiment = client.get_experiment_by_name("mnist-ignite")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        return bool(runs) and bool(client.get_metric_history(runs[0].info.run_id, "test_acc"))
    except Exception:  # the database is still being created
        return False


def up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.integration  # starts a process
def test_missing_package_is_one_line_naming_the_extra_before_any_data(tmp_path: Path) -> None:
    # an uninstalled package, as import machinery sees it: sys.modules[name] = None
    code = "import sys; sys.modules['mlflow'] = None; from mnist_ignite.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "--handler", "mlflow", "--no-download", "--device", "cpu"]
    command += ["--data-dir", str(tmp_path / "no-mnist-here"), "--output-dir", str(tmp_path / "run")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mnist-ignite: error: handler 'mlflow': the mlflow package is missing: pip install 'mnist-ignite[mlflow]'"
    ]
    assert not (tmp_path / "run").exists()
