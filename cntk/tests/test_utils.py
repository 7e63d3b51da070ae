"""Utilities of CNTK's ``cntk.tests.test_utils`` that tutorials and scripts call."""

import os

import numpy as np

import cntk as C

# numpy's default absolute tolerance (1e-8) is too strict for functions like sigmoid.
TOLERANCE_ABSOLUTE = 1E-06

PRECISION_TO_TYPE = {'float': np.float32, 'double': np.float64}

AA = np.asarray


def set_device_from_pytest_env():
    """Select the default device named by the ``TEST_DEVICE`` environment variable
    (``cpu``, anything else the first GPU); do nothing when it is not set."""
    if 'TEST_DEVICE' in os.environ:
        if os.environ['TEST_DEVICE'] == 'cpu':
            C.device.try_set_default_device(C.device.cpu())
        else:
            C.device.try_set_default_device(C.device.gpu(0))
