"""The learning-rate range test: Ignite's ``FastaiLRFinder`` over the configured model, data and pipeline.

The finder trains from ``start_lr`` to ``end_lr`` on an exponential schedule, one lr per batch,
records the smoothed loss, stops once the loss passes ``diverge_th`` times its best, and suggests
the lr halfway along the longest stretch where the loss keeps falling (fastai's "valley"). Model,
optimizer and trainer get back the state they had before the search (the finder restores them).

:func:`find_lr` builds the run exactly as training would (:func:`mnist_ignite.core.launch.build_run`,
without plugins): same model, SGD momentum, batch size, pipeline, augmentation, precision.
:func:`lr_range_test` runs the search on any trainer built by that run-builder.
torch and Ignite load inside the functions, so ``lr-find --help`` reads the defaults without them.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnist_ignite.config.settings import Config
from mnist_ignite.core.files import save_json
from mnist_ignite.errors import LRFindError

if TYPE_CHECKING:
    import torch
    from ignite.engine import Engine


__all__ = ["LRFindError", "LRFindResult", "figure", "find_lr", "lr_for_run", "lr_range_test", "valley", "write_results"]

# 200 iterations over five decades: on the seed Net (batch 64) fewer leave the loss barely moved
# before the lr is already high
START_LR, END_LR, NUM_ITER = 1e-5, 1.0, 200
MIN_ITER = 3
SMOOTH_F = 0.05  # Ignite's default: new smoothed loss = 0.05 * loss + 0.95 * previous
DIVERGE_TH = 5.0  # stop once the smoothed loss is 5x its best so far


@dataclass
class LRFindResult:
    """What the search found.

    Attributes:
        suggestion: fastai's "valley" rule: halfway along the longest stretch over which the smoothed
            loss keeps falling (:func:`valley`).
        lrs: the lr of each iteration searched.
        losses: the smoothed training loss at each of them (non-finite ones left out, with their lr).
        min_loss_lr: the lr at the lowest smoothed loss (fastai's other rule of thumb: a tenth of it).
        steepest_lr: where the smoothed loss fell fastest from one iteration to the next
            (``FastaiLRFinder.lr_suggestion``); it jumps with the noise of single batches (0.04 or
            0.14 for the seed Net, by one iteration more or less), so it is kept for reference only.
        diverged: whether the search stopped because the loss diverged (else it reached ``end_lr``).
        start_lr: first lr of the schedule.
        end_lr: last lr of the schedule.
        num_iter: iterations the schedule spans from ``start_lr`` to ``end_lr``.
    """

    suggestion: float
    lrs: list[float]
    losses: list[float]
    min_loss_lr: float
    steepest_lr: float | None
    diverged: bool
    start_lr: float
    end_lr: float
    num_iter: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _loss(output: dict[str, torch.Tensor]) -> torch.Tensor:
    """The batch loss; a NaN/Inf one becomes +inf, which the finder takes for divergence (NaN never compares)."""
    import torch

    loss = output["loss"].float()
    return loss if bool(torch.isfinite(loss)) else torch.tensor(math.inf)


def valley(losses: list[float]) -> tuple[int, int]:
    """fastai's "valley" suggestion (its ``lr_find`` default since 2.5): the index halfway along the
    longest run of ever-lower losses (a longest decreasing subsequence), and that run's length.

    Robust where the steepest single step is not: it looks at the whole falling part of the curve.
    """
    n = len(losses)
    longest = [1] * n  # longest decreasing run ending at i
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end = i
                start = end - longest[end] + 1  # the run's first point (fastai's counts one before it)
    third = (end - start) / 3
    return start + int(third) + int(third / 2), longest[end]


def lr_range_test(
    trainer: Engine,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Any,
    *,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    num_iter: int = NUM_ITER,
    smooth_f: float = SMOOTH_F,
    diverge_th: float = DIVERGE_TH,
) -> LRFindResult:
    """Run ``FastaiLRFinder`` on ``trainer`` over ``data``; model, optimizer and trainer state are restored.

    The trainer must not have run yet (``FastaiLRFinder`` counts from its first iteration); the
    model and optimizer may hold any state (trained weights, momentum buffers).

    Args:
        trainer: a fresh trainer from :func:`mnist_ignite.core.engines.create_trainer` (its output has ``loss``).
        model: the trained module (its weights and buffers are restored afterwards).
        optimizer: its optimizer (state and lr restored afterwards).
        data: training batches; repeated for as many epochs as ``num_iter`` needs.
        start_lr: lower end of the exponential lr schedule.
        end_lr: upper end.
        num_iter: iterations from ``start_lr`` to ``end_lr``.
        smooth_f: loss smoothing factor in [0, 1).
        diverge_th: stop once the smoothed loss exceeds this many times its best.

    Raises:
        LRFindError: the loss never fell before it diverged (``start_lr`` too high, or a broken model).
    """
    from ignite.handlers import FastaiLRFinder

    from mnist_ignite.core.data import ResumableBatches, TensorTrainLoader

    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    if num_iter < MIN_ITER:
        raise ValueError(f"need num_iter >= {MIN_ITER} (a curve needs points to fall), got {num_iter}")
    if trainer.state.iteration:
        raise ValueError("the range test needs a trainer that has not run yet (build a fresh run)")
    finder = FastaiLRFinder()
    to_save: dict[str, Any] = {"model": model, "optimizer": optimizer}
    scaler = getattr(trainer, "grad_scaler", None)
    if scaler is not None:  # fp16: its loss scale is part of the state the search must not change
        to_save["grad_scaler"] = scaler
    if isinstance(data, TensorTrainLoader):
        data = ResumableBatches(data, trainer)
    epochs = math.ceil(num_iter / len(data))
    steps = num_iter - 1  # Ignite runs steps + 1 iterations, at lrs start_lr ... end_lr
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Run completed without loss diverging")
        with finder.attach(
            trainer,
            to_save=to_save,
            output_transform=_loss,
            num_iter=steps,
            start_lr=float(start_lr),
            end_lr=float(end_lr),
            smooth_f=smooth_f,
            diverge_th=diverge_th,
        ) as searching:
            searching.run(data, max_epochs=epochs)
    history = finder.get_results()
    # Ignite records with each loss the lr of the *next* step; the lr that made loss k is this one
    lrs = [float(start_lr) * (end_lr / start_lr) ** (k / steps) for k in range(len(history["loss"]))]
    pairs = [(lr, float(loss)) for lr, loss in zip(lrs, history["loss"], strict=True)]
    finite = [(lr, loss) for lr, loss in pairs if math.isfinite(loss)]
    at, falling = valley([loss for _, loss in finite])
    if falling < MIN_ITER:
        raise LRFindError(
            f"the loss did not fall between lr {start_lr:g} and the point it diverged "
            f"(after {len(history['loss'])} iterations): lower the start lr"
        )
    try:
        steepest: float | None = lrs[history["lr"].index(finder.lr_suggestion())]
    except RuntimeError:  # Ignite's rule wants a U-shaped curve
        steepest = None
    best_lr, best = min(finite, key=lambda pair: pair[1])
    diverged = not math.isfinite(pairs[-1][1]) or pairs[-1][1] > diverge_th * best
    return LRFindResult(
        suggestion=finite[at][0],
        lrs=[lr for lr, _ in finite],
        losses=[loss for _, loss in finite],
        min_loss_lr=best_lr,
        steepest_lr=steepest,
        diverged=diverged,
        start_lr=float(start_lr),
        end_lr=float(end_lr),
        num_iter=num_iter,
    )


def find_lr(
    config: Config,
    *,
    net: torch.nn.Module | None = None,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    num_iter: int = NUM_ITER,
    smooth_f: float = SMOOTH_F,
    diverge_th: float = DIVERGE_TH,
) -> LRFindResult:
    """The range test for ``config``'s model, data, batch size, pipeline and precision (one process).

    Seeds with ``config.seed``, reads the training data, builds the run with
    :func:`mnist_ignite.core.launch.build_run` and no plugins, and searches. ``config.lr`` plays no part
    (the schedule sets every lr). ``net`` (default: ``config.model`` built afresh) comes back
    with the weights it had. No file is written. The global RNG state moves: seed again before
    training.
    """
    from ignite.utils import manual_seed

    from mnist_ignite.core.build import build_data, build_run
    from mnist_ignite.core.device import select_device

    device = select_device(config.device)
    # the evaluation that runs at an epoch end is not part of the search: one test image keeps it trivial
    config = dataclasses.replace(config, lr=float(start_lr), max_eval_samples=1, nproc_per_node=1, nnodes=1)
    manual_seed(config.seed)
    train_data, eval_data = build_data(config, device)
    ctx = build_run(config, device, train_data, eval_data, net=net)
    return lr_range_test(
        ctx.trainer,
        ctx.model,
        ctx.optimizer,
        train_data,
        start_lr=start_lr,
        end_lr=end_lr,
        num_iter=num_iter,
        smooth_f=smooth_f,
        diverge_th=diverge_th,
    )


def figure(result: LRFindResult, title: str) -> Any:
    """Smoothed loss against lr on a log axis, the suggestion marked."""
    from mnist_ignite.reporting.figures import new_figure

    fig = new_figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(result.lrs, result.losses, color="tab:blue", label="training loss (smoothed)")
    at = min(range(len(result.lrs)), key=lambda i: abs(math.log(result.lrs[i] / result.suggestion)))
    ax.scatter([result.suggestion], [result.losses[at]], color="red", s=60, zorder=3)
    label = f"suggested lr {result.suggestion:.3g}"
    ax.axvline(result.suggestion, color="red", linestyle="--", linewidth=1, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def write_results(result: LRFindResult, config: Config, out: Path) -> list[Path]:
    """``lr_find.json`` (the curve and the settings it was measured with) and ``lr_find.png``."""
    from mnist_ignite.reporting.figures import save_figure

    settings = {
        k: getattr(config, k)
        for k in ("model", "model_args", "batch_size", "momentum", "pipeline", "precision", "seed", "max_train_samples")
    }
    json_path = save_json(out / "lr_find.json", {**result.to_dict(), "settings": settings})
    where, sep, attr = config.model.rpartition(":")
    name = f"{Path(where).name}:{attr}" if sep else config.model  # no long paths in the title
    title = f"lr range test: {name}, batch {config.batch_size}, momentum {config.momentum}"
    png_path = save_figure(figure(result, title), out / "lr_find.png")
    return [png_path, json_path]


def lr_for_run(config: Config) -> float:
    """``--lr auto``: the range test's suggestion for ``config`` (lr_find.json and lr_find.png go in its run folder)."""
    import os

    from mnist_ignite.log import note

    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun every process searches (same seed, same lr)
    if main:
        note("--lr auto: running the learning-rate finder first ...")
    result = find_lr(config)
    if main:
        out = Path(config.output_dir)
        write_results(result, config, out)
        note(f"--lr auto: using lr {result.suggestion:.3g} (curve in {out / 'lr_find.png'})")
    return float(result.suggestion)
