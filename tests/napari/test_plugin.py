"""The napari plugin, headless (Qt offscreen): widget, re-grouping without the network, reader, manifest.

The widget tests use a ``ViewerModel`` (layers without an OpenGL canvas) and pytest-qt's ``qtbot``,
so they need no display and no OpenGL; one test docks the widget in a full viewer
(``make_napari_viewer``), which needs OpenGL: it runs where an X server is available (``DISPLAY``,
e.g. ``xvfb-run``) and is skipped elsewhere."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("napari")
pytest.importorskip("pytestqt")

import numpy as np  # noqa: E402

from pixelgroup.data.synth import synth_nuclei  # noqa: E402
from pixelgroup.engine.segmenter import Segmenter, load_model  # noqa: E402


@pytest.fixture
def image():
    return synth_nuclei(np.random.default_rng([5, 0]), 192)[0]


def _wait_for_labels(qtbot, viewer, name):
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=120_000)


@pytest.fixture
def viewer(qtbot):
    from napari.components import ViewerModel

    return ViewerModel()


def test_widget_segments_and_regroups_without_network(viewer, qtbot, image, monkeypatch):
    from pixelgroup.napari._widget import SegmentWidget

    calls = []
    original = Segmenter.outputs
    monkeypatch.setattr(Segmenter, "outputs", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    viewer.add_image(image, name="cells")
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget.native)
    assert widget.model.value == "nuclei" and widget.image.value == "cells"
    widget.run()
    _wait_for_labels(qtbot, viewer, "cells labels")
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=60_000)
    assert len(calls) == 1  # one network pass
    expected = load_model("nuclei").segment(image)
    labels = viewer.layers["cells labels"].data
    assert int(labels.max()) == int(expected.max()) > 0
    np.testing.assert_array_equal(labels, expected)
    assert widget.progress.value == 3
    n = len(calls)
    widget.seed_threshold.value = 0.99  # re-grouped at once from the cached outputs
    assert len(calls) == n
    np.testing.assert_array_equal(viewer.layers["cells labels"].data,
                                  load_model("nuclei", seed_threshold=0.99).segment(image))
    n = len(calls)
    widget.min_size.value = 10_000  # no object is that big
    assert viewer.layers["cells labels"].data.max() == 0 and len(calls) == n


def test_widget_says_when_the_objects_are_far_from_the_training_size(viewer, qtbot, image):
    from pixelgroup.engine.diameter import resize_image
    from pixelgroup.napari._widget import SegmentWidget

    # nuclei of ~16 px, then ~39 px (2.5x), beyond the 10-32 px the bundled model was trained on
    big = resize_image(image[..., None].astype(np.float32), 2.5)[..., 0]
    viewer.add_image(image, name="cells")
    viewer.add_image(big, name="big")
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget.native)
    statuses = {}
    for name in ("cells", "big"):
        widget.image.value = name
        widget.run()
        _wait_for_labels(qtbot, viewer, f"{name} labels")
        qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=60_000)
        statuses[name] = (widget.status.value, widget.status.tooltip)
    assert statuses["cells"][0].endswith("px across") and not statuses["cells"][1]
    assert "try diameter auto" in statuses["big"][0] and "--diameter auto" in statuses["big"][1]
    widget.diameter.value = "auto"  # rescaled: no size to judge
    widget.run()
    qtbot.waitUntil(lambda: widget.status.value.endswith("objects"), timeout=60_000)


def test_widget_starts_from_the_models_calibrated_values(viewer, qtbot, tmp_path):
    import shutil

    from pixelgroup.engine.checkpoint import update_checkpoint
    from pixelgroup.engine.zoo import resolve_model
    from pixelgroup.napari._widget import SegmentWidget

    path = tmp_path / "calibrated.pt"
    shutil.copyfile(resolve_model("nuclei"), path)
    calibration = {"grouper": "seeded_classes", "params": {"seed_threshold": 0.7, "fg_threshold": 0.4, "min_size": 20},
                   "score": 0.7, "default_score": 0.6, "ap": {}, "n_objects": 30}
    cfg = load_model("nuclei").cfg.replace(**{"grouping.params": {}})  # none given by the user
    update_checkpoint(path, config=cfg.to_dict(), calibration=calibration)
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.model_path.value = str(path)
    seg = widget.segmenter()
    assert (widget.seed_threshold.value, widget.fg_threshold.value, widget.min_size.value) == (0.7, 0.4, 20)
    assert widget.grouping_params(seg) == calibration["params"]


def test_widget_diameter_rescales(viewer, qtbot, image):
    from pixelgroup.napari._widget import SegmentWidget

    viewer.add_image(image, name="cells")
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget.native)
    seg = load_model("nuclei")
    widget.diameter.value = str(seg.object_diameter * 1.25)
    widget.run()
    _wait_for_labels(qtbot, viewer, "cells labels")
    np.testing.assert_array_equal(viewer.layers["cells labels"].data,
                                  seg.segment(image, diameter=seg.object_diameter * 1.25))


@pytest.mark.parametrize("factor", [4.0, "training size"])
def test_widget_diameter_auto_is_the_librarys(viewer, qtbot, image, factor):
    # 4x, nuclei of ~65 px: the network cuts them at their own scale; the widget must measure them as
    # segment(diameter="auto") does (probes at coarser scales), not by one pass. At the training
    # size the library keeps the image's scale, and the widget does too
    from pixelgroup.engine.diameter import median_diameter, resize_image
    from pixelgroup.napari._widget import SegmentWidget

    seg = load_model("nuclei")
    if factor == "training size":
        factor = seg.object_diameter / median_diameter(seg.segment(image))
    big = resize_image(image[..., None].astype(np.float32), factor)[..., 0]
    viewer.add_image(big, name="big")
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.diameter.value = "auto"
    widget.run()
    _wait_for_labels(qtbot, viewer, "big labels")
    expected = seg.segment(big, diameter="auto")
    np.testing.assert_array_equal(viewer.layers["big labels"].data, expected)
    if factor == 4.0:
        assert median_diameter(expected) > 2 * median_diameter(seg.segment(big))
    else:
        assert seg.auto_factor(seg.estimate_diameter(big)) == 1.0  # the case this checks


def test_reader_opens_predict_results(viewer, tmp_path, image):
    import tifffile

    from pixelgroup.engine.predict import predict_paths
    from pixelgroup.napari._reader import get_reader

    tifffile.imwrite(tmp_path / "cells.tif", image)
    predict_paths(load_model("nuclei"), [tmp_path / "cells.tif"], tmp_path / "pred", progress=False)
    assert get_reader(str(tmp_path / "cells.tif")) is None  # an image, not a prediction
    reader = get_reader(str(tmp_path / "pred" / "cells.tif"))
    (data, meta, kind), = reader(str(tmp_path / "pred" / "cells.tif"))
    assert kind == "labels" and data.max() == len(meta["metadata"]["pixelgroup"]["instances"])
    viewer.add_labels(data, **meta)
    assert viewer.layers["cells"].data.max() == data.max()


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="the full viewer needs OpenGL: an X server (xvfb-run)")
def test_widget_docks_in_the_viewer(make_napari_viewer, qtbot, image):
    """In the full napari window (the screenshot of docs/napari_widget.png is taken this way)."""
    from pixelgroup.napari._widget import SegmentWidget

    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="pixelgroup")
    widget.run()
    _wait_for_labels(qtbot, viewer, "cells labels")
    assert viewer.layers["cells labels"].data.max() == load_model("nuclei").segment(image).max()
    if os.environ.get("PIXELGROUP_SCREENSHOT"):
        from skimage.io import imsave

        viewer.window.resize(1300, 720)
        viewer.layers["cells labels"].opacity = 0.5
        qtbot.wait(300)
        imsave(os.environ["PIXELGROUP_SCREENSHOT"], viewer.screenshot(canvas_only=False, flash=False))


def test_manifest_is_valid():
    from importlib.resources import files

    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(files("pixelgroup.napari") / "napari.yaml")
    assert manifest.name == "pixelgroup"
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr))
