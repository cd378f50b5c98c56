"""A method's inference state (e.g. SegSort's prototype bank), built by running the network over
annotated training images."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import RunConfig
from ..grouping.base import GROUPERS
from ..methods.base import Method, split_kwargs
from ..types import ModelOutput
from .build import grouper_spec
from .segmenter import forward_padded


def _samples(data: Iterable) -> Iterator[tuple[Tensor, Tensor, str]]:
    """``(image (C, H, W), classes (H, W), name)`` from a dataset of numpy samples or tensor batches."""
    indexable = hasattr(data, "__getitem__") and hasattr(data, "__len__")
    items = (data[i] for i in range(len(data))) if indexable else iter(data)
    for n, item in enumerate(items):
        if "classes" not in item:
            raise ValueError("fit_state: samples need 'classes' (use a semantic dataset)")
        image, classes, name = item["image"], item["classes"], item.get("name", f"image_{n:04d}")
        if isinstance(image, np.ndarray):  # one sample, (H, W, C)
            chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
            yield chw, torch.as_tensor(classes), name
            continue
        names = name if isinstance(name, (list, tuple)) else [name] * image.shape[0]
        for b in range(image.shape[0]):  # a batch, (B, C, H, W)
            yield image[b], classes[b], str(names[b])


def fit_state(
    method: Method,
    model: nn.Module,
    data: Iterable,
    device: str | torch.device,
    *,
    cfg: RunConfig | None = None,
    max_images: int | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Build ``method``'s inference state from annotated images (``{}`` when it declares none).

    Args:
        method: the recipe (its ``state`` builder is called).
        model: the trained network (its mode is restored afterwards).
        data: a dataset of samples (``image (H, W, C)`` numpy, ``classes (H, W)``, ``name``) or an
            iterable of tensor batches (``image (B, C, H, W)``, ``classes (B, H, W)``, ``name``).
        device: where to run the network and the builder.
        cfg: optional run config: the builder gets the settings of its grouping (the loss-implied
            defaults and ``cfg.grouping.params``) that it takes.
        max_images: use only the first images.
        **params: overrides of those settings.
    """
    if method.state is None:
        return {}
    settings = {**(grouper_spec(cfg)[1] if cfg is not None else {}), **params}
    builder_kwargs = split_kwargs(settings, method.state, GROUPERS.get(method.grouper),
                                  where=f"method '{method.name}' grouping.params")[0]
    was_training = model.training
    model.eval()

    def outputs() -> Iterator[tuple[str, ModelOutput, Tensor]]:
        for i, (image, classes, name) in enumerate(_samples(data)):
            if max_images is not None and i >= max_images:
                break
            out = forward_padded(model, image.to(device=device, dtype=torch.float32)[None])
            yield name, out, classes

    try:
        return method.state(outputs(), **builder_kwargs)
    finally:
        model.train(was_training)
