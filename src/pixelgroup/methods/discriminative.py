"""The ``discriminative`` method: a free Euclidean embedding trained with the discriminative loss of
De Brabandere, Neven & Van Gool (2017), plus a foreground head, grouped by mean shift.

Heads: ``embedding`` (``model.embedding_dim``), ``foreground`` (1).
Loss: :func:`~pixelgroup.losses.discriminative.discriminative_loss` on the embedding (terms
``var``, ``dist``, ``reg``) + ``fg_weight`` x :func:`~pixelgroup.losses.foreground.foreground_loss`
(BCE + Dice, term ``fg``). ``cfg.loss`` keys: ``delta_v, delta_d, alpha, beta, gamma, fg_weight``.
Grouper: ``meanshift`` with a flat kernel of radius ``delta_d`` on the raw (not normalised)
embedding (why: :meth:`DiscriminativeMethod.grouper_defaults`); ``hdbscan`` is a bandwidth-free
alternative (run config ``grouping: {name: hdbscan}``).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor, nn

from ..config import RunConfig
from ..losses.discriminative import DELTA_D, DELTA_V, discriminative_loss
from ..losses.foreground import foreground_loss
from .base import Method, register_method


class DiscriminativeForegroundLoss(nn.Module):
    """``alpha var + beta dist + gamma reg + fg_weight fg`` on ``output.embedding``/``foreground``.

    Returns ``{"var", "dist", "reg", "fg", "total"}`` (``var``, ``dist``, ``reg`` unweighted; ``fg``
    = BCE + Dice of the foreground logits).
    """

    def __init__(
        self,
        *,
        delta_v: float = DELTA_V,
        delta_d: float = DELTA_D,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.001,
        fg_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if fg_weight < 0:
            raise ValueError(f"method 'discriminative': fg_weight must be >= 0, got {fg_weight}")
        self.kwargs = {"delta_v": delta_v, "delta_d": delta_d, "alpha": alpha, "beta": beta, "gamma": gamma}
        self.fg_weight = fg_weight

    def forward(self, output, batch) -> dict[str, Tensor]:
        if output.embedding is None or output.foreground is None:
            raise ValueError("method 'discriminative': the network needs 'embedding' and 'foreground' heads")
        out = discriminative_loss(output.embedding, batch["instances"], **self.kwargs)
        fg = foreground_loss(output.foreground, batch["instances"])["total"]
        return {**out, "fg": fg, "total": out["total"] + self.fg_weight * fg}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in {**self.kwargs, "fg_weight": self.fg_weight}.items())


def _loss_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """``cfg.loss`` as keyword arguments, unknown keys rejected with the valid ones listed."""
    valid = sorted(inspect.signature(DiscriminativeForegroundLoss.__init__).parameters.keys() - {"self"})
    unknown = sorted(set(cfg.loss) - set(valid))
    if unknown:
        raise ValueError(f"method 'discriminative': unknown loss key(s) {unknown}; valid keys: {valid}")
    return dict(cfg.loss)


class DiscriminativeMethod(Method):
    """Discriminative-loss embedding + foreground, mean-shift grouping."""

    name = "discriminative"
    task = "instance"
    default_grouper = "meanshift"

    def heads(self, cfg: RunConfig) -> dict[str, int]:
        if cfg.model.embedding_dim < 1:
            raise ValueError(
                f"method 'discriminative': model.embedding_dim must be >= 1, got {cfg.model.embedding_dim}"
            )
        return {"embedding": cfg.model.embedding_dim, "foreground": 1}

    def build_loss(self, cfg: RunConfig) -> nn.Module:
        return DiscriminativeForegroundLoss(**_loss_kwargs(cfg))

    def grouper_defaults(self, cfg: RunConfig) -> dict[str, Any]:
        """Flat-kernel mean shift of radius ``delta_d`` on the raw embedding.

        At zero loss every pixel lies within ``delta_v`` of its instance mean and the means are at
        least ``2 delta_d`` apart, so a ball around a mean captures its whole instance for any
        radius in ``[delta_v, 2 delta_d - delta_v)`` and nothing of another instance; ``delta_d`` is
        the middle of that range (equal margins either side), and it is also the distance below
        which the grouper merges two modes (means are ``>= 2 delta_d`` apart, so none merge).
        """
        delta_d = float(_loss_kwargs(cfg).get("delta_d", DELTA_D))
        return {"bandwidth": delta_d, "kernel": "flat", "normalize": False}


register_method(DiscriminativeMethod())
