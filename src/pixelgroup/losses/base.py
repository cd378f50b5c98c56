"""The loss registry: name -> ``nn.Module`` class whose ``forward(output, batch)`` returns a dict of
named scalar terms including ``"total"``. Each loss also exists as a pure function."""

from __future__ import annotations

from torch import nn

from ..registry import Registry

LOSSES: Registry[type[nn.Module]] = Registry("loss")
