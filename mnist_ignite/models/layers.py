"""What a model is, layer by layer: output shapes, parameters, FLOPs per image and receptive fields.

One forward pass of a single blank image (eval mode, no gradients) under torch's
``FlopCounterMode`` and a small dispatch mode of our own that sees every aten op:

- a row per leaf module call (``conv1 (Conv2d)``), plus a row per convolution, pooling or matmul
  written as a function in ``forward`` (the seed's ``F.max_pool2d`` is such a row);
- FLOPs per image are ``FlopCounterMode``'s count (2 per multiply-add of convolutions and matmuls;
  activations, pooling and normalization count 0), read op by op;
- the receptive field ``r`` and jump ``j`` (the distance in input pixels between neighbouring
  outputs) follow each tensor through the graph: a convolution or pooling layer of kernel ``k``,
  dilation ``d`` and stride ``s`` gives ``r_out = r_in + d (k - 1) j_in`` and ``j_out = j_in s``;
  a global pooling (adaptive to 1, a mean over the spatial dims) covers the whole input map.
  Branches take the larger field, so residual nets come out right too.

:func:`summary` keeps the seed's torchsummary-style table (``Model.show_summary()``);
:func:`describe` and :func:`format_table` give the full table (``mnist-ignite summary``);
:func:`model_stats` gives the run header's numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode  # where torch documents it (no public alias)
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Layer", "ModelSummary", "describe", "format_table", "model_stats", "stats_line", "summary"]

INPUT_SIZE = (1, 28, 28)

aten = torch.ops.aten
_CONV = {aten.convolution.default, aten._convolution.default}
_POOL = {  # op -> (kernel, stride, padding, dilation) argument positions after the input
    aten.max_pool2d_with_indices.default: (1, 2, 3, 4),
    aten.max_pool2d.default: (1, 2, 3, 4),
    aten.max_pool1d.default: (1, 2, 3, 4),
    aten.avg_pool2d.default: (1, 2, 3, None),
    aten.avg_pool1d.default: (1, 2, 3, None),
}
_ADAPTIVE = {aten._adaptive_avg_pool2d.default, aten.adaptive_max_pool2d.default, aten.adaptive_avg_pool1d.default}
# what a functional op's row is called
_OP_NAMES = {"convolution": "conv", "_convolution": "conv", "addmm": "linear", "mean": "mean (global pool)"}


@dataclass
class Layer:
    """One row of the table.

    Attributes:
        name: module path (``conv1``) or, for an op written as a function in ``forward``, the op.
        kind: the module's class (``Conv2d``) or ``F`` for a functional op.
        output_shape: the output's shape without the batch dimension.
        params: the module's own parameters (0 for a functional op).
        flops: forward FLOPs per image (``FlopCounterMode``'s count).
        rf: receptive field after this layer, in input pixels (per spatial dim); None unless conv/pool.
        jump: input pixels between neighbouring outputs of this layer; None unless conv/pool.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int = 0
    flops: int = 0
    rf: tuple[int, ...] | None = None
    jump: tuple[int, ...] | None = None


@dataclass
class ModelSummary:
    """The layers of one forward pass and the model's totals."""

    name: str
    input_size: tuple[int, ...]
    layers: list[Layer] = field(default_factory=list)
    parameters: int = 0
    trainable: int = 0
    flops: int = 0

    @property
    def last_field(self) -> Layer | None:
        """The last convolution or pooling row (its ``rf`` is what the classifier head sees)."""
        spatial = [layer for layer in self.layers if layer.rf is not None]
        return spatial[-1] if spatial else None


Field = tuple[tuple[int, ...], tuple[int, ...]]  # (receptive field, jump) per spatial dim


def _per_dim(value: Any, n: int) -> tuple[int, ...]:
    """A kernel/stride argument (int, [k] or [kh, kw]) as n ints."""
    values = [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]
    return tuple(values * n if len(values) == 1 else values)


def _grow(rf: Field, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> Field:
    r, j = rf
    r_out = tuple(ri + di * (ki - 1) * ji for ri, ki, di, ji in zip(r, kernel, dilation, j, strict=True))
    return r_out, tuple(ji * si for ji, si in zip(j, stride, strict=True))


class _Tracer(TorchDispatchMode):
    """Sees every aten op: its FLOPs (from the enclosing FlopCounterMode), its row, the fields it makes."""

    def __init__(self, counter: FlopCounterMode) -> None:
        super().__init__()
        self.counter = counter
        self.fields: dict[int, tuple[torch.Tensor, Field]] = {}  # id -> (tensor kept alive, field)
        self.active: Layer | None = None  # the leaf module running now
        self.layers: list[Layer] = []

    def field_of(self, t: torch.Tensor) -> Field:
        spatial = max(t.dim() - 2, 1)
        if id(t) in self.fields:
            rf = self.fields[id(t)][1]
            if len(rf[0]) == spatial:
                return rf
            return (max(rf[0]),) * spatial, (max(rf[1]),) * spatial  # reshaped to other dims
        return (1,) * spatial, (1,) * spatial  # the input image, a weight or a constant

    def new_field(self, func: Any, args: tuple[Any, ...]) -> Field | None:
        """The field of a convolution or pooling output; None for any other op."""
        x = args[0]
        if not isinstance(x, torch.Tensor):
            return None
        n = x.dim() - 2
        rf = self.field_of(x)
        if func in _CONV:
            if args[6]:  # transposed: no simple field rule; keep the input's
                return rf
            kernel = tuple(args[1].shape[2:])
            return _grow(rf, kernel, _per_dim(args[3], n), _per_dim(args[5], n))
        if func in _POOL:
            k_at, s_at, _, d_at = _POOL[func]
            kernel = _per_dim(args[k_at], n)
            stride = _per_dim(args[s_at], n) if len(args) > s_at and args[s_at] else kernel
            dilation = _per_dim(args[d_at], n) if d_at is not None and len(args) > d_at else (1,) * n
            return _grow(rf, kernel, stride, dilation)
        if func in _ADAPTIVE:
            sizes, outs = x.shape[2:], _per_dim(args[1], n)
            kernel = tuple(math.ceil(s / o) for s, o in zip(sizes, outs, strict=True))
            stride = tuple(max(s // o, 1) for s, o in zip(sizes, outs, strict=True))
            return _grow(rf, kernel, stride, (1,) * n)
        if func is aten.mean.dim and n > 0:
            dims = {d % x.dim() for d in (args[1] if len(args) > 1 and args[1] is not None else range(x.dim()))}
            if set(range(2, x.dim())) <= dims:  # a global average pool
                return _grow(rf, tuple(x.shape[2:]), tuple(x.shape[2:]), (1,) * n)
        return None

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        before = self.counter.get_total_flops()
        out = func(*args, **(kwargs or {}))
        flops = self.counter.get_total_flops() - before
        made = self.new_field(func, args)
        inputs = [self.field_of(a) for a in args if isinstance(a, torch.Tensor) and id(a) in self.fields]
        rf = made or (max(inputs, key=lambda f: f[0]) if inputs else None)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if rf is not None:
            for t in outs:
                if isinstance(t, torch.Tensor):
                    self.fields[id(t)] = (t, rf)
        if self.active is not None:
            self.active.flops += flops
            if made is not None:
                self.active.rf, self.active.jump = made
        elif made is not None or flops:  # a conv, pool or matmul written as a function in forward
            name = func.overloadpacket.__name__
            name = _OP_NAMES.get(name, name.removesuffix("_with_indices").lstrip("_"))
            first = outs[0]
            shape = tuple(first.shape[1:]) if isinstance(first, torch.Tensor) else ()
            self.layers.append(Layer(name, "F", shape, 0, flops, *(made or (None, None))))
        return out


def _blank(model: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    """One blank image on the model's device, in its floating-point dtype (a bf16 model takes bf16 input)."""
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    return torch.zeros(1, *input_size, device=device, dtype=dtype)


def describe(model: nn.Module, input_size: Sequence[int] = INPUT_SIZE) -> ModelSummary:
    """Run one blank image through ``model`` (eval mode, no gradients) and collect its layers.

    The model's mode, weights and buffers are left as they were.
    """
    counter = FlopCounterMode(display=False)
    tracer = _Tracer(counter)
    names = {m: n for n, m in model.named_modules()}

    def enter(module: nn.Module, _inp: Any) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        tracer.active = Layer(names.get(module, type(module).__name__), type(module).__name__, (), params)

    def leave(module: nn.Module, _inp: Any, out: Any) -> None:
        layer, tracer.active = tracer.active, None
        if layer is None:
            return
        first = out[0] if isinstance(out, (tuple, list)) and out else out
        layer.output_shape = tuple(first.shape[1:]) if isinstance(first, torch.Tensor) else ()
        tracer.layers.append(layer)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_pre_hook(enter) for m in leaves] + [m.register_forward_hook(leave) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        x = _blank(model, input_size)
        with torch.no_grad(), counter, tracer:
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return ModelSummary(
        name=type(model).__name__,
        input_size=tuple(input_size),
        layers=tracer.layers,
        parameters=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        flops=counter.get_total_flops(),
    )


def _si(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _dims(values: tuple[int, ...] | None) -> str:
    if values is None:
        return ""
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _shape(shape: tuple[int, ...]) -> str:
    return str([-1, *shape])


def format_table(s: ModelSummary) -> str:
    """The full layer table: output shape, parameters, FLOPs per image, receptive field and jump."""
    header = f"{'Layer (type)':<28}{'Output Shape':>20}{'Param #':>12}{'FLOPs':>10}{'RF':>6}{'Jump':>6}"
    line = "-" * len(header)
    rows = [line, header, "=" * len(header)]
    for layer in s.layers:
        label = f"{layer.name} ({layer.kind})"
        rows.append(
            f"{label:<28}{_shape(layer.output_shape):>20}{layer.params:>12,}{_si(layer.flops):>10}"
            f"{_dims(layer.rf):>6}{_dims(layer.jump):>6}"
        )
    rows += [
        "=" * len(header),
        f"Total params: {s.parameters:,}",
        f"Trainable params: {s.trainable:,}",
        f"Forward FLOPs per image: {_si(s.flops)} ({s.flops:,}; FlopCounterMode: convolutions and matmuls)",
    ]
    last = s.last_field
    if last is not None:
        size = "x".join(map(str, s.input_size[1:]))
        capped = tuple(min(r, side) for r, side in zip(last.rf, s.input_size[1:], strict=False))
        field = "the whole image" if capped == tuple(s.input_size[1:]) else f"{_dims(capped)} px"
        rows.append(
            f"Receptive field of the last conv/pool layer ({last.name}): {field} of the {size} input, "
            f"jump {_dims(last.jump)}"
        )
    rows.append(line)
    return "\n".join(rows)


def summary(model: nn.Module, input_size: Sequence[int] = INPUT_SIZE) -> str:
    """The seed's torchsummary-style table (layer, output shape, parameters): ``Model.show_summary()``."""
    s = describe(model, input_size)
    counts: dict[str, int] = {}
    line = "-" * 64
    out = [line, f"{'Layer (type)':>20}  {'Output Shape':>25}  {'Param #':>13}", "=" * 64]
    for layer in s.layers:
        if layer.kind == "F":
            continue  # torchsummary lists modules only
        counts[layer.kind] = counts.get(layer.kind, 0) + 1
        name = f"{layer.kind}-{counts[layer.kind]}"
        out.append(f"{name:>20}  {_shape(layer.output_shape):>25}  {layer.params:>13,}")
    out += ["=" * 64, f"Total params: {s.parameters:,}", f"Trainable params: {s.trainable:,}", line]
    return "\n".join(out)


def model_stats(model: nn.Module, input_size: Sequence[int] = INPUT_SIZE) -> dict[str, Any]:
    """The numbers a run header prints: parameters, forward FLOPs per image, the last conv/pool's field.

    ``receptive_field`` and ``jump`` are ints (the largest over the spatial dims, the field capped
    at the input's size: no pixel sees more than the whole image), None for a model without
    convolutions or pooling. A model whose forward fails on a dummy batch still gets its parameter
    count; ``error`` then says what failed (a header never turns a model error into a traceback).
    """
    try:
        s = describe(model, input_size)
    except Exception as err:  # the user's forward: any error it raises
        params = [p for p in model.parameters() if not isinstance(p, nn.parameter.UninitializedParameter)]
        parameters = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        return {
            "parameters": parameters,
            "trainable_parameters": trainable,
            "flops_per_image": None,
            "receptive_field": None,
            "jump": None,
            "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": "),
        }
    last = s.last_field
    side = max(input_size[-2:])
    return {
        "parameters": s.parameters,
        "trainable_parameters": s.trainable,
        "flops_per_image": s.flops,
        "receptive_field": min(max(last.rf), side) if last is not None and last.rf else None,
        "jump": max(last.jump) if last is not None and last.jump else None,
    }


def stats_line(stats: dict[str, Any]) -> str:
    """``model_stats`` as one line: '593,200 parameters, 74.53M FLOPs/image forward, receptive field 16 px (jump 4)'."""
    if stats["flops_per_image"] is None:
        return f"{stats['parameters']:,} parameters (FLOPs unknown: {stats.get('error') or 'no forward'})"
    text = f"{stats['parameters']:,} parameters, {_si(stats['flops_per_image'])} FLOPs/image forward"
    if stats["receptive_field"] is not None:
        side = INPUT_SIZE[-1]
        field = "the whole image" if stats["receptive_field"] >= side else f"{stats['receptive_field']} px"
        text += f", receptive field {field} (jump {stats['jump']})"
    return text
