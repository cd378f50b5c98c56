"""The network alone, for export: a tuple of head tensors instead of a dataclass (traceable, ONNX)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .segmenter import Segmenter


class HeadTensors(nn.Module):
    """The network with a tuple of head tensors ``(B, C_k, H, W)`` (in :attr:`names` order) as output,
    instead of a dataclass: traceable, scriptable from the outside, exportable to ONNX."""

    def __init__(self, net: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.net, self.names = net, list(names)

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        out = self.net(image)
        return tuple(getattr(out, name) for name in self.names)


def head_names(seg: Segmenter) -> list[str]:
    return [name for name, _ in seg.model(torch.zeros(1, seg.model.in_channels, seg.model.multiple,
                                                      seg.model.multiple)).items()]


def traced_network(seg: Segmenter) -> torch.jit.ScriptModule:
    """The network traced to a tuple of heads; checked against eager on a second input size."""
    model = seg.model.cpu().eval()
    wrapper = HeadTensors(model, head_names(seg)).eval()
    m, c = model.multiple, model.in_channels
    example = torch.rand(1, c, 4 * m, 6 * m)
    other = torch.rand(1, c, 5 * m, 3 * m)
    # the input checks of forward() become constants of the trace (TracerWarning): harmless, as the
    # trace is checked against eager on a second size
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(wrapper, example, check_inputs=[(other,)], check_tolerance=1e-5)
    return traced


def export_onnx(seg: Segmenter, out: Path) -> Path:
    """The network as ONNX (opset 17): ``image (B, C, H, W)`` -> one raw output ``(B, C_k, H, W)`` per head."""
    names = head_names(seg)
    model = seg.model.cpu().eval()
    m, c = model.multiple, model.in_channels
    dims = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(HeadTensors(model, names).eval(), (torch.rand(1, c, 4 * m, 4 * m),), str(out),
                          input_names=["image"], output_names=names, opset_version=17, dynamo=False,
                          dynamic_axes={"image": dims, **{n: dims for n in names}})
    return out
