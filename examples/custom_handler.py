"""Write your own event handler: log the gradient norm every N iterations to OUTPUT/grad_norms.csv.

    python examples/custom_handler.py --epochs 1 --max-train-samples 1024
    mnist-ignite --handler examples/custom_handler.py:GradNormLogger --grad-every 5 ...   # same class, main CLI

A plugin is a class with ``name`` and ``attach(ctx)``; ``options`` appear in ``--help`` once it is
enabled, and ``state_dict``/``load_state_dict`` make its state survive ``--resume``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from mnist_ignite.plugins import Option, Plugin, RunContext


class GradNormLogger(Plugin):
    """Appends ``iteration,epoch,grad_norm`` rows to OUTPUT/grad_norms.csv every ``--grad-every`` iterations."""

    name = "grad_norm"
    description = "log the global gradient L2 norm every N iterations to OUTPUT/grad_norms.csv"
    options = (Option("grad-every", int, 10, "log every N iterations"),)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        if self.grad_every < 1:
            raise ValueError("grad-every must be >= 1")
        self.logged = 0  # rides in checkpoints: a resumed run keeps counting

    def attach(self, ctx: RunContext) -> None:
        self.model = ctx.model
        self.path = ctx.output_dir / "grad_norms.csv"
        if ctx.is_main_process:
            ctx.trainer.add_event_handler(Events.ITERATION_COMPLETED(every=self.grad_every), self.log)

    def log(self, engine: Engine) -> None:
        grads = [p.grad.detach().flatten() for p in self.model.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.cat(grads)).item()
        new = not self.path.exists()
        with self.path.open("a") as f:
            if new:
                f.write("iteration,epoch,grad_norm\n")
            f.write(f"{engine.state.iteration},{engine.state.epoch},{norm:.6f}\n")
        self.logged += 1

    def state_dict(self) -> dict[str, int]:
        return {"logged": self.logged}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.logged = int(state["logged"])


if __name__ == "__main__":
    from mnist_ignite.cli import main

    # register the handler for this run: its options join the command line like a built-in's
    sys.exit(main([*sys.argv[1:], "--handler", f"{Path(__file__).resolve()}:GradNormLogger"]))
