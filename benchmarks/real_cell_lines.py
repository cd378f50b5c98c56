"""Real nuclei of mixed cell lines and microscopes: 10 training fields, AP on 15 held-out fields of 5 named
cell lines, 8- and 16-bit.

A third real benchmark, for the question a user asks of the defaults: do they hold on images unlike
the two others, with larger nuclei and several cell lines? Data: the ``2023-05-31_misc`` series that
ships inside the MNFinder wheel on PyPI (DiPeso et al., micronucleus segmentation; MIT licence),
DAPI / H2B-stained nuclei at 20x and 40x, annotated per nucleus. The wheel's own ``training-data/``
fields of the series (10 fields, 512 x 512 and 1024 x 1024, all 8-bit, 254 nuclei of ~38 px median
diameter) are the training folder, written whole (``train`` holds out a band of each for model
selection and threshold calibration); the wheel's own ``test-data/`` fields of the series (15
fields, 422 nuclei of 25-48 px median diameter per field) are the test folder and are never seen
in training: U2OS, HeLa and RPE-1 on the microscope that the wheel's ``test-data/image-info.csv``
calls "SPE" (8-bit fields), MCC13 and HFF on the one it calls "SD" (16-bit fields), and one
768 x 869 16-bit field that the file does not list (that file does not describe the training
fields, so some cell lines may be shared). The series' one
validation field is not used. The script fetches the wheel once with ``pip download``; nothing
else of MNFinder is used.

    python benchmarks/real_cell_lines.py [--minutes 10] [--method spatial] [--threads 2] [--seed 0]
                                         [--tta] [--diameter auto] [--scale F] [--model RUN_OR_NAME]

prints AP_dsb at IoU 0.5 ... 0.9, COCO AP, F1, PQ, SBD on the held-out nuclei (pooled over the 15
fields). ``--tta`` also predicts with test-time augmentation, ``--diameter`` also predicts with that
object size (``auto``: estimated per image); ``--scale F`` trains on the training images resized by F
and predicts the test images at that scale too (``--diameter`` = the model's object size / F, labels
back at full size); ``--model`` skips training and scores an existing run or model name (the bundled
``nuclei`` model was trained on the series' training and validation fields among others, never on its
test fields).
"""

from __future__ import annotations

from _mnfinder import run_benchmark, stems

SERIES = "2023-05-31_misc"

if __name__ == "__main__":
    train = [("training-data", s) for s in stems(SERIES, "training-data")]
    test = [("test-data", s) for s in stems(SERIES, "test-data")]
    run_benchmark(__doc__, series=SERIES, train=train, test=test, name="cell_lines",
                  what="held-out nuclei of mixed cell lines")
