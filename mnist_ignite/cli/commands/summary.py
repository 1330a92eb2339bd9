"""``mnist-ignite summary [--model SPEC] [--model-arg KEY=VALUE]``: a model's layers before you train it.

Builds the model exactly as a run would (same spec, same constructor keywords, same checks) and
prints the layer table of :mod:`mnist_ignite.summary`: output shapes, parameters, FLOPs per image
and the receptive field of each convolution and pooling layer, then whether the model returns
log-probabilities or logits. Reads no data; torch loads after the arguments are parsed.
"""

from __future__ import annotations

import argparse

from mnist_ignite.cli.commands.common import command_parser

__all__ = ["HELP", "main"]

HELP = "a model's layer table: output shapes, parameters, FLOPs per image, receptive fields"

_OUTPUTS = {
    "log-probabilities": "log-probabilities (trained with cross-entropy on them, i.e. the seed's nll_loss)",
    "logits": "logits (the trainer's cross-entropy applies log_softmax itself)",
}


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("summary", HELP)
    parser.add_argument(
        "--model",
        default="seed",
        metavar="SPEC",
        help="seed, package.module:Attr, path/file.py:Attr, or an mnist_ignite.models entry point",
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword for the model's constructor (repeatable; values are Python literals)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from mnist_ignite.config.argv import parse_model_arg
    from mnist_ignite.models.layers import describe, format_table
    from mnist_ignite.models.registry import build_model, check_model

    model_args = dict(parse_model_arg(a) for a in args.model_arg)
    model = build_model(args.model, model_args)
    output = check_model(model, args.model, "cpu")
    described = describe(model)
    title = f"{args.model} ({described.name}" + "".join(f", {k}={v!r}" for k, v in model_args.items()) + ")"
    print(title)
    print(format_table(described))
    print(f"Output: {_OUTPUTS[output]}")
    return 0
