"""Fixtures of the command pipeline's tests (defined in ``support``)."""

from tests.controlcenter.commands.support import clock, make_pipeline, rtus, store

__all__ = ["clock", "make_pipeline", "rtus", "store"]
