"""Shared pure tensor/array helpers that losses, groupers, data readers and metrics all use.

The base layer of the package: it imports nothing from ``pixelgroup`` but :mod:`pixelgroup.types`
and :mod:`pixelgroup.registry`, so every component may import it without crossing the layering.

- :mod:`.labels`: relabelling label images to consecutive ids (numpy and torch).
- :mod:`.coords`: pixel coordinate grids and the spatial-embedding transforms (``(y, x)`` order).
- :mod:`.segments`: per-segment prototypes, majority labels and spherical k-means.
- :mod:`.recurrent`: the differentiable mean-shift iteration (used by a loss and by groupers).
- :mod:`.medoids`: per-instance medoids of pixel sets (the spatial loss's centres).
- :mod:`.resize`: an image and its labels resized with the same pixel centres.
"""
