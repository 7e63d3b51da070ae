"""CNTK's ``cntk.learners``: training-parameter schedules and the learners (optimizers)."""

# FULL_DATA_SWEEP and the schedule class are for cntk.train (minibatch-size schedules, checkpoints)
from .schedules import (UnitType, IGNORE, FULL_DATA_SWEEP, TrainingParameterSchedule,  # noqa: F401
                        training_parameter_schedule, learning_parameter_schedule,
                        learning_parameter_schedule_per_sample, learning_rate_schedule, momentum_schedule,
                        momentum_schedule_per_sample, momentum_as_time_constant_schedule, minibatch_size_schedule)
from .base import (Learner, default_unit_gain_value, set_default_unit_gain_value,  # noqa: F401
                   default_use_mean_gradient_value, set_default_use_mean_gradient_value)
from .user import UserLearner, universal  # noqa: F401
from .factories import sgd, momentum_sgd, nesterov, adagrad, rmsprop, adadelta, adam, fsadagrad  # noqa: F401

__all__ = [
    "UnitType", "IGNORE", "Learner", "UserLearner", "universal",
    "default_unit_gain_value", "set_default_unit_gain_value",
    "default_use_mean_gradient_value", "set_default_use_mean_gradient_value",
    "training_parameter_schedule", "learning_parameter_schedule", "learning_parameter_schedule_per_sample",
    "learning_rate_schedule", "momentum_schedule", "momentum_schedule_per_sample",
    "momentum_as_time_constant_schedule", "minibatch_size_schedule",
    "sgd", "momentum_sgd", "nesterov", "adagrad", "fsadagrad", "adam", "rmsprop", "adadelta",
]
