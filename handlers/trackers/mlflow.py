"""MLflow tracking: params, metrics, the model and plots as artifacts.

Where it goes: ``--mlflow-uri``, else ``MLFLOW_TRACKING_URI``, else one SQLite store shared by every
run beside this one (``sqlite:///RUNS/mlflow.db`` where RUNS holds the run folder, ``runs/`` by
default; artifacts in RUNS/mlartifacts), so ``mlflow ui --backend-store-uri sqlite:///RUNS/mlflow.db``
shows them side by side (as Lightning's ``MLFlowLogger`` shares ``./mlruns``). The run says where at
its start. One MLflow run per training run, in experiment ``--mlflow-experiment``, named after the
run folder; a resumed run continues it. The shared store is not the run's own file: ``--overwrite``
leaves it (and the other runs in it) alone.

What goes in: the run's settings as params; ``train/batch_loss`` and ``lr`` every N iterations
(step = iteration); each epoch's row of metrics.json (``train_loss``, ``test_acc``, ...; step =
epoch); at the end ``final_model.pt``, ``config.json``, ``metrics.csv`` and ``plots/`` as
artifacts, and the run's status.

Every MLflow call runs in order on one worker thread (:class:`~mnist_ignite.plugins.background.Background`),
so a slow or absent tracking server never holds up a training step (HTTP calls time out after a
few seconds). A failure warns once and training goes on without MLflow. mlflow's own API is used
directly: Ignite's ``MLflowLogger`` starts its run in its constructor on the calling thread, and
its handlers name metrics with spaces (``train batch_loss``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.plugins import Option, Output, RunContext
from mnist_ignite.plugins.background import Background

from .base import EPOCH_SCALARS, TrackerPlugin, flat_settings

if TYPE_CHECKING:  # torch, Ignite and mlflow load when a run starts, not for --help
    import torch
    from ignite.engine import Engine

__all__ = ["MLflowPlugin"]

# a remote tracking server that does not answer costs seconds, not minutes (MLflow's defaults: 120 s, 7 retries)
HTTP_TIMEOUTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
CLOSE_WAIT_SECONDS = 60  # what close() waits for queued calls before it drops them
ARTIFACTS = ("config.json", "metrics.csv", "metrics.json")
FOLDER_TAG = "mnist_ignite.output_dir"  # finds the MLflow run again when the run resumes


class MLflowPlugin(TrackerPlugin):
    """Logs the run to MLflow on the main process; see the module docstring."""

    name = "mlflow"
    description = "MLflow tracking: params, metrics, final_model.pt and plots as artifacts"
    package = extra = "mlflow"
    outputs: tuple[Output, ...] = ()  # the default store is shared by the runs beside this one, not this run's
    options = (
        Option(
            "mlflow-uri",
            str,
            None,
            "tracking URI (env MLFLOW_TRACKING_URI; default sqlite:///RUNS/mlflow.db, shared by the runs in the "
            "folder that holds this run's)",
        ),
        Option("mlflow-experiment", str, "mnist-ignite", "MLflow experiment name"),
        Option("mlflow-every", int, 10, "log the batch loss and lr every N iterations"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.mlflow_every < 1:
            raise ValueError("mlflow-every must be >= 1")
        self.worker: Background | None = None
        self.run_id = ""
        self.resume_run_id = ""
        self.resuming = False
        self.finished = False

    # the worker thread ----------------------------------------------------------------------
    def submit(self, what: str, call: Any, *args: Any, **kwargs: Any) -> None:
        """Queue one MLflow call; the first failure turns the tracker off (see ``TrackerPlugin.fail``)."""
        if self.worker is not None:
            self.worker.submit(what, call, *args, **kwargs)

    def attach(self, ctx: RunContext) -> None:
        self.ctx = ctx
        if not ctx.is_main_process:
            return
        import mlflow  # noqa: F401 - here, not at the first log: importing takes a second or two
        from ignite.engine import Events

        self.uri = self.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or self._local_uri(ctx.output_dir)
        if self.uri == self._local_uri(ctx.output_dir):
            root = ctx.output_dir.resolve().parent
            ctx.log(
                f"mlflow: logging to the store shared by the runs in {root}: mlflow ui --backend-store-uri {self.uri}"
            )
        self.worker = Background(self.name, stop_on_error=True, on_error=self.fail)
        t = ctx.trainer
        t.add_event_handler(Events.STARTED, self.started)  # after READY: a resumed run knows its MLflow run
        t.add_event_handler(Events.ITERATION_COMPLETED(every=self.mlflow_every), self.iteration)
        t.add_event_handler(Events.EPOCH_COMPLETED, self.epoch)
        t.add_event_handler(Events.COMPLETED | Events.TERMINATE, self._finished)

    def iteration(self, engine: Engine) -> None:
        """The batch loss and the lr; the loss is read (a host sync on a GPU) on the worker thread, not here."""
        import mlflow

        loss = engine.state.output["loss"].detach().clone()
        lr = float(self.ctx.optimizer.param_groups[0]["lr"])

        def log(step: int) -> None:
            mlflow.log_metrics({"train/batch_loss": float(loss), "lr": lr}, step=step)

        self.submit("logging the batch loss and lr", log, engine.state.iteration)

    @staticmethod
    def _local_uri(output_dir: Path) -> str:
        return f"sqlite:///{output_dir.resolve().parent / 'mlflow.db'}"

    def started(self, engine: Engine) -> None:
        self.submit("starting the MLflow run", self._start, flat_settings(self.ctx.config))

    def _start(self, settings: dict[str, Any]) -> None:
        """On the worker thread: MLflow's active run is per thread, so every call stays on this one."""
        import mlflow

        if self.uri.startswith(("http://", "https://")):
            for key, value in HTTP_TIMEOUTS.items():
                os.environ.setdefault(key, value)
        for name in ("mlflow.store.db.utils", "alembic"):  # schema creation chatter on a new database
            logging.getLogger(name).setLevel(logging.WARNING)
        mlflow.set_tracking_uri(self.uri)
        experiment = mlflow.get_experiment_by_name(self.mlflow_experiment)
        if experiment is None:
            local = self.uri == self._local_uri(self.ctx.output_dir)
            location = (self.ctx.output_dir.resolve().parent / "mlartifacts").as_uri() if local else None
            experiment_id = mlflow.create_experiment(self.mlflow_experiment, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        # a fresh thread has no active run: this run's own, never a caller's
        previous = self._previous_run(experiment_id) if self.resuming else None
        if previous:
            mlflow.start_run(run_id=previous)
        else:
            mlflow.start_run(experiment_id=experiment_id, run_name=self.ctx.output_dir.resolve().name)
            mlflow.set_tag(FOLDER_TAG, str(self.ctx.output_dir.resolve()))
            mlflow.log_params(settings)
        self.run_id = mlflow.active_run().info.run_id

    def _previous_run(self, experiment_id: str) -> str | None:
        """The MLflow run of the run being resumed: from the checkpoint, else the newest one of this folder.

        (The first checkpoint may come before the worker has started the MLflow run.)
        """
        import mlflow

        if self.resume_run_id:
            try:
                return mlflow.get_run(self.resume_run_id).info.run_id
            except Exception:  # not in this store (another URI)
                pass
        folder = str(self.ctx.output_dir.resolve()).replace("'", "\\'")
        runs = mlflow.search_runs(
            [experiment_id],
            filter_string=f"tags.`{FOLDER_TAG}` = '{folder}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        return runs[0].info.run_id if runs else None

    def epoch(self, engine: Engine) -> None:
        import mlflow

        row = engine.state.record
        values = {key: float(row[key]) for key in EPOCH_SCALARS if key != "lr"}  # the lr is logged per iteration
        self.submit("logging the epoch", mlflow.log_metrics, values, step=int(row["epoch"]))

    def _finished(self, _: Engine) -> None:
        self.finished = True

    # checkpoint state: a resumed run logs into the same MLflow run --------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.resuming = True
        self.resume_run_id = str(state.get("run_id", ""))

    # end of run -----------------------------------------------------------------------------
    def close(self) -> None:
        """End of the run (called by the core): artifacts, the run's status, then wait for the queue (bounded)."""
        if self.worker is None:
            return
        from mnist_ignite.core.engines import finite_weights

        weights = None
        model = self.ctx.model
        if self.finished and finite_weights(model):
            weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        self.submit("saving artifacts", self._artifacts, weights)
        self.submit("ending the MLflow run", self._end, "FINISHED" if self.finished else "FAILED")
        if not self.worker.close(timeout=CLOSE_WAIT_SECONDS):
            self.fail(f"sending within {CLOSE_WAIT_SECONDS} s", TimeoutError("the tracking server is slow"))

    def _artifacts(self, weights: dict[str, torch.Tensor] | None) -> None:
        import mlflow
        import torch

        out = self.ctx.output_dir
        if weights is not None:  # the weights final_model.pt gets (the core writes the file after close)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "final_model.pt"
                torch.save(weights, path)
                mlflow.log_artifact(str(path))
        for name in ARTIFACTS:
            if (out / name).is_file():
                mlflow.log_artifact(str(out / name))
        if (out / "plots").is_dir():
            mlflow.log_artifacts(str(out / "plots"), artifact_path="plots")

    def _end(self, status: str) -> None:
        import mlflow

        mlflow.end_run(status=status)
