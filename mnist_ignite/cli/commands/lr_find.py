"""``mnist-ignite lr-find [--num-iter N] [--start-lr LR] [--end-lr LR] [training options]``: pick a learning rate.

Runs the learning-rate range test (:func:`mnist_ignite.experiments.lr_find.find_lr`, Ignite's
``FastaiLRFinder``) on exactly the run the same training options would make (model, batch size,
pipeline, precision, seed), then writes ``OUTPUT/lr_find.png`` (smoothed loss against lr, log
axis, the suggestion marked) and ``OUTPUT/lr_find.json``, and prints the suggested lr. Every
training flag works (``mnist-ignite --help``); handlers play no part in the search.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from mnist_ignite.config.argv import DefaultsHelpFormatter, Parser, flag_type
from mnist_ignite.errors import ConfigError
from mnist_ignite.experiments.lr_find import END_LR, MIN_ITER, NUM_ITER, START_LR
from mnist_ignite.log import PROG

__all__ = ["HELP", "main"]

HELP = "learning-rate range test (FastaiLRFinder): lr_find.png, lr_find.json, the suggested lr"


def _positive(kind: type) -> Any:
    return flag_type(kind, lambda v: v > 0 and math.isfinite(v), "must be a finite number > 0")


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=f"{PROG} lr-find",
        allow_abbrev=False,  # anything not ours goes on to the training options
        formatter_class=DefaultsHelpFormatter,
        description=HELP,
        epilog=f"Every training option works too (model, data, batch size, pipeline, precision, seed, "
        f"--output-dir ...): see '{PROG} --help'.",
    )
    parser.add_argument(
        "--num-iter", type=_positive(int), default=NUM_ITER, metavar="N", help="iterations from start to end lr"
    )
    parser.add_argument("--start-lr", type=_positive(float), default=START_LR, metavar="LR", help="first lr")
    parser.add_argument("--end-lr", type=_positive(float), default=END_LR, metavar="LR", help="last lr")
    return parser


def main(argv: list[str]) -> int:
    from mnist_ignite.config.argv import parse_config

    try:
        mine, rest = _parser().parse_known_args(argv)
        config = parse_config(rest)
    except SystemExit as stop:  # argparse: --help, or a usage error it has printed
        return int(stop.code or 0)
    if mine.start_lr >= mine.end_lr:
        raise ConfigError(f"--start-lr ({mine.start_lr:g}) must be below --end-lr ({mine.end_lr:g})")
    if mine.num_iter < MIN_ITER:
        raise ConfigError(f"--num-iter must be >= {MIN_ITER}, got {mine.num_iter}")
    from mnist_ignite.core.device import select_device
    from mnist_ignite.core.files import prepare_output_dir
    from mnist_ignite.core.resolve import validate
    from mnist_ignite.experiments.lr_find import find_lr, write_results
    from mnist_ignite.models.registry import build_model, check_model

    validate(config)
    device = select_device(config.device)
    # before any data is read; the search builds its own after seeding, as training would
    check_model(build_model(config.model, config.model_args), config.model, device)
    out = Path(config.output_dir or Path("runs") / datetime.now().strftime("lr-find-%Y%m%d-%H%M%S"))
    print(
        f"lr-find: {config.model} on {device}, {mine.num_iter} iterations from lr {mine.start_lr:g} to "
        f"{mine.end_lr:g} (batch {config.batch_size}, pipeline {config.pipeline})",
        flush=True,
    )
    created = not out.exists()
    try:
        prepare_output_dir(out)  # an unusable folder fails now, not after the search
        result = find_lr(config, start_lr=mine.start_lr, end_lr=mine.end_lr, num_iter=mine.num_iter)
        written = write_results(result, config, out)
    except BaseException as err:
        if created:  # leave no empty folder behind
            with contextlib.suppress(OSError):
                out.rmdir()
        if isinstance(err, KeyboardInterrupt):
            print(f"{PROG}: lr-find interrupted", file=sys.stderr)
            return 130
        raise
    end = "the loss diverged" if result.diverged else "the end lr was reached"
    print(
        f"suggested lr: {result.suggestion:.3g}  (fastai's valley rule; {len(result.lrs)} "
        f"iterations, stopped at lr {result.lrs[-1]:.3g}: {end})"
    )
    if not result.diverged:
        print(f"note: the loss had not diverged by lr {mine.end_lr:g}; a higher --end-lr shows where it does")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
