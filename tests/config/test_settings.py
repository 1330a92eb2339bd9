from __future__ import annotations

from mnist_ignite.config.argv import parse_config
from mnist_ignite.config.settings import DEFAULT_HANDLERS, Config, flat_settings


def test_defaults_are_the_seed_recipe() -> None:
    c = parse_config([])
    assert (c.epochs, c.batch_size, c.lr, c.momentum) == (20, 64, 0.01, 0.9)
    assert c.options["lr_schedule"] == "step" and c.options["step_size"] == 15 and c.options["gamma"] == 0.1
    assert c.handlers == list(DEFAULT_HANDLERS)


def test_flat_settings_put_handler_options_beside_core_settings() -> None:
    config = Config(epochs=3, handlers=["visdom"], model_args={"width": 8, "act": {"kind": "relu"}})
    config.options["visdom_env"] = "mine"
    flat = flat_settings(config.to_dict())
    assert flat["epochs"] == 3 and flat["visdom_env"] == "mine" and "options" not in flat
    assert flat["handlers"] == "visdom" and flat["model_args.width"] == 8 and flat["model_args.act.kind"] == "relu"
    assert flat["max_train_samples"] is None  # kept as it is: each reader decides how to show it
