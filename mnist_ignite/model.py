"""The seed's names: ``Net`` and ``Model``, imported as the ERA Session 5 notebook imports them.

Notebook flow (unchanged from the seed but for the imports)::

    from mnist_ignite import utils
    from mnist_ignite.model import Model

    train_loader, test_loader = utils.get_train_and_test_mnist_dataloader(batch_size=64)
    model = Model(train_loader, test_loader, lr=0.01, momentum=0.9)
    model.show_summary()
    model.run(num_epochs=20)
    utils.plot_model_results(model.results)

``Net`` lives in :mod:`mnist_ignite.models.net`, ``Model`` in :mod:`mnist_ignite.notebook`.
"""

from mnist_ignite.models.layers import summary
from mnist_ignite.models.net import Net
from mnist_ignite.notebook import Model

__all__ = ["Model", "Net", "summary"]
