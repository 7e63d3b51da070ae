"""The one-pass optimizer kernels take only contiguous tensors: a strided gradient (a fused
recurrence's weights get their gradients transposed) must update the same elements as its
contiguous copy."""

import numpy as np
import pytest
import torch

import cntk as C


@pytest.mark.parametrize("make", [
    lambda ps: C.momentum_sgd(ps, C.learning_parameter_schedule_per_sample(0.1), C.momentum_schedule(0.9)),
    lambda ps: C.adam(ps, C.learning_parameter_schedule_per_sample(0.1), C.momentum_schedule(0.9)),
], ids=["momentum_sgd", "adam"])
def test_transposed_gradient_updates_the_right_elements(make, monkeypatch):
    monkeypatch.setattr(C.learners.fused, "MIN_FUSED_NUMEL", 0)
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 5)).astype(np.float32)
    grads = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(2)]
    results = []
    for transposed in (False, True):
        p = C.parameter((3, 5), init=w0)
        learner = make([p])
        for g in grads:
            t = torch.from_numpy(np.ascontiguousarray(g.T)).t() if transposed else torch.from_numpy(g.copy())
            assert t.is_contiguous() != transposed
            learner._update({p: t}, 1)
        results.append(p.value)
    assert not np.allclose(results[0], w0)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)
