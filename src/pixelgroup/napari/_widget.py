"""The napari dock widget: pick a model and the grouping settings, segment the selected image layer.

The network runs in a worker thread (napari's ``thread_worker``) with progress; its raw outputs are
cached per (model, image, diameter), so changing a threshold or the minimum size only re-groups
them (the network is not run again). The result is a labels layer ``"<image> labels"``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, LineEdit, ProgressBar, PushButton, SpinBox

from ..engine.diameter import check_diameter, median_diameter, resize_image, resize_result, size_hint
from ..engine.segmenter import Segmenter, load_model
from ..engine.zoo import list_models

log = logging.getLogger(__name__)

DEFAULT_MODEL = "nuclei"


def parse_diameter(text: str) -> float | str | None:
    """The diameter field: empty = no rescaling, ``auto`` = estimated, else pixels."""
    text = text.strip().lower()
    if not text:
        return None
    return "auto" if text == "auto" else check_diameter(float(text))


def compute_outputs(seg: Segmenter, image: np.ndarray, diameter: float | str | None):
    """Generator for the worker: yields progress steps (1..3), returns ``(outputs, size)``: the raw
    outputs at the working scale and the image's ``(H, W)``."""
    prepared = seg.prepare(image)
    yield 1
    factor = 1.0
    if diameter == "auto":  # the library's estimate and scale (segment(diameter="auto"))
        factor = seg.auto_factor(seg.estimate_diameter(prepared, normalized=True))
    elif diameter is not None:
        factor = seg.rescale_factor(diameter)
    yield 2
    outputs = seg.outputs(resize_image(prepared, factor), normalized=True)
    yield 3
    return outputs, prepared.shape[:2]


def status_line(seg: Segmenter, labels: np.ndarray, *, rescaled: bool) -> tuple[str, str | None]:
    """``(status, tooltip)`` after segmenting: the object count and, for an image segmented at its own
    scale, their median size; when that is far from the model's training objects (the size hint of
    ``predict``) the status says to try ``auto`` and the tooltip gives the whole hint."""
    text = f"{int(labels.max())} objects"
    found = None if rescaled or seg.task != "instance" else median_diameter(labels)
    if found is None:
        return text, None
    text += f", {found:.0f} px across"
    hint = size_hint(found, seg.object_diameter, seg.object_diameter_range)
    if hint is None:
        return text, None
    return f"{text}: far from the model's training size, try diameter auto", hint


class SegmentWidget(Container):
    """Dock widget: model (bundled name, run folder or checkpoint), seed / foreground thresholds,
    minimum size, diameter; *Segment* runs on the selected image layer."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        names = [m.name for m in list_models()]
        self.model = ComboBox(label="model", choices=names, value=DEFAULT_MODEL if DEFAULT_MODEL in names else None)
        self.model_path = LineEdit(label="or path", value="",
                                   tooltip="run folder or .pt checkpoint (wins over the name)")
        self.image = ComboBox(label="image", choices=self._image_layers)
        self.seed_threshold = FloatSpinBox(label="seed threshold", value=0.9, min=0.0, max=0.999, step=0.05)
        self.fg_threshold = FloatSpinBox(label="fg threshold", value=0.5, min=0.0, max=0.999, step=0.05)
        self.min_size = SpinBox(label="min size (px)", value=36, min=1, max=1_000_000)
        self.diameter = LineEdit(label="diameter (px)", value="",
                                 tooltip="objects' diameter in this image, 'auto', or empty (no rescaling)")
        self.run_button = PushButton(text="Segment")
        self.progress = ProgressBar(value=0, min=0, max=3, label="progress")
        self.status = Label(value="")
        super().__init__(widgets=[self.model, self.model_path, self.image, self.seed_threshold, self.fg_threshold,
                                  self.min_size, self.diameter, self.run_button, self.progress, self.status])
        self._segmenters: dict[str, Segmenter] = {}
        self._cache: dict[tuple, tuple] = {}
        self._current: tuple | None = None
        self.worker = None
        self.run_button.changed.connect(self.run)
        for w in (self.seed_threshold, self.fg_threshold, self.min_size):
            w.changed.connect(self.regroup)
        viewer.layers.events.inserted.connect(self.image.reset_choices)
        viewer.layers.events.removed.connect(self.image.reset_choices)
        self.image.reset_choices()

    def _image_layers(self, _widget=None) -> list[str]:
        return [layer.name for layer in self.viewer.layers if type(layer).__name__ == "Image"]

    def model_key(self) -> str:
        return self.model_path.value.strip() or str(self.model.value)

    def segmenter(self) -> Segmenter:
        key = self.model_key()
        if key not in self._segmenters:
            self._segmenters[key] = load_model(key)
            self.show_settings(self._segmenters[key])
        return self._segmenters[key]

    def show_settings(self, seg: Segmenter) -> None:
        """Set the threshold widgets to the model's own grouping values (those calibrated after
        training, when it has them), without re-grouping."""
        if seg.cfg.method != "spatial":
            return
        for name, widget in (("seed_threshold", self.seed_threshold), ("fg_threshold", self.fg_threshold),
                             ("min_size", self.min_size)):
            if name in seg.grouper_params:
                with widget.changed.blocked():
                    widget.value = seg.grouper_params[name]

    def grouping_params(self, seg: Segmenter) -> dict[str, Any]:
        """The widget's settings (seeded grouping of the ``spatial`` method; other methods keep their
        run's grouping settings)."""
        if seg.cfg.method != "spatial":
            return {}
        return {"seed_threshold": float(self.seed_threshold.value), "fg_threshold": float(self.fg_threshold.value),
                "min_size": int(self.min_size.value)}

    def run(self, *_args) -> None:
        """Segment the selected image layer (network in a worker thread, then :meth:`regroup`)."""
        from napari.qt.threading import thread_worker

        if not self.image.value:
            self.status.value = "no image layer selected"
            return
        try:
            seg, diameter = self.segmenter(), parse_diameter(self.diameter.value)
        except (OSError, ValueError, KeyError) as err:
            self.status.value = f"error: {err}"
            return
        layer = self.viewer.layers[self.image.value]
        key = (self.model_key(), self.image.value, id(layer.data), diameter)
        if key in self._cache:
            self._current = key
            self.regroup()
            return
        self.progress.value = 0
        self.status.value = "running the network ..."
        self.run_button.enabled = False
        self.worker = thread_worker(compute_outputs, progress={"total": 3})(seg, np.asarray(layer.data), diameter)
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(lambda result: self._on_outputs(key, result))
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(lambda: setattr(self.run_button, "enabled", True))
        self.worker.start()

    def _on_progress(self, step: int) -> None:
        self.progress.value = step

    def _on_error(self, err: Exception) -> None:
        self.status.value = f"error: {err}"

    def _on_outputs(self, key: tuple, result: tuple) -> None:
        self._cache = {key: result}  # keep one image's outputs
        self._current = key
        self.regroup()

    def regroup(self, *_args) -> None:
        """Group the cached outputs with the current settings and show the labels (no network)."""
        if self._current is None or self._current not in self._cache:
            return
        outputs, size = self._cache[self._current]
        seg = self.segmenter()
        base = dict(seg.grouper_params)
        seg.grouper_params.update(self.grouping_params(seg))
        try:
            result = resize_result(seg.group(outputs), size)
        except ValueError as err:
            self.status.value = f"error: {err}"
            return
        finally:
            seg.grouper_params.clear()
            seg.grouper_params.update(base)
        labels = result.labels if hasattr(result, "labels") else result
        name = f"{self._current[1]} labels"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = labels
        else:
            self.viewer.add_labels(labels, name=name)
        self.status.value, self.status.tooltip = status_line(seg, labels, rescaled=self._current[3] is not None)
