"""The layer table: shapes, parameters, FLOPs (FlopCounterMode) and receptive fields checked by hand."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnist_ignite.model import summary as model_summary
from mnist_ignite.models.layers import describe, format_table, model_stats, stats_line, summary
from mnist_ignite.models.net import Net


def test_seed_net_rows_shapes_params_and_fields() -> None:
    s = describe(Net())
    rows = [(layer.name, layer.kind, layer.output_shape, layer.params) for layer in s.layers]
    assert rows == [
        ("conv1", "Conv2d", (32, 26, 26), 320),
        ("conv2", "Conv2d", (64, 24, 24), 18_496),
        ("max_pool2d", "F", (64, 12, 12), 0),  # the seed's F.max_pool2d in forward: a row of its own
        ("conv3", "Conv2d", (128, 10, 10), 73_856),
        ("conv4", "Conv2d", (256, 8, 8), 295_168),
        ("max_pool2d", "F", (256, 4, 4), 0),
        ("fc1", "Linear", (50,), 204_850),
        ("fc2", "Linear", (10,), 510),
    ]
    assert s.parameters == s.trainable == 593_200
    # r_out = r_in + (k - 1) j_in, j_out = j_in s, worked through by hand for 3x3 convs and 2x2 pools
    fields = [(layer.rf, layer.jump) for layer in s.layers if layer.rf is not None]
    assert fields == [((3, 3), (1, 1)), ((5, 5), (1, 1)), ((6, 6), (2, 2)), ((10, 10), (2, 2)),
                      ((14, 14), (2, 2)), ((16, 16), (4, 4))]  # fmt: skip
    assert [layer.rf for layer in s.layers[-2:]] == [None, None]  # linear layers have no field


def test_flops_per_layer_add_up_to_flop_counter_mode_total() -> None:
    net = Net()
    s = describe(net)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 1, 28, 28))
    assert s.flops == counter.get_total_flops() == 74_527_976
    assert sum(layer.flops for layer in s.layers) == s.flops
    # a convolution is 2 FLOPs per multiply-add: out_h * out_w * out_c * in_c * k * k
    by_name = {layer.name: layer.flops for layer in s.layers}
    assert by_name["conv1"] == 2 * 26 * 26 * 32 * 1 * 9
    assert by_name["conv4"] == 2 * 8 * 8 * 256 * 128 * 9
    assert by_name["fc1"] == 2 * 4096 * 50


def test_stride_padding_dilation_and_global_pooling() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 4, 5, stride=2, padding=2),  # r 5, j 2; 28 -> 14
        nn.Conv2d(4, 4, 3, dilation=2, padding=2),  # effective kernel 5: r 5 + 4*2 = 13, j 2
        nn.AvgPool2d(3, stride=1, padding=1),  # r 13 + 2*2 = 17, j 2
        nn.AdaptiveAvgPool2d(1),  # the whole 14x14 map: r 17 + 13*2 = 43
        nn.Flatten(),
        nn.Linear(4, 10),
    )
    fields = [(layer.kind, layer.rf, layer.jump) for layer in describe(net).layers if layer.rf is not None]
    assert fields == [
        ("Conv2d", (5, 5), (2, 2)),
        ("Conv2d", (13, 13), (2, 2)),
        ("AvgPool2d", (17, 17), (2, 2)),
        ("AdaptiveAvgPool2d", (43, 43), (28, 28)),
    ]


class _Residual(nn.Module):
    """A 3x3 branch added back to its input, then a functional mean over the spatial dims."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.branch = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = x + self.branch(x)  # the sum sees the wider of the two fields
        x = F.max_pool2d(x, 2)
        return self.head(x.mean(dim=(2, 3)))


def test_branches_take_the_wider_field_and_functional_pools_get_rows() -> None:
    layers = describe(_Residual()).layers
    assert [(layer.name, layer.rf) for layer in layers if layer.rf is not None] == [
        ("stem", (3, 3)),
        ("branch", (5, 5)),
        ("max_pool2d", (6, 6)),
        ("mean (global pool)", (6 + 13 * 2,) * 2),  # 14x14 map after the pool, jump 2
    ]


def test_non_square_kernels_are_shown_per_dimension() -> None:
    s = describe(nn.Sequential(nn.Conv2d(1, 2, (3, 1)), nn.Flatten(), nn.LazyLinear(10)))
    assert s.layers[0].rf == (3, 1)
    assert "3x1" in format_table(s).splitlines()[3]


def test_describe_leaves_mode_weights_and_buffers_alone() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(10))
    net(torch.randn(8, 1, 28, 28))  # materialize and move the BatchNorm statistics away from their init
    before = copy.deepcopy(net.state_dict())
    describe(net)
    assert net.training
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_format_table_has_every_layer_and_the_totals() -> None:
    text = format_table(describe(Net()))
    for piece in ("conv1 (Conv2d)", "max_pool2d (F)", "[-1, 256, 4, 4]", "295,168", "37.75M", "Total params: 593,200"):
        assert piece in text
    assert "Forward FLOPs per image: 74.53M (74,527,976" in text
    assert "Receptive field of the last conv/pool layer (max_pool2d): 16 px of the 28x28 input, jump 4" in text


def test_the_seed_summary_keeps_its_torchsummary_format() -> None:
    assert model_summary is summary  # re-exported where the notebook API always had it
    lines = summary(Net()).splitlines()
    assert lines[1].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    body = [line.split(maxsplit=1) for line in lines[3:9]]
    assert [name for name, _ in body] == ["Conv2d-1", "Conv2d-2", "Conv2d-3", "Conv2d-4", "Linear-1", "Linear-2"]
    assert body[0][1].split("]")[0] + "]" == "[-1, 32, 26, 26]"
    assert lines[-3:] == ["Total params: 593,200", "Trainable params: 593,200", "-" * 64]


@pytest.mark.parametrize(
    ("net", "expected"),
    [
        (Net(), {"parameters": 593_200, "flops_per_image": 74_527_976, "receptive_field": 16, "jump": 4}),
        (
            nn.Sequential(nn.Flatten(), nn.Linear(784, 10)),
            {"parameters": 7_850, "flops_per_image": 2 * 784 * 10, "receptive_field": None, "jump": None},
        ),
    ],
)
def test_model_stats_for_the_run_header(net: nn.Module, expected: dict) -> None:
    stats = model_stats(net)
    assert {k: stats[k] for k in expected} == expected
    assert stats["trainable_parameters"] == expected["parameters"]


def test_stats_line() -> None:
    assert (
        stats_line(model_stats(Net()))
        == "593,200 parameters, 74.53M FLOPs/image forward, receptive field 16 px (jump 4)"
    )
    mlp = model_stats(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)))
    assert stats_line(mlp) == "7,850 parameters, 15.68K FLOPs/image forward"


def test_a_bf16_model_gets_bf16_input() -> None:
    s = describe(Net().to(torch.bfloat16))
    assert s.flops == 74_527_976 and s.layers[-1].output_shape == (10,)


def test_a_model_whose_forward_fails_still_gets_its_parameters_and_no_traceback() -> None:
    from torch import nn

    from mnist_ignite.models.layers import model_stats, stats_line

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 10)

        def forward(self, x):
            return self.fc(x)  # a 28x28 image is not 3 features

    stats = model_stats(Broken())
    assert stats["parameters"] == 40 and stats["flops_per_image"] is None
    assert stats_line(stats).startswith("40 parameters (FLOPs unknown: RuntimeError: ")


def test_a_receptive_field_past_the_input_is_the_whole_image() -> None:
    from torch import nn

    from mnist_ignite.models.layers import model_stats, stats_line

    wide = nn.Sequential(
        nn.Conv2d(1, 2, 15, padding=7), nn.Conv2d(2, 2, 15, padding=7), nn.Flatten(), nn.Linear(1568, 10)
    )
    stats = model_stats(wide)
    assert stats["receptive_field"] == 28
    assert "receptive field the whole image" in stats_line(stats)
