"""The seed's Net: its size, its shapes, its names (checkpoints of the seed load) and a forward without side effects."""

from __future__ import annotations

import torch

from mnist_ignite.models.net import Net


def test_net_has_the_seed_parameter_count() -> None:
    assert sum(p.numel() for p in Net().parameters()) == 593_200


def test_net_shapes_follow_the_seed() -> None:
    net = Net()
    shapes = {}
    for name in ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2"):
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    out = net(torch.randn(3, 1, 28, 28))
    assert shapes == {
        "conv1": (3, 32, 26, 26),
        "conv2": (3, 64, 24, 24),
        "conv3": (3, 128, 10, 10),
        "conv4": (3, 256, 8, 8),
        "fc1": (3, 50),
        "fc2": (3, 10),
    }
    assert out.shape == (3, 10)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(3))  # log-probabilities


def test_the_state_dict_keeps_the_seeds_names() -> None:
    """The seed notebook's saved weights load into this Net (and this Net's into the seed's)."""
    layers = ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2")
    assert list(Net().state_dict()) == [f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias")]


def test_the_in_place_relus_leave_the_input_alone_and_gradients_flow() -> None:
    """``inplace=True`` acts on intermediate tensors only: the caller's batch is unchanged, every weight learns."""
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(4, 1, 28, 28)
    kept = x.clone()
    torch.nn.functional.nll_loss(net(x), torch.tensor([0, 1, 2, 3])).backward()
    assert torch.equal(x, kept)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_each_image_is_scored_on_its_own_in_either_memory_layout() -> None:
    """No batch statistics: a batch's scores are its images' scores, and channels_last gives the same numbers."""
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        batch = net(x)
        one_by_one = torch.cat([net(x[i : i + 1]) for i in range(5)])
        channels_last = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(batch, one_by_one, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batch, channels_last, rtol=1e-4, atol=1e-5)
