"""``mnist-ignite sweep SWEEP.toml``: a hyperparameter search on Optuna, each trial a run folder.

    mnist-ignite sweep examples/sweep.toml                      # [sweep] settings from the file
    mnist-ignite sweep examples/sweep.toml --trials 40 --workers 2
    mnist-ignite sweep examples/sweep.toml --storage postgresql://user:pw@db-host/optuna   # on each machine

Running the same command again continues the study (trials whose worker was killed are marked
FAIL and replaced). The sweep folder gets ``trial-NNNN/`` run folders, ``sweep_results.csv``,
``plots/*.png`` (Optuna's optimization history, parameter importances, parallel coordinates) and
the Optuna journal; the best trial is printed with the command line that reproduces it.
See :mod:`mnist_ignite.sweep_file` for the file's format and :mod:`mnist_ignite.sweep` for the crash-safety rules.
"""

from __future__ import annotations

import argparse
import sys

from mnist_ignite.cli.commands.common import PROG, command_parser
from mnist_ignite.errors import MissingExtraError

__all__ = ["HELP", "build_parser", "main"]

HELP = "search hyperparameters with Optuna (TOML search space, pruning, several workers, shared storage)"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "sweep",
        "Search hyperparameters with Optuna. SWEEP.toml holds [sweep] (how to search), [run] "
        "(every trial's fixed settings, as in a run's --config file) and [params] (the search space); see "
        "examples/sweep.toml. The flags below override [sweep].",
        epilog="Exit codes: 0 the sweep has its trials (or --timeout passed), 1 trials are missing (run the same "
        "command again to carry on), 2 bad usage.",
    )
    parser.add_argument("sweep_file", metavar="SWEEP.toml", help="the sweep file")
    parser.add_argument("--trials", type=int, metavar="N", help="COMPLETE + PRUNED trials to reach")
    parser.add_argument("--timeout", type=float, metavar="SECONDS", help="start no trial after this long")
    parser.add_argument("--workers", type=int, metavar="N", help="local worker processes (CPU threads divided)")
    parser.add_argument("--sampler", choices=("tpe", "random", "grid"), help="default tpe")
    parser.add_argument("--pruner", choices=("median", "none"), help="default median")
    parser.add_argument("--seed", type=int, help="sampler seed (each worker and each rerun draws its own stream)")
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="a database shared by several machines (e.g. postgresql://user:pw@host/db); "
        "default a journal file in the sweep folder",
    )
    parser.add_argument("--output-dir", metavar="DIR", help="the sweep folder (default sweeps/<name>)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise MissingExtraError("the sweep command needs Optuna: pip install 'mnist-ignite[sweep]'") from None
    from mnist_ignite.experiments.sweep.space import load_spec
    from mnist_ignite.experiments.sweep.study import run_sweep

    overrides = {
        "trials": args.trials,
        "timeout": args.timeout,
        "workers": args.workers,
        "sampler": args.sampler,
        "pruner": args.pruner,
        "seed": args.seed,
        "storage": args.storage,
        "output_dir": args.output_dir,
    }
    try:
        spec = load_spec(args.sweep_file, overrides)
        return run_sweep(spec)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted: run the same command again to carry on", file=sys.stderr)
        return 130
