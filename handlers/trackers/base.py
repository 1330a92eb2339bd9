"""What the experiment trackers (``tensorboard``, ``mlflow``) share: they never stop training.

A tracker is a nice-to-have beside the run: a missing package is refused before any data is
read (one line naming the extra to install), and any failure later (a tracking server gone, a
full disk) warns once, switches the tracker off, and training goes on.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any, ClassVar

from mnist_ignite.config.settings import flat_settings as config_flat_settings
from mnist_ignite.log import warn
from mnist_ignite.plugins import Plugin

__all__ = ["EPOCH_SCALARS", "TrackerPlugin", "flat_settings"]

# record key (metrics.json) -> tracker tag; test and train side by side under one section
EPOCH_SCALARS = {
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "train_acc": "accuracy/train",
    "test_acc": "accuracy/test",
    "lr": "lr/epoch",
    "train_images_per_second": "speed/train_images_per_second",
    "train_seconds": "time/train_seconds",
    "eval_seconds": "time/eval_seconds",
}


def flat_settings(config: Any) -> dict[str, str | int | float | bool]:
    """The run's settings as flat scalars (:func:`mnist_ignite.config.flat_settings`; None and the rest as text)."""
    flat = config_flat_settings(config.to_dict())
    return {k: v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in flat.items()}


class TrackerPlugin(Plugin):
    """Base of the trackers: checks the package at construction, guards every call afterwards."""

    package: ClassVar[str] = ""  # the module the tracker imports
    extra: ClassVar[str] = ""  # the setup.cfg extra that installs it

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        # the core builds plugins before it reads any data: a missing package is refused here
        if importlib.util.find_spec(self.package) is None:
            raise ValueError(f"the {self.package} package is missing: pip install 'mnist-ignite[{self.extra}]'")
        self.failed = False

    def fail(self, what: str, err: BaseException) -> None:
        """Switch the tracker off with one warning; the run goes on."""
        if not self.failed:
            self.failed = True
            # the first line that says something: a client's errors can run to pages
            reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "")[:300]
            warn(
                f"{self.name}: {what} failed ({type(err).__name__}: {reason}); "
                f"{self.name} tracking is off for the rest of the run, training goes on"
            )

    def guard(self, what: str, call: Callable[..., Any]) -> Callable[..., None]:
        """``call`` that does nothing once the tracker is off, and turns it off when it raises."""

        @functools.wraps(call)
        def guarded(*args: Any, **kwargs: Any) -> None:
            if self.failed:
                return
            try:
                call(*args, **kwargs)
            except Exception as err:  # tracking must never stop training
                self.fail(what, err)

        return guarded
