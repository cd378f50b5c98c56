"""napari plugin (``pip install "pixelgroup[napari]"``): a dock widget that segments the selected
image with a named model, run folder or checkpoint, and a reader for ``pixelgroup predict`` results.

Declared in ``napari.yaml`` (npe2); nothing is imported here, so ``import pixelgroup.napari`` is cheap.
"""
