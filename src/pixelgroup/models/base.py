"""Registries of network parts.

``BACKBONES``: name -> ``cls(*, in_channels, width, depth, context) -> nn.Module`` whose forward maps
``(B, C, H, W)`` to full-resolution features ``(B, out_channels, H, W)`` and exposes
``out_channels`` and ``multiple`` (input sides must be a multiple of it).

``CONTEXTS``: name -> ``cls(channels) -> nn.Module``, a shape-preserving module
``(B, C, h, w) -> (B, C, h, w)`` applied to the backbone's lowest-resolution features.
"""

from __future__ import annotations

from torch import nn

from ..registry import Registry

BACKBONES: Registry[type[nn.Module]] = Registry("backbone")
CONTEXTS: Registry[type[nn.Module]] = Registry("context")
