"""models.summary(model, input_size): per layer output shape, parameters and
multiply-adds for one sample, from a forward pass with hooks; printable as a table."""
from dataclasses import dataclass, field

import torch
import torch.nn as tnn


@dataclass
class Row:
    name: str
    kind: str
    output_shape: tuple
    params: int
    conv_weights: int
    mult_adds: int


@dataclass
class Summary:
    rows: list = field(default_factory=list)
    output_shape: tuple = ()

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def conv_weights(self) -> int:
        return sum(r.conv_weights for r in self.rows)

    @property
    def mult_adds(self) -> int:
        return sum(r.mult_adds for r in self.rows)

    def __str__(self) -> str:
        header = f"{'layer':<34} {'type':<16} {'output shape':<20} {'params':>12} {'mult-adds':>15}"
        lines = [header, "-" * len(header)]
        for r in self.rows:
            lines.append(f"{r.name:<34} {r.kind:<16} {str(list(r.output_shape)):<20} {r.params:>12,} "
                         f"{r.mult_adds:>15,}")
        lines.append("-" * len(header))
        lines.append(f"{'total':<34} {'':<16} {'':<20} {self.params:>12,} {self.mult_adds:>15,}")
        lines.append(f"output {list(self.output_shape)}   convolution weights: {self.conv_weights:,}   "
                     f"multiply-adds: {self.mult_adds / 1e6:,.0f}x10^6")
        return "\n".join(lines)


def _mult_adds(module, output) -> tuple[int, int]:
    """(multiply-adds, convolution weights) of one leaf layer for one sample."""
    if isinstance(module, (tnn.Conv1d, tnn.Conv2d, tnn.Conv3d)):
        per_output = module.weight[0].numel()  # in_channels / groups * prod(kernel)
        return output[0].numel() * per_output, module.weight.numel()
    if isinstance(module, tnn.Linear):
        return output[0].numel() * module.in_features, 0
    return 0, 0


def summary(model: tnn.Module, input_size) -> Summary:
    """input_size: (C, H, W) for one sample (a leading batch of 1 is added), or a full shape."""
    shape = tuple(input_size)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    x = torch.zeros((1, *shape) if len(shape) == 3 else shape, device=device, dtype=dtype)
    result, hooks = Summary(), []

    def hook(name):
        def record(module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            mult_adds, conv_weights = _mult_adds(module, out)
            params = sum(p.numel() for p in module.parameters(recurse=False))
            result.rows.append(Row(name, type(module).__name__, tuple(out.shape), params, conv_weights, mult_adds))
        return record

    for name, module in model.named_modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(hook(name or type(module).__name__)))
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(x)
        result.output_shape = tuple(out.shape)
    finally:
        model.train(training)
        for h in hooks:
            h.remove()
    return result
