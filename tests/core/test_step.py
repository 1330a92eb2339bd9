"""The update step: the same math as PyTorch's own SGD and GradScaler, eager or as the CUDA-graph step's update."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_ignite.core.step import GraphedTrainStep, LossScaler, TrainStep, autocast, prepare_batch

CPU = torch.device("cpu")


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def batches(n: int, size: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(size, 1, 28, 28, generator=g), torch.randint(0, 10, (size,), generator=g)) for _ in range(n)]


def sgd(model: nn.Module, **kw: float) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=kw.pop("lr", 0.05), momentum=kw.pop("momentum", 0.9), **kw)


def test_autocast_is_a_no_op_for_fp32_and_torch_autocast_otherwise() -> None:
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(CPU, None):
        assert (a @ b).dtype is torch.float32 and not torch.is_autocast_enabled("cpu")
    with autocast(CPU, torch.bfloat16, cache=False):
        assert (a @ b).dtype is torch.bfloat16 and not torch.is_autocast_cache_enabled()


def test_prepare_batch_moves_the_batch_and_sets_the_memory_layout() -> None:
    x, y = batches(1)[0]
    px, py = prepare_batch((x, y), CPU)
    assert px is x and py is y  # already there: no copy
    cl, _ = prepare_batch((x.repeat(1, 3, 1, 1), y), CPU, channels_last=True)  # 3 channels: the layouts differ
    assert cl.is_contiguous(memory_format=torch.channels_last) and not cl.is_contiguous()


def test_the_eager_step_is_pytorchs_sgd_on_cross_entropy() -> None:
    """Weights after three steps equal a hand-written loop; the output is detached and counts the hits."""
    model, reference = tiny_net(), tiny_net()
    step, ref_opt = TrainStep(model, sgd(model), CPU), sgd(reference)
    for x, y in batches(3):
        out = step(None, (x, y))
        ref_opt.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        ref_opt.step()
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
    assert set(out) == {"loss", "y_pred", "y", "correct"}
    assert not out["loss"].requires_grad and not out["y_pred"].requires_grad
    assert out["correct"].shape == (8, 1) and out["correct"].dtype is torch.float64
    assert torch.equal(out["correct"].squeeze(1).bool(), out["y_pred"].argmax(1) == y)
    assert model.training


def test_an_overflowing_fp16_step_is_skipped_counted_and_backs_off_the_scale() -> None:
    model = tiny_net()
    scaler = LossScaler(CPU)
    step = TrainStep(model, sgd(model), CPU, torch.float16, scaler=scaler)
    (x, y), (x2, y2) = batches(2)
    step(None, (x, y))
    assert scaler.skipped_steps == 0 and scaler.get_scale() == 65536.0
    before = copy.deepcopy(model.state_dict())
    x2[0, 0, 0, 0] = float("inf")  # an inf input: inf loss, inf gradients
    step(None, (x2, y2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the update was skipped
    assert scaler.skipped_steps == 1 and scaler.get_scale() == 32768.0


def test_the_skipped_count_rides_in_the_scalers_state() -> None:
    scaler = LossScaler(CPU)
    scaler.count_skipped(torch.tensor([0.0]))
    scaler.count_skipped(torch.tensor([0.0, 1.0]))
    scaler.count_skipped(torch.tensor(1.0))
    assert scaler.skipped_steps == 2 and scaler.state_dict()["skipped_steps"] == 2
    resumed = LossScaler(CPU)
    resumed.load_state_dict(scaler.state_dict())
    assert resumed.skipped_steps == 2
    resumed.load_state_dict({k: v for k, v in scaler.state_dict().items() if k != "skipped_steps"})
    assert resumed.skipped_steps == 0  # a checkpoint from before the count existed


def test_the_graph_steps_update_run_eagerly_matches_torch_sgd() -> None:
    """What the CUDA graph captures (foreach SGD with the lr in a tensor), checked on the CPU against torch.optim."""
    eager_model, graph_model = tiny_net(), tiny_net()
    eager = TrainStep(eager_model, sgd(eager_model), CPU)
    graphed = GraphedTrainStep(graph_model, sgd(graph_model), CPU, batch_size=8)
    for x, y in batches(4):
        eager(None, (x, y))
        graph_model.train()
        graphed._update(x, y)
    for a, b in zip(eager_model.parameters(), graph_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # SGD's add(alpha=) vs add(mul): last-bit rounding
    opt = graphed.optimizer
    assert all(torch.is_tensor(opt.state[p]["momentum_buffer"]) for p in graph_model.parameters())


@pytest.mark.parametrize("kw", [{"nesterov": True}, {"weight_decay": 1e-4}, {"dampening": 0.1}, {"momentum": 0.0}])
def test_the_graph_step_refuses_an_sgd_it_does_not_implement(kw: dict[str, float | bool]) -> None:
    model = tiny_net()
    with pytest.raises(ValueError, match="supports SGD with momentum, no nesterov/weight decay/dampening"):
        GraphedTrainStep(model, sgd(model, **kw), CPU, batch_size=8)


def test_the_step_output_reads_as_ignites_float_loss_when_code_asks() -> None:
    """Ignite's own trainer outputs loss.item(); code formatting engine.state.output works on ours too."""
    from mnist_ignite.core.step import StepOutput

    loss = torch.tensor(0.25)
    out = StepOutput(loss=loss, y=torch.zeros(2, dtype=torch.long))
    assert f"{out:.2f}" == "0.25" and float(out) == 0.25 and out.item() == 0.25
    assert out["loss"] is loss and set(out) == {"loss", "y"}  # still the dict the metrics read
    assert f"{out}".startswith("{'loss'")  # no format spec: the dict as it is
