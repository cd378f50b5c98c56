"""What a method is: which heads the network grows, which loss trains them, which grouper reads them.

A method is registered once in :data:`METHODS`; the engine (train, predict, evaluate) is generic and
only talks to this interface.

Training batches are dicts of tensors:
    ``image``      ``(B, C, H, W)`` float32, normalised.
    ``instances``  ``(B, H, W)`` int64, 0 = background, 1..N instances, -1 = ignore.
    ``classes``    ``(B, H, W)`` int64 semantic class per pixel, -1 = ignore (semantic / multi-class).
    ``segments``   ``(B, H, W)`` int64 over-segmentation (unsupervised SegSort), optional.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..config import RunConfig
from ..registry import Registry

Task = Literal["instance", "semantic"]


class Method:
    """Base class of a method. Subclasses set ``name``, ``default_grouper`` and implement the hooks."""

    name: str = ""
    task: Task = "instance"
    default_grouper: str = ""

    def heads(self, cfg: RunConfig) -> dict[str, int]:
        """Named heads of the network and their channels, e.g. ``{"offset": 2, "seed": 1}``."""
        raise NotImplementedError

    def build_loss(self, cfg: RunConfig) -> nn.Module:
        """A module ``loss(output: ModelOutput, batch: dict) -> dict[str, Tensor]`` with ``"total"``."""
        raise NotImplementedError

    def grouper_defaults(self, cfg: RunConfig) -> dict[str, Any]:
        """Grouper keyword arguments implied by the method's settings (overridden by the config)."""
        return {}


METHODS: Registry[Method] = Registry("method")


def register_method(method: Method) -> Method:
    METHODS.add(method.name, method)
    return method
