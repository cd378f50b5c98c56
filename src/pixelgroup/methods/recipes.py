"""The published methods, one declared recipe each: heads + loss + grouper, and what couples them.

=================  ========  ===================  ==================  =================================
method             task      loss (``LOSSES``)    grouper             coupling (loss -> grouping)
=================  ========  ===================  ==================  =================================
``spatial``        instance  ``spatial``          ``seeded_classes``  ``coord_scale``
``hypersphere``    instance  ``hypersphere``      ``meanshift``       vMF bandwidth from ``margin``
``discriminative`` instance  ``discriminative_fg`` ``meanshift``      flat radius ``2 delta_v``
``segsort``        semantic  ``segsort``          ``segsort``         clustering ``grid``/``iterations``
``softmax``        semantic  ``softmax``          ``argmax``          none
=================  ========  ===================  ==================  =================================

The loss code lives in :mod:`pixelgroup.losses`, the inference code in :mod:`pixelgroup.grouping`;
this file only says how they are put together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .. import grouping as _grouping  # noqa: F401  (registers the groupers)
from .. import losses as _losses  # noqa: F401  (registers the losses)
from ..config import RunConfig
from ..grouping.segsort import build_prototype_bank, explain_segments
from ..ops.coords import raw_sigma_for_radius
from .base import Method, register_method

# -- spatial embeddings (Neven et al., CVPR 2019) ------------------------------------------------

INIT_RADIUS_PX = 6.0
"""Initial bandwidth: membership 0.5 at this many pixels. The authors' init (sigma bias 1 at 1/1023
units per pixel) gives 5.7 px; we keep that radius whatever ``coord_scale`` is."""


def _spatial_heads(cfg: RunConfig) -> dict[str, int]:
    """``offset`` (2, y/x), ``sigma`` (``model.n_sigma``), ``seed`` (one per object class)."""
    if cfg.model.n_sigma not in (1, 2):
        raise ValueError(f"method 'spatial': model.n_sigma must be 1 or 2, got {cfg.model.n_sigma}")
    if cfg.model.n_classes < 1:
        raise ValueError(f"method 'spatial': model.n_classes must be >= 1, got {cfg.model.n_classes}")
    return {"offset": 2, "sigma": cfg.model.n_sigma, "seed": cfg.model.n_classes}


def init_spatial_heads(heads: Mapping[str, nn.Conv2d], settings: Mapping[str, Any]) -> None:
    """Authors' output initialisation: zero offsets (every pixel starts as its own centre) and a
    constant bandwidth of ``INIT_RADIUS_PX`` pixels (zero weights, bias set); the seed head keeps
    its default initialisation (sigmoid ~ 0.5), as in the authors' code."""
    sigma_bias = raw_sigma_for_radius(INIT_RADIUS_PX, scale=float(settings["coord_scale"]))
    with torch.no_grad():
        for name, value in (("offset", 0.0), ("sigma", sigma_bias)):
            conv = heads.get(name)
            if conv is None:
                continue
            conv.weight.zero_()
            if conv.bias is not None:
                conv.bias.fill_(value)


SEED_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
FG_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
"""Candidates of the grouping thresholds calibrated after training (``engine.calibrate``)."""

SPATIAL = register_method(Method(
    name="spatial",
    task="instance",
    heads=_spatial_heads,
    loss="spatial",
    grouper="seeded_classes",
    # multi-class (as in the paper): one seed channel per object class, dataset ids 1..K
    loss_args=lambda cfg: {"n_classes": cfg.model.n_classes},
    grouper_args=lambda s: {"coord_scale": float(s["coord_scale"])},
    init_heads=init_spatial_heads,
    calibrate=(("seed_threshold", SEED_THRESHOLDS), ("fg_threshold", FG_THRESHOLDS)),
))

# -- recurrent pixel embedding on the hypersphere (Kong & Fowlkes, CVPR 2018) --------------------


def _embedding_heads(cfg: RunConfig) -> dict[str, int]:
    """``embedding`` (``model.embedding_dim``) and ``foreground`` (1 logit)."""
    if cfg.model.embedding_dim < 1:
        raise ValueError(f"method '{cfg.method}': model.embedding_dim must be >= 1, got {cfg.model.embedding_dim}")
    return {"embedding": cfg.model.embedding_dim, "foreground": 1}


def grouping_bandwidth(margin: float) -> float:
    """The vMF mean-shift bandwidth matched to the loss margin: ``sqrt((1 - margin) / 8)``.

    The push term drives pixels of different instances to a similarity ``s = (1 + cos) / 2 <=
    margin``, i.e. a chord distance ``>= 2 sqrt(1 - margin)`` on the unit sphere, while the pull term
    drives an instance to a point. The vMF kernel ``exp((cos - 1) / h^2)`` is the Gaussian of the
    chord distance, which separates two modes only when they are more than about ``2 h`` apart; with
    ``h = sqrt((1 - margin) / 8)`` (0.25 at margin 0.5) instances at the margin are ``4 sqrt(2) h``
    apart and separate a third of the way there. (A wider ``sqrt(1 - margin) / 2`` merged
    neighbours not yet at the margin: held-out AP_dsb@0.5 peaked at h = 0.25-0.3 on the hypersphere
    benchmark's models.)
    """
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"grouping_bandwidth: margin must be in [0, 1), got {margin}")
    return math.sqrt((1.0 - margin) / 8.0)


HYPERSPHERE = register_method(Method(
    name="hypersphere",
    task="instance",
    heads=_embedding_heads,
    loss="hypersphere",
    grouper="meanshift",
    grouper_args=lambda s: {"bandwidth": grouping_bandwidth(float(s["margin"])), "kernel": "vmf",
                            "normalize": True},
    class_head=True,
    calibrate=(("fg_threshold", FG_THRESHOLDS),),
))

# -- discriminative loss (De Brabandere, Neven & Van Gool 2017) ----------------------------------


def discriminative_grouping_args(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Flat-kernel mean shift of radius ``2 delta_v`` on the raw embedding (the paper's rule).

    At zero loss every pixel lies within ``delta_v`` of its instance mean and the means are at least
    ``2 delta_d`` apart, so any radius in ``[delta_v, 2 delta_d - delta_v)`` separates the instances;
    the paper thresholds at ``2 delta_v``. The lower end matters before convergence: with crowded
    nuclei the means of neighbours are still closer than ``2 delta_d``, and ``delta_d`` as the radius
    merged them (held-out AP_dsb@0.5 0.70 -> 0.94 on synthetic nuclei, same model).
    """
    return {"bandwidth": 2.0 * float(settings["delta_v"]), "kernel": "flat", "normalize": False}


DISCRIMINATIVE = register_method(Method(
    name="discriminative",
    task="instance",
    heads=_embedding_heads,
    loss="discriminative_fg",
    grouper="meanshift",
    grouper_args=discriminative_grouping_args,
    class_head=True,
    calibrate=(("fg_threshold", FG_THRESHOLDS),),
    # Semi-convolutional embedding by default: with the pure embedding (model.embedding_coords: 0, the
    # paper's setting) crowded images of look-alike nuclei need thousands of steps before every pair of
    # the ~40 instances of a crop is 2 delta_d apart; adding 0.1 x the pixel coordinates makes
    # neighbours ~2 units apart from the start (benchmarks/discriminative_context.py).
    embedding_coords=0.1,
))

# -- SegSort (Hwang et al., ICCV 2019) and its softmax baseline ----------------------------------


def _segsort_heads(cfg: RunConfig) -> dict[str, int]:
    """``embedding`` (``model.embedding_dim`` channels, L2-normalised by the loss and the grouper)."""
    if cfg.model.embedding_dim < 2:
        raise ValueError(f"method 'segsort': model.embedding_dim must be >= 2, got {cfg.model.embedding_dim}")
    return {"embedding": cfg.model.embedding_dim}


SEGSORT = register_method(Method(
    name="segsort",
    task="semantic",
    heads=_segsort_heads,
    loss="segsort",
    grouper="segsort",
    # test segments are clustered as the training segments were
    grouper_args=lambda s: {"grid": tuple(s["grid"]), "iterations": int(s["iterations"]),
                            "concentration": float(s["concentration"])},
    state=build_prototype_bank,
    explain=explain_segments,
))


def _softmax_heads(cfg: RunConfig) -> dict[str, int]:
    """``semantic`` (``model.n_classes`` logits, class 0 = background)."""
    if cfg.model.n_classes < 2:
        raise ValueError(
            f"method 'softmax': model.n_classes must be >= 2 (background + classes), got {cfg.model.n_classes}"
        )
    return {"semantic": cfg.model.n_classes}


SOFTMAX = register_method(Method(
    name="softmax",
    task="semantic",
    heads=_softmax_heads,
    loss="softmax",
    grouper="argmax",
))
