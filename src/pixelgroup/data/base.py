"""The dataset registry: name -> reader class.

A reader is a ``torch.utils.data.Dataset`` of samples (dicts of numpy arrays):
    ``image``     ``(H, W, C)`` float32, already normalised, C = 1 or 3.
    ``instances`` ``(H, W)`` int64, 0 = background, 1..N instances, -1 = ignore (optional).
    ``classes``   ``(H, W)`` int64 class per pixel, -1 = ignore (optional).
    ``instance_classes`` ``(N,)`` int64, class of instance i + 1 (optional, multi-class).
    ``name``      str, the file stem.
It also exposes ``names: list[str]``. The standard readers share :class:`pixelgroup.data.reader.StandardReader`;
:func:`pixelgroup.data.open.open_dataset` opens any registered format by name or detected layout.
"""

from __future__ import annotations

from ..registry import Registry

DATASETS: Registry[type] = Registry("dataset")
