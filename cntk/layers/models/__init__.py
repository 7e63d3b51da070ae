"""Ready-made models built from layers (CNTK's ``cntk.layers.models``)."""

from .attention import AttentionModel  # noqa: F401

__all__ = ["AttentionModel"]
