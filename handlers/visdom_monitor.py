"""Live Visdom dashboard that never stops training, with an offline log to replay later.

Windows (stable names, so a resumed run appends to the same ones):

=================  ==========================================================
``train_loss``     training loss per iteration (mean of the last N iterations)
``loss``           train and test loss per epoch
``accuracy``       train and test accuracy per epoch
``lr``             learning rate per iteration
``samples``        labelled training images, at the start
``misclassified``  wrong test predictions (true / predicted), every epoch
``run``            the run's settings
=================  ==========================================================

Every event also goes to OUTPUT/visdom.log (visdom's own log format). No server at the start,
or a server that goes away mid-run, costs one warning: the events keep going to the log, and
``mnist-ignite visdom --replay OUTPUT/visdom.log`` puts them on a server later. Sending runs on
Ignite's ``VisdomLogger`` worker thread, so a slow server never slows a step.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from mnist_ignite.data import denormalize, preview
from mnist_ignite.engine import MisclassifiedSamples
from mnist_ignite.figures import image_grid
from mnist_ignite.plugins import Option, Plugin, RunContext

__all__ = ["VisdomPlugin", "assets_missing", "replay", "serve"]

WINDOW_SIZE = {"width": 420, "height": 300}
ASSETS_HINT = (
    "visdom's front-end assets (JS/CSS) are not installed, and visdom would try to download them. "
    "Offline, install them from the npm registry with: PYTHON={python} bash ../shared/tools/visdom-assets.sh ; "
    "online, pass --download-assets to let visdom fetch them."
)


def _default_port() -> int:
    return int(os.environ.get("VISDOM_PORT", "8097"))


def _figure_rgb(fig: Any) -> Any:
    """A matplotlib figure as a CHW uint8 array (what ``vis.image`` takes)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].transpose(2, 0, 1).copy()


class VisdomPlugin(Plugin):
    """Streams the run to Visdom on the main process; see the module docstring for the windows."""

    name = "visdom"
    description = "live Visdom dashboard (loss, accuracy, lr, samples, misclassified) + offline log and replay"
    order = 70
    options = (
        Option("visdom-server", str, None, "server URL (env VISDOM_SERVER_URL, default http://localhost)"),
        Option("visdom-port", int, None, "server port (env VISDOM_PORT, default 8097)"),
        Option("visdom-env", str, None, "Visdom environment (env VISDOM_ENV, default mnist-ignite)"),
        Option("visdom-every", int, 10, "send the iteration loss and lr every N iterations"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.visdom_every < 1:
            raise ValueError("visdom-every must be >= 1")
        self.server = self.visdom_server or os.environ.get("VISDOM_SERVER_URL", "http://localhost")
        self.port = self.visdom_port or _default_port()
        self.env = self.visdom_env or os.environ.get("VISDOM_ENV", "mnist-ignite")
        self.warned = False

    # connection -------------------------------------------------------------------------
    def _reachable(self) -> bool:
        import requests

        try:
            requests.get(f"{self.server}:{self.port}", timeout=2)
            return True
        except requests.RequestException:
            return False

    def _connect(self, log: Path) -> Any:
        """Ignite's VisdomLogger on the server, or an offline one (log file only) when none answers."""
        if importlib.util.find_spec("visdom") is None:
            raise ValueError("the visdom handler needs the visdom package: pip install 'mnist-ignite[visdom]'")
        from ignite.handlers.visdom_logger import VisdomLogger

        common = {"env": self.env, "log_to_filename": str(log), "use_incoming_socket": False}
        quiet = io.StringIO()  # visdom prints session chatter and tracebacks of its own
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            if self._reachable():
                try:
                    return VisdomLogger(server=self.server, port=self.port, raise_exceptions=True, **common)
                except Exception as err:  # answered, but not as Visdom: monitoring must not stop training
                    reason = f"{type(err).__name__}: {err}"
            else:
                reason = "no answer"
            logger = VisdomLogger(server=self.server, port=self.port, offline=True, **common)
        self._warn(f"no Visdom server at {self.server}:{self.port} ({reason})")
        return logger

    def _warn(self, what: str) -> None:
        if not self.warned:
            print(
                f"mnist-ignite: warning: visdom: {what}; training goes on and every event is kept in {self.log} "
                f"(replay it with: mnist-ignite visdom --replay {self.log})",
                file=sys.stderr,
                flush=True,
            )
            self.warned = True

    def _submit(self, what: str, send: Callable[[], None]) -> None:
        """Run ``send`` on the logger's worker thread; the first failure switches to log-only."""
        vis = self.logger.vis

        def call() -> None:
            try:
                send()
            except Exception as err:
                vis.offline = True  # visdom logs before it posts: this event is in the log already
                self._warn(f"{what} failed, the Visdom server stopped answering ({type(err).__name__}: {err})")

        self.logger.executor.submit(call)

    def _send(self, method: str, **kwargs: Any) -> None:
        """Queue one visdom call (``line``, ``text``, ...) in this run's environment."""
        self._submit(
            f"sending to {kwargs.get('win')}", lambda: getattr(self.logger.vis, method)(env=self.env, **kwargs)
        )

    # plugin -----------------------------------------------------------------------------
    def attach(self, ctx: RunContext) -> None:
        self.ctx = ctx
        if not ctx.is_main_process:
            return
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        self.log = ctx.output_dir / "visdom.log"
        self.logger = self._connect(self.log)
        self.loss_sum = torch.zeros((), device=ctx.device)
        self.wrong = MisclassifiedSamples(limit=16)
        self.wrong.attach(ctx.evaluator)
        t = ctx.trainer
        t.add_event_handler(Events.STARTED, self.started)
        t.add_event_handler(Events.ITERATION_COMPLETED, self.accumulate)
        t.add_event_handler(Events.ITERATION_COMPLETED(every=self.visdom_every), self.iteration)
        t.add_event_handler(Events.EPOCH_COMPLETED, self.epoch)

    def _line(self, win: str, x: float, ys: Sequence[float], title: str, legend: Sequence[str], xlabel: str) -> None:
        self._send(
            "line",
            X=[[x] * len(ys)],
            Y=[list(ys)],
            win=win,
            update="append",  # creates the window when it does not exist yet
            opts={"title": title, "legend": list(legend), "xlabel": xlabel, "showlegend": True, **WINDOW_SIZE},
        )

    def _grid(self, win: str, images: torch.Tensor, titles: list[str], caption: str) -> None:
        rows = (len(titles) + 3) // 4

        def render() -> Any:
            fig = image_grid(images, titles, rows=rows, cols=4, figsize=(4.4, 1.25 * rows + 0.2))
            for ax in fig.axes:
                ax.title.set_fontsize(7)
            fig.tight_layout(pad=0.3)
            return _figure_rgb(fig)

        def send() -> None:  # drawn on the worker thread too: rendering never holds up a step
            self.logger.vis.image(render(), win=win, env=self.env, opts={"title": win, "caption": caption})

        self._submit(f"sending the {win} grid", send)

    def started(self, engine: Engine) -> None:
        cfg = self.ctx.config
        info = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "options"} | cfg.options, indent=1)
        self._send("text", text=f"<pre>{info}</pre>", win="run", opts={"title": "run", **WINDOW_SIZE})
        self._grid("samples", *preview(self.ctx.train_data), "training images (augmented)")

    def accumulate(self, engine: Engine) -> None:
        self.loss_sum += engine.state.output["loss"]  # stays on the device: no sync per step

    def iteration(self, engine: Engine) -> None:
        loss = float(self.loss_sum) / self.visdom_every
        self.loss_sum.zero_()
        i = engine.state.iteration
        self._line("train_loss", i, [loss], "training loss (running)", ["train"], "iteration")
        lr = float(self.ctx.optimizer.param_groups[0]["lr"])
        self._line("lr", i, [lr], "learning rate", ["lr"], "iteration")

    def epoch(self, engine: Engine) -> None:
        r = engine.state.record
        e = r["epoch"]
        self._line("loss", e, [r["train_loss"], r["test_loss"]], "loss", ["train", "test"], "epoch")
        self._line("accuracy", e, [r["train_acc"], r["test_acc"]], "accuracy (%)", ["train", "test"], "epoch")
        if self.wrong.true:
            images = denormalize(self.wrong.images)
            self._grid("misclassified", images, self.wrong.titles(), f"epoch {e}: true / predicted")

    def close(self) -> None:
        """End of the run, failed or not (called by the core): send what is queued, free the worker thread."""
        if self.ctx.is_main_process:
            self.logger.executor.shutdown(wait=True)

    # command: mnist-ignite visdom -----------------------------------------------------------
    @staticmethod
    def command(argv: list[str]) -> int:
        """``mnist-ignite visdom``: start a local server, or replay a run's log into one."""
        parser = argparse.ArgumentParser(
            prog="mnist-ignite visdom",
            description="Start a Visdom server (bound to 127.0.0.1 unless --host says otherwise), "
            "or replay a run's OUTPUT/visdom.log into a running server.",
        )
        parser.add_argument("--port", type=int, default=_default_port(), help="port (env VISDOM_PORT, default 8097)")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network")
        parser.add_argument("--download-assets", action="store_true", help="let visdom download missing JS/CSS")
        parser.add_argument("--replay", metavar="VISDOM.log", help="send a run's logged events to the server")
        parser.add_argument(
            "--server", default=os.environ.get("VISDOM_SERVER_URL", "http://localhost"), help="server URL for --replay"
        )
        parser.add_argument("--env", help="with --replay: put the events in this environment instead")
        args = parser.parse_args(argv)
        if args.replay:
            return replay(Path(args.replay), args.server, args.port, args.env)
        return serve(args.port, args.host, args.download_assets)


def assets_missing() -> bool:
    """True when visdom would download its front-end assets at start-up."""
    spec = importlib.util.find_spec("visdom")
    if spec is None or spec.origin is None:
        return True
    pkg = Path(spec.origin).parent
    built = pkg / "static" / "version.built"
    version = (pkg / "VERSION").read_text().strip()
    return not (
        built.is_file() and built.read_text().strip() == version and (pkg / "static" / "js" / "main.js").is_file()
    )


def serve(port: int, host: str = "127.0.0.1", download_assets: bool = False) -> int:
    """Run ``python -m visdom.server`` in the foreground; exit code is the server's."""
    if importlib.util.find_spec("visdom") is None:
        print("mnist-ignite visdom: the visdom package is missing: pip install 'mnist-ignite[visdom]'", file=sys.stderr)
        return 1
    if assets_missing() and not download_assets:
        print("mnist-ignite visdom: " + ASSETS_HINT.format(python=sys.executable), file=sys.stderr)
        return 1
    cmd = [sys.executable, "-m", "visdom.server", "-port", str(port), "--hostname", host]
    if host in ("127.0.0.1", "localhost"):
        cmd.append("-bind_local")
    print(f"Visdom on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 0


def replay(log: Path, server: str, port: int, env: str | None = None) -> int:
    """Send every logged event to the server (optionally into another environment)."""
    if not log.is_file():
        print(f"mnist-ignite visdom: no log at {log}", file=sys.stderr)
        return 1
    import visdom

    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        vis = visdom.Visdom(server=server, port=port, raise_exceptions=True, use_incoming_socket=False)
        connected = vis.check_connection(timeout_seconds=5)
    if not connected:
        print(
            f"mnist-ignite visdom: no server at {server}:{port}; start one with: mnist-ignite visdom --port {port}",
            file=sys.stderr,
        )
        return 1
    count, envs = 0, set()
    with log.open() as f:
        for line in f:
            endpoint, msg = json.loads(line)
            if env:
                msg["eid"] = env
            envs.add(msg.get("eid"))
            vis._send(msg, endpoint, from_log=True)
            count += 1
    print(f"replayed {count} events into {', '.join(sorted(str(e) for e in envs))} on {server}:{port}")
    return 0
