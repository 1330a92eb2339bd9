"""The live Visdom dashboard: ``plugin`` (the ``visdom`` handler), ``client`` (calls that time out),
``assets`` (visdom's front-end, installed so its server starts offline). ``mnist-ignite visdom``
(:mod:`mnist_ignite.cli.commands.visdom`) serves and replays it."""

from .plugin import VisdomPlugin

__all__ = ["VisdomPlugin"]
