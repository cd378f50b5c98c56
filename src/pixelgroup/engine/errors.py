"""The engine's error type."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, bad setup or data); the message says why and what to do."""
