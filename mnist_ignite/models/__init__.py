"""Models: the seed's :class:`Net`, models found by spec, and the layer table of any model.

``net`` holds the seed's CNN; ``registry`` builds a model from a spec (``seed``,
``package.module:Attr``, ``path/file.py:Attr`` or an ``mnist_ignite.models`` entry point) and
checks it; ``layers`` describes a model layer by layer (shapes, parameters, FLOPs, receptive fields).
"""

from mnist_ignite.errors import ModelError
from mnist_ignite.models.net import Net
from mnist_ignite.models.registry import BUILTIN_MODELS, ENTRY_POINT_GROUP, available_models, build_model, check_model

__all__ = ["BUILTIN_MODELS", "ENTRY_POINT_GROUP", "ModelError", "Net", "available_models", "build_model", "check_model"]
