"""Training (CNTK's ``cntk.train``): ``Trainer``, ``training_session`` with its checkpoint,
cross-validation and test configurations, and ``minibatch_size_schedule``. ``Evaluator`` lives
here too (CNTK's ``cntk.eval.Evaluator``)."""

from .trainer import Trainer
from .evaluator import Evaluator
from .training_session import (DataUnit, CheckpointConfig, CrossValidationConfig, TestConfig, TrainingSession,
                               training_session)
from ..learners.schedules import minibatch_size_schedule

__all__ = ["Trainer", "Evaluator", "DataUnit", "CheckpointConfig", "CrossValidationConfig", "TestConfig",
           "TrainingSession", "training_session", "minibatch_size_schedule"]
