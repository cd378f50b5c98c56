"""Bundled pretrained models (package data only, no code): one folder per model,
``NAME/model.pt`` (a pixelgroup checkpoint) and ``NAME/card.md`` (its model card).

Resolved by name through :mod:`pixelgroup.engine.zoo` (``load_model("nuclei")``).
"""
