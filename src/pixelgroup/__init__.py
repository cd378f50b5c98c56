"""pixelgroup: proposal-free instance and semantic segmentation by pixel embedding.

Public API (imported lazily, so ``import pixelgroup`` stays cheap)::

    seg = pixelgroup.load_model("runs/nuclei")   # a Segmenter
    labels = seg.segment(image)                  # (H, W) int32
    pixelgroup.fit(cfg, data="data/train", out="runs/nuclei")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "pixelgroup.engine.segmenter",
    "Segmenter": "pixelgroup.engine.segmenter",
    "fit": "pixelgroup.engine.train",
    "predict_paths": "pixelgroup.engine.predict",
    "evaluate_folders": "pixelgroup.engine.evaluate",
    "build_model": "pixelgroup.engine.build",
    "RunConfig": "pixelgroup.config",
    "load_config": "pixelgroup.config",
    "ModelOutput": "pixelgroup.types",
    "Instances": "pixelgroup.types",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pixelgroup' has no attribute '{name}'")
