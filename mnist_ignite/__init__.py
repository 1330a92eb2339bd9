"""mnist-ignite: the ERA Session 5 MNIST classifier trained by PyTorch Ignite engines, with plugins.

Core modules: ``model`` (Net, Model), ``data``, ``engine``, ``plugins``, ``config``, ``run``,
``cli``, ``utils`` (the seed's helpers), ``figures``, ``files``. Built-in plugins live in the
top-level ``handlers`` package.
"""

__version__ = "0.1.0"
