"""Live Visdom dashboard that never holds up training, with an offline log to replay later.

Windows, in this order on the page (stable names, so a resumed run appends to the same ones):

=================  ==========================================================
``loss``           train and test loss per epoch
``accuracy``       train and test accuracy per epoch (%)
``train_loss``     training loss per iteration (mean of the last N iterations)
``lr``             learning rate per iteration (log axis)
``samples``        12 labelled training images, at the start
``misclassified``  12 wrong test predictions (true / predicted), every epoch
``run``            the run's settings
=================  ==========================================================

Every event also goes to OUTPUT/visdom.log (visdom's own log format). Sending runs on one worker
thread and every HTTP call to the server gives up after ``TIMEOUT_S``: no server at the start, a
server that stops answering mid-run, or one that never answers, costs one warning, and the events
keep going to the log; ``mnist-ignite visdom --replay OUTPUT/visdom.log`` puts them on a server
later. At the end of the run the queue gets ``CLOSE_WAIT_S`` to drain; what is left then goes to
the log only.

Why not Ignite's ``VisdomLogger``: it builds a plain ``visdom.Visdom``, whose POSTs have no
timeout (a stuck server hangs the constructor, and the end of the run); what it added was a
thread pool, which this module keeps.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mnist_ignite.log import note
from mnist_ignite.plugins import Option, Output, Plugin, RunContext
from mnist_ignite.plugins.background import Background

from .client import TIMEOUT_S, client, default_port, reason

if TYPE_CHECKING:  # torch, Ignite and matplotlib load in attach: --help and --list-handlers stay instant
    import torch
    from ignite.engine import Engine

__all__ = ["CLOSE_WAIT_S", "DEFAULT_ENV", "VisdomPlugin"]

DEFAULT_ENV = "mnist-ignite"  # the Visdom environment a run's windows go to (--visdom-env, VISDOM_ENV)

CLOSE_WAIT_S = 5.0  # what the end of a run waits for the queue to drain
IMAGES = 12  # as many as plots/misclassified.png
PANE = {"width": 420, "height": 320}
# window -> (title, legend, x label, y label, extra visdom options); the page shows them in this order
CURVES: dict[str, tuple[str, list[str], str, str, dict[str, Any]]] = {
    "loss": ("loss per epoch", ["train", "test"], "epoch", "loss", {}),
    "accuracy": ("accuracy per epoch", ["train", "test"], "epoch", "accuracy (%)", {}),
    "train_loss": ("training loss (running mean)", ["train"], "iteration", "loss", {}),
    "lr": ("learning rate", ["lr"], "iteration", "lr (log scale)", {"ytype": "log"}),
}


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
    outputs = (Output("visdom.log", "every dashboard event", "mnist-ignite visdom --replay {path}"),)
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
        if importlib.util.find_spec("visdom") is None:
            raise ValueError("needs the visdom package: pip install 'mnist-ignite[visdom]'")
        self.server = self.visdom_server or os.environ.get("VISDOM_SERVER_URL", "http://localhost")
        self.port = self.visdom_port or default_port()
        self.env = self.visdom_env or os.environ.get("VISDOM_ENV", DEFAULT_ENV)
        self.url = f"{self.server}:{self.port}/env/{quote(self.env)}"

    # connection and sending ---------------------------------------------------------------
    def _connect(self) -> Any:
        """A client on the server, or an offline one (log file only) when it does not answer in time."""
        try:
            vis = client(self.server, self.port, self.env, self.log)
            note(f"visdom: dashboard at {self.url}")
            return vis
        except Exception as err:  # any failure: monitoring must not stop training
            import visdom

            self._warn(f"no Visdom server at {self.server}:{self.port} ({reason(err)})")
            return visdom.Visdom(env=self.env, offline=True, log_to_filename=str(self.log))

    def _warn(self, what: str, then: str = "training goes on and every event is kept in") -> None:
        """One warning per run, whatever fails next."""
        self.worker.warn_once(
            f"visdom: {what}; {then} {self.log} "
            f"(replay it with: mnist-ignite visdom --replay {self.log} --port {self.port})"
        )

    def _offline(self, what: str, err: BaseException) -> None:
        """A send failed: from now on every event goes to the log only (visdom logs before it posts)."""
        self.vis.offline = True
        self._warn(f"{what} failed, the server stopped answering ({reason(err)})")

    def _submit(self, what: str, send: Callable[[], None]) -> None:
        """Run ``send`` on the worker thread; the first failure switches to log-only."""
        self.worker.submit(what, send)

    def _send(self, method: str, **kwargs: Any) -> None:
        """Queue one visdom call (``line``, ``text``, ...) in this run's environment."""
        self._submit(f"sending to {kwargs.get('win')}", lambda: getattr(self.vis, method)(env=self.env, **kwargs))

    # plugin -------------------------------------------------------------------------------
    def attach(self, ctx: RunContext) -> None:
        # imported here, on the main thread: a module's first import on the worker thread could race
        import matplotlib.backends.backend_agg  # noqa: F401 - what _figure_rgb draws with
        import torch
        from ignite.engine import Events

        import mnist_ignite.reporting.figures  # noqa: F401 - what _grid draws with, on the worker thread
        from mnist_ignite.core.engines import MisclassifiedSamples

        self.ctx = ctx
        if not ctx.is_main_process:
            return
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        self.log = ctx.output_dir / "visdom.log"
        self.worker = Background(self.name, on_error=self._offline)
        self.vis = self._connect()
        self.loss_sum = torch.zeros((), device=ctx.device)
        self.wrong = MisclassifiedSamples(limit=IMAGES)
        self.wrong.attach(ctx.evaluator)
        t = ctx.trainer
        t.add_event_handler(Events.STARTED, self.started)
        t.add_event_handler(Events.ITERATION_COMPLETED, self.accumulate)
        t.add_event_handler(Events.ITERATION_COMPLETED(every=self.visdom_every), self.iteration)
        t.add_event_handler(Events.EPOCH_COMPLETED, self.epoch)

    def _line(self, win: str, xs: Sequence[float], ys: Sequence[Sequence[float]], append: bool = True) -> None:
        """Points (one row of ``ys`` per x, one column per legend entry) added to, or replacing, a curve window."""
        title, legend, xlabel, ylabel, extra = CURVES[win]
        opts = {"title": title, "legend": legend, "xlabel": xlabel, "ylabel": ylabel, **extra}
        opts |= {"showlegend": True, "markers": True, "markersize": 6, **PANE}
        # the title is on the window's bar already: none inside the plot, where the toolbar covers it
        opts |= {"margintop": 30, "layoutopts": {"plotly": {"title": None}}}
        if xlabel == "epoch":
            opts["xtickstep"] = max(1, math.ceil(self.ctx.config.epochs / 10))  # whole epochs
        self._send(
            "line",
            X=[[x] * len(legend) for x in xs],
            Y=[list(y) for y in ys],
            win=win,
            update="append" if append else None,  # append creates the window when it is not there
            opts=opts,
        )

    def _text(self, win: str, html: str, title: str | None = None) -> None:
        self._send("text", text=html, win=win, opts={"title": title or win, **PANE})

    def _grid(self, win: str, images: torch.Tensor, titles: list[str], caption: str) -> None:
        rows = (len(titles) + 3) // 4

        def render() -> Any:
            from mnist_ignite.reporting.figures import image_grid

            fig = image_grid(images, titles, rows=rows, cols=4, figsize=(4.4, 1.25 * rows + 0.45))
            for ax in fig.axes:
                ax.title.set_fontsize(7)
            fig.suptitle(caption, fontsize=9)  # in the image: visdom's own caption gets clipped
            fig.tight_layout(pad=0.3)
            return _figure_rgb(fig)

        def send() -> None:  # drawn on the worker thread too: rendering never holds up a step
            self.vis.image(render(), win=win, env=self.env, opts={"title": win, **PANE, "height": 420})

        self._submit(f"sending the {win} grid", send)

    def started(self, engine: Engine) -> None:
        """Create the windows in page order: curves, images, settings."""
        from mnist_ignite.core.data import preview

        fresh = engine.state.iteration == 0
        rows = self.ctx.history.rows if self.ctx.history is not None else []
        nan = float("nan")  # a window's first point before any data: axes and legend, no marker
        for win, keys in (("loss", ("train_loss", "test_loss")), ("accuracy", ("train_acc", "test_acc"))):
            # the epochs so far (a resumed run redraws the earlier ones, even those that were only logged)
            points = [[r[k] for k in keys] for r in rows] or [[nan, nan]]
            self._line(win, [r["epoch"] for r in rows] or [nan], points, append=False)
        if fresh:  # a resumed run appends to these
            self._line("train_loss", [nan], [[nan]], append=False)
            self._line("lr", [nan], [[nan]], append=False)
        self._grid("samples", *preview(self.ctx.train_data, IMAGES), "training images (augmented), with labels")
        if fresh:
            self._text("misclassified", "wrong test predictions appear here after the first epoch")
        cfg = self.ctx.config
        info = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "options"} | cfg.options, indent=1)
        self._text("run", f"<pre>{info}</pre>", "run settings")

    def accumulate(self, engine: Engine) -> None:
        self.loss_sum += engine.state.output["loss"]  # stays on the device: no sync per step

    def iteration(self, engine: Engine) -> None:
        loss = float(self.loss_sum) / self.visdom_every
        self.loss_sum.zero_()
        i = engine.state.iteration
        self._line("train_loss", [i], [[loss]])
        self._line("lr", [i], [[float(self.ctx.optimizer.param_groups[0]["lr"])]])

    def epoch(self, engine: Engine) -> None:
        r = engine.state.record
        e = r["epoch"]
        self._line("loss", [e], [[r["train_loss"], r["test_loss"]]])
        self._line("accuracy", [e], [[r["train_acc"], r["test_acc"]]])
        if self.wrong.true:
            from mnist_ignite.core.data import denormalize

            images = denormalize(self.wrong.images)
            self._grid("misclassified", images, self.wrong.titles(), f"epoch {e}: wrong test predictions, true / pred")
        else:
            self._text("misclassified", f"epoch {e}: no wrong test predictions")

    def close(self) -> None:
        """End of the run, failed or not: give the queue ``CLOSE_WAIT_S``, then log what is left without sending."""
        worker = getattr(self, "worker", None)
        if worker is None:
            return
        if worker.drain(CLOSE_WAIT_S):
            worker.close()
            return
        left = worker.pending
        self.vis.offline = True  # the rest only goes to the log: quick, and the call in flight times out
        self._warn(f"the server did not take the last {left} event(s) within {CLOSE_WAIT_S:.0f} s", "they are in")
        worker.close(TIMEOUT_S + CLOSE_WAIT_S)
