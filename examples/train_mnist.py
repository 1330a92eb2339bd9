"""Train the ERA Session 5 MNIST CNN with the seed's recipe on Ignite engines.

    python examples/train_mnist.py                       # 20 epochs, batch 64, SGD 0.01/0.9, StepLR(15, 0.1)
    python examples/train_mnist.py --help                # every option, with the enabled handlers' own
    python examples/train_mnist.py --epochs 1 --max-train-samples 2048

Same entry point as the ``mnist-ignite`` console script.
"""

import sys

from mnist_ignite.cli import main

if __name__ == "__main__":
    sys.exit(main())
