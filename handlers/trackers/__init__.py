"""Experiment trackers: TensorBoard and MLflow, on what they share (``base``: a tracker never stops training)."""

from .mlflow import MLflowPlugin
from .tensorboard import TensorBoardPlugin

__all__ = ["MLflowPlugin", "TensorBoardPlugin"]
