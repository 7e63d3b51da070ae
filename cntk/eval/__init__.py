"""Evaluation (CNTK's ``cntk.eval``): ``Evaluator``, the same class as ``cntk.train.Evaluator``."""

from ..train.evaluator import Evaluator

__all__ = ["Evaluator"]
