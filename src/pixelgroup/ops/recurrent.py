"""Differentiable recurrent mean shift (Gaussian blurring mean shift) of Kong & Fowlkes (2018).

All points move at once (the data set itself is blurred, not a set of seeds). With ``X`` the
``(N, E)`` points at iteration ``t`` and ``h`` the bandwidth, one step is

    K_ij  = exp((x_i . x_j - 1) / h^2)                      (von Mises-Fisher kernel, "vmf")
    K_ij  = exp(-||x_i - x_j||^2 / (2 h^2))                  (Gaussian kernel, "gaussian")
    x_j  <- sum_i K_ij x_i / sum_i K_ij                      (X <- X K D^-1, D = diag(1^T K))
    x_j  <- x_j / ||x_j||                                    ("vmf" only: back onto the sphere)

exactly the layers of the authors' code (``meanshift_S_is_XX`` ... ``meanshift_Y_is_XP`` followed by
an L2 normalisation). Because ``K`` is symmetric, the update is a row softmax of the logits
``x_i . x_j / h^2`` (resp. ``-||x_i - x_j||^2 / (2 h^2)``), which is how it is computed here: the
row maximum is subtracted inside the softmax, so no ``exp`` overflows for small bandwidths.

On unit vectors ``||x_i - x_j||^2 = 2 - 2 x_i . x_j`` and the two kernels coincide; they differ in
that "gaussian" never re-normalises, i.e. it is plain Euclidean blurring mean shift for free
(non-spherical) embeddings. Memory and time are ``O(N^2)`` per step and image.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Kernel = Literal["vmf", "gaussian"]
_KERNELS = ("vmf", "gaussian")
_EPS = 1e-12


def mean_shift_step(points: Tensor, *, bandwidth: float, kernel: Kernel = "vmf") -> Tensor:
    """One blurring mean-shift step of every point against all points of its set.

    Args:
        points: ``(N, E)`` or ``(B, N, E)``; for ``"vmf"`` they are expected on the unit sphere.
        bandwidth: kernel bandwidth ``h`` (> 0).
        kernel: ``"vmf"`` (result re-normalised) or ``"gaussian"`` (Euclidean).

    Returns:
        The shifted points, shaped like ``points``.
    """
    gram = points @ points.transpose(-1, -2)  # (..., N, N); plain mm for 2-D input (faster than bmm)
    if kernel == "vmf":
        logits = gram / bandwidth**2
    else:
        sq = (points * points).sum(dim=-1)  # (..., N)
        d2 = sq[..., :, None] + sq[..., None, :] - 2.0 * gram
        logits = -d2.clamp_min(0.0) / (2.0 * bandwidth**2)
    weights = torch.softmax(logits, dim=-1)  # row j: weights of the points i pulling x_j
    shifted = weights @ points  # (..., N, E)
    if kernel == "vmf":
        shifted = F.normalize(shifted, dim=-1, eps=_EPS)
    return shifted


class RecurrentMeanShift(nn.Module):
    """``T`` unrolled, differentiable blurring mean-shift iterations (no parameters).

    Args:
        bandwidth: kernel bandwidth ``h``; the authors use 0.1 (``exp((x.y - 1) / 0.01)``).
        iterations: ``T``, the number of steps (0 = identity, only ``X0`` is returned).
        kernel: ``"vmf"`` (points normalised to the sphere before and after every step) or
            ``"gaussian"`` (Euclidean, points used as given).

    Example:
        >>> ms = RecurrentMeanShift(bandwidth=0.1, iterations=5)
        >>> xs = ms(torch.randn(100, 8))  # [X0, X1, ..., X5], each (100, 8)
    """

    def __init__(self, *, bandwidth: float = 0.1, iterations: int = 5, kernel: Kernel = "vmf") -> None:
        super().__init__()
        if bandwidth <= 0:
            raise ValueError(f"RecurrentMeanShift: bandwidth must be > 0, got {bandwidth}")
        if iterations < 0:
            raise ValueError(f"RecurrentMeanShift: iterations must be >= 0, got {iterations}")
        if kernel not in _KERNELS:
            raise ValueError(f"RecurrentMeanShift: kernel must be one of {_KERNELS}, got {kernel!r}")
        self.bandwidth = float(bandwidth)
        self.iterations = int(iterations)
        self.kernel: Kernel = kernel

    def forward(self, points: Tensor) -> list[Tensor]:
        """Run the iterations.

        Args:
            points: ``(B, N, E)`` or ``(N, E)`` float points.

        Returns:
            ``[X0, X1, ..., XT]``, ``T + 1`` tensors shaped like ``points``; ``X0`` is the input,
            L2-normalised for ``"vmf"``.
        """
        if points.dim() not in (2, 3) or not points.is_floating_point():
            raise ValueError(
                f"RecurrentMeanShift: points must be a float (N, E) or (B, N, E) tensor, got "
                f"{tuple(points.shape)} {points.dtype}"
            )
        x = F.normalize(points, dim=-1, eps=_EPS) if self.kernel == "vmf" else points
        out = [x]
        for _ in range(self.iterations):
            x = mean_shift_step(x, bandwidth=self.bandwidth, kernel=self.kernel)
            out.append(x)
        return out

    def extra_repr(self) -> str:
        return f"bandwidth={self.bandwidth}, iterations={self.iterations}, kernel={self.kernel!r}"
