"""``mnist-ignite compare RUN_DIR... [--output DIR]``: runs side by side, in one figure and one table.

The face of :mod:`mnist_ignite.comparison`. Written to DIR (default ``./compare``): ``compare.png``
(test accuracy, train loss and test loss per epoch), ``compare.md`` and ``compare.csv`` (final and
best test accuracy, epochs, train time, images/s, and only the settings that differ); the table is
printed too. matplotlib loads after the arguments are parsed, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mnist_ignite.cli.commands.common import command_parser
from mnist_ignite.errors import ConfigError

__all__ = ["HELP", "build_parser", "main"]

HELP = "overlay runs' curves and tabulate their results (run folders, --repeat parents, sweep folders)"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "compare",
        "Overlay runs' test accuracy and losses per epoch and tabulate their results. "
        "A folder of runs that differ only in the seed (--repeat) is shown as mean ± std; "
        "the runs of any other folder (a sweep) each on their own.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders or folders of run folders")
    parser.add_argument("--output", default="compare", metavar="DIR", help="where compare.png/.md/.csv go")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from mnist_ignite.core.files import atomic_write, prepare_output_dir
    from mnist_ignite.experiments.compare import (
        collect,
        compare_figure,
        differing_settings,
        display_row,
        label_entries,
        summarize,
        table_csv,
        table_markdown,
    )
    from mnist_ignite.reporting.figures import save_figure

    paths = [Path(p) for p in args.runs]
    missing = [os.fspath(p) for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"compare: not found: {', '.join(missing)}")
    entries, notes = collect(paths)
    for note in notes:
        print(f"note: skipped {note}")
    if not entries:
        raise ConfigError("compare: no run with finished epochs to compare")
    keys = differing_settings(entries)
    label_entries(entries, keys)
    rows = [summarize(e, keys) for e in entries]
    shown = [display_row(r, e.group, keys) for r, e in zip(rows, entries, strict=True)]
    markdown = table_markdown(shown)
    out = Path(args.output)
    prepare_output_dir(out)  # before the table: a folder that cannot be written fails first
    print(markdown, end="")
    figure = save_figure(compare_figure(entries), out / "compare.png", dpi=100, tight=True)
    table = atomic_write(out / "compare.md", lambda f: f.write(markdown.encode()))
    sheet = atomic_write(out / "compare.csv", lambda f: f.write(table_csv(rows)))
    print(f"wrote {figure}, {table}, {sheet}")
    return 0
