"""A run's settings: declared once on :class:`Config`, read from TOML files and the command line.

``settings`` holds the declarations (each field's help, group and rule) and the checks derived
from them; ``toml`` reads run and sweep files; ``argv`` builds the command line from the same
declarations (plus each enabled handler's options). Nothing here imports torch or Ignite, so
``--help`` and every usage error answer at once.
"""

from mnist_ignite.config.settings import (
    DEFAULT_HANDLERS,
    DEVICES,
    MAX_WORKERS,
    PIPELINES,
    PRECISIONS,
    Config,
    Setting,
    check_settings,
    check_value,
    default_data_dir,
    flat_settings,
    settings,
    short_value,
    value_type,
)
from mnist_ignite.config.toml import load_toml, read_toml
from mnist_ignite.errors import ConfigError

__all__ = [
    "DEFAULT_HANDLERS",
    "DEVICES",
    "MAX_WORKERS",
    "PIPELINES",
    "PRECISIONS",
    "Config",
    "ConfigError",
    "Setting",
    "check_settings",
    "check_value",
    "default_data_dir",
    "flat_settings",
    "load_toml",
    "read_toml",
    "settings",
    "short_value",
    "value_type",
]
