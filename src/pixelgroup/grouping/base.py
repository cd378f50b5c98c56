"""The grouper registry.

A grouper is a pure function ``fn(output: ModelOutput, **params) -> Instances`` on the outputs of
ONE image (every tensor ``(C, H, W)``, raw head outputs, on any device). It never reads globals
and builds any coordinate grid from the input's shape and device.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry
from ..types import Instances, ModelOutput

Grouper = Callable[..., Instances]
GROUPERS: Registry[Grouper] = Registry("grouper")


def group(name: str, output: ModelOutput, **params) -> Instances:
    """Run the registered grouper ``name`` on one image's outputs."""
    return GROUPERS.get(name)(output, **params)
