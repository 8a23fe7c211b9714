"""Kept for imports by path: the journal fold lives in :mod:`gatekeeper._run.replay`."""

from ._run.replay import CheckpointProgress, Journal, PhaseProgress, replay

__all__ = ["CheckpointProgress", "Journal", "PhaseProgress", "replay"]
