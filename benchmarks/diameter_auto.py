"""Objects of another size: the bundled ``nuclei`` model on real nuclei magnified 1x ... 4x, predicted
as is, with ``diameter="auto"``, and with the true diameter.

Data: the held-out test fields of the two MNFinder benchmarks (``real_cell_lines.py``: 15 fields of
5 cell lines, 422 nuclei of 25-48 px; ``real_u2os.py``: 2 fields, 303 nuclei of ~30 px), from the
MNFinder wheel (``pip download mnfinder==1.2.3``, MIT). The bundled model never saw them. Each field
and its labels are resized by each ``--scales`` factor (bilinear / nearest), so the nuclei are 1x ...
4x their size, against the model's training nuclei of ~20 px (10-32 px for 80% of them).

    python benchmarks/diameter_auto.py [--scales 1 2 3 4] [--threads 2]

prints, per scale, AP_dsb@0.5 / @0.75 over all fields and the seconds taken by: ``none`` (no
rescaling), ``auto 2 passes`` (one pass, its median object diameter, one pass at the scale that
gives: what ``diameter="auto"`` did before it probed coarser scales), ``auto`` (``diameter="auto"``:
the size from passes at 1, 1/2, 1/4, 1/8 of the image's scale, then one pass at the size found),
``true`` (each field's own median nucleus diameter
given as ``diameter``: the best that rescaling can do).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import tifffile
import torch
from _common import ROOT, fresh, rescale_folder
from _mnfinder import fetch, stems, write_split

import pixelgroup
from pixelgroup.engine.diameter import median_diameter
from pixelgroup.metrics.instance import InstanceEvaluator

SETS = {
    "2023-05-31_misc": None,  # every test field of the series (real_cell_lines.py)
    "2022-10-14_U2OS": [("test-data", "4"), ("validation-data", "1")],  # real_u2os.py's test fields
}


def write_test(work) -> int:
    """The held-out fields of both benchmarks in ``work/images`` and ``work/masks``; their nucleus count."""
    count = 0
    for series, items in SETS.items():
        items = items or [("test-data", s) for s in stems(series, "test-data")]
        count += write_split(work, fetch(series, items), items)
    return count


def two_pass(seg, image: np.ndarray):
    """``diameter="auto"`` as it was: the median diameter of one pass, then one pass at that size."""
    found = median_diameter(seg.segment_instances(image).labels)
    return seg.segment_instances(image) if found is None else seg.segment_instances(image, diameter=found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="nuclei")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("pixelgroup").setLevel(logging.WARNING)
    seg = pixelgroup.load_model(args.model)
    variants = {
        "none": lambda image, gt: seg.segment_instances(image),
        "auto 2 passes": lambda image, gt: two_pass(seg, image),
        "auto": lambda image, gt: seg.segment_instances(image, diameter="auto"),
        "true": lambda image, gt: seg.segment_instances(image, diameter=median_diameter(gt)),
    }
    print(f"model {args.model}: training objects {seg.object_diameter:.1f} px (median)")
    for scale in args.scales:
        work = fresh(ROOT / "diameter_auto" / f"x{scale:g}")
        n = write_test(work)
        if scale != 1:
            rescale_folder(work, scale)
        paths = sorted((work / "images").glob("*.tif"))
        truth = {p.name: tifffile.imread(work / "masks" / p.name) for p in paths}
        sizes = np.median([median_diameter(m) for m in truth.values()])
        cells = []
        for name, run in variants.items():
            ev, t0 = InstanceEvaluator(), time.perf_counter()
            for p in paths:
                ev.update(truth[p.name], run(tifffile.imread(p), truth[p.name]))
            seconds = time.perf_counter() - t0
            r = ev.compute()
            cells.append(f"{name} {r['ap_dsb@0.50']:.3f} / {r['ap_dsb@0.75']:.3f} ({seconds:.0f} s)")
        print(f"x{scale:g} ({len(paths)} fields, {n} nuclei, median {sizes:.0f} px): " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
