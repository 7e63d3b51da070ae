"""Replay the CNTK 2.7 learner traces (../shared/golden/learners, skipped when absent).

Each case trains ``z = x @ W + b`` under squared error or cross entropy for 4-5 minibatches of
different sizes; after every update W, b and ``learner.learning_rate()`` must match CNTK's
values, and the summed loss (with the parameters before the update) the recorded average.
The gradient of the summed loss comes from ``Function.grad``, as the Trainer computes it.
"""

import json
import os

import numpy as np
import pytest
import torch

import cntk as C

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(os.path.dirname(REPO), "shared", "golden", "learners")

pytestmark = pytest.mark.skipif(not os.path.isdir(GOLDEN), reason="golden learner data not available")


def _load(name):
    with open(os.path.join(GOLDEN, name), "r") as fh:
        return json.load(fh)


def _case_names():
    if not os.path.isdir(GOLDEN):
        return []
    return [c["name"] for c in _load("index.json")["cases"]]


def _validation_cases():
    if not os.path.isdir(GOLDEN):
        return []
    return _load("argument_validation.json")["cases"]


def _model(case):
    ns = {"C": C, "np": np}
    exec(case["model"]["python"], ns)
    return ns


def _feed(case, ns, mb):
    dt = np.float64 if case["dtype"] == "float64" else np.float32
    x, t = ns["x"], ns["t"]
    if case["model"]["inputs"]["x"]["is_sequence"]:
        return {x: [np.array(s, dt) for s in mb["x"]], t: [np.array(s, dt) for s in mb["t"]]}
    return {x: np.array(mb["x"], dt), t: np.array(mb["t"], dt)}


def _sum_of(loss_value):
    if isinstance(loss_value, list):
        return float(sum(np.sum(v) for v in loss_value))
    return float(np.sum(loss_value))


def test_golden_index_lists_every_file():
    names = _case_names()
    assert len(names) == 92
    for n in names:
        assert os.path.isfile(os.path.join(GOLDEN, n + ".json")), n


@pytest.mark.parametrize("name", _case_names())
def test_golden_learner_trace(name, kernels):
    case = _load(name + ".json")
    ns = _model(case)
    loss, W, b = ns["loss"], ns["W"], ns["b"]
    learner = eval(case["python_api"], ns)
    tol = case["tolerance"]
    assert learner.learning_rate() == pytest.approx(case["initial_learning_rate"], rel=1e-15)
    assert set(learner.parameters) == {W, b}
    seen = 0
    for k, (mb, expected) in enumerate(zip(case["minibatches"], case["steps"])):
        args = _feed(case, ns, mb)
        M = mb["num_samples"]
        total = _sum_of(loss.eval(args))
        np.testing.assert_allclose(total / M, expected["previous_minibatch_loss_average"],
                                   rtol=tol["rtol"], atol=tol["atol"], err_msg="%s step %d: loss" % (name, k))
        grads = loss.grad(args, wrt=[W, b])
        updated = learner._update({p: torch.as_tensor(np.asarray(grads[p])) for p in (W, b)}, M,
                                  mb["is_sweep_end"])
        assert updated is expected["train_minibatch_returned"]
        seen += M
        assert learner.total_number_of_samples_seen == seen == expected["total_number_of_samples_seen"]
        for pname, p in (("W", W), ("b", b)):
            np.testing.assert_allclose(p.value, np.array(expected["parameters"][pname]), rtol=tol["rtol"],
                                       atol=tol["atol"], err_msg="%s step %d: %s" % (name, k, pname))
        assert learner.learning_rate() == pytest.approx(expected["learning_rate"], rel=1e-15), \
            "%s step %d: learning_rate()" % (name, k)


def _golden_schedule_sizes(case, learner):
    """The reference minibatch sizes the learner uses, as recorded in learner_settings."""
    settings = case["learner_settings"]
    out = {"lr": (learner._lr.minibatch_size, settings["lr"]["minibatch_size"])}
    if "momentum" in settings:
        out["momentum"] = (learner._momentum_schedule.minibatch_size, settings["momentum"]["minibatch_size"])
    if "variance_momentum" in settings:
        out["variance_momentum"] = (learner._variance_schedule.minibatch_size,
                                    settings["variance_momentum"]["minibatch_size"])
    return out


@pytest.mark.parametrize("name", _case_names())
def test_golden_resolved_settings(name):
    """Schedules and the learner-level minibatch size resolve as CNTK resolved them."""
    case = _load(name + ".json")
    ns = _model(case)
    learner = eval(case["python_api"], ns)
    for what, (got, want) in _golden_schedule_sizes(case, learner).items():
        assert got == want, "%s: %s reference minibatch size %s, CNTK %s" % (name, what, got, want)
    settings = case["learner_settings"]
    assert learner.minibatch_size == settings["learner_minibatch_size"]
    assert learner._mean_gradient_mode == settings["mean_gradient_mode"]
    lr = settings["lr"]
    assert learner._lr.epoch_size == (lr["epoch_size"] or 0)
    assert [[c, v] for c, v in learner._lr.pairs] == lr["values"]


@pytest.mark.parametrize("vcase", _validation_cases(), ids=lambda c: c["name"])
def test_golden_argument_validation(vcase):
    ns = _model(_load("sgd_lr_ignore.json"))
    if vcase["raises"]:
        with pytest.raises((ValueError, TypeError)) as info:
            eval(vcase["python"], ns)
        assert str(info.value)
        return
    learner = eval(vcase["python"], ns)
    W, b, loss, x, t = ns["W"], ns["b"], ns["loss"], ns["x"], ns["t"]
    rng = np.random.default_rng(0)
    for M in (1, 3, 2, 5, 4):
        args = {x: rng.standard_normal((M, 3)), t: rng.standard_normal((M, 2))}
        grads = loss.grad(args, wrt=[W, b])
        assert learner._update({p: torch.as_tensor(grads[p]) for p in (W, b)}, M)


@pytest.mark.skipif(not hasattr(C, "Trainer"), reason="cntk.train is not available")
@pytest.mark.parametrize("name", _case_names())
def test_golden_trace_through_the_trainer(name):
    """The same traces as CNTK recorded them: through ``C.Trainer.train_minibatch``."""
    case = _load(name + ".json")
    ns = _model(case)
    W, b = ns["W"], ns["b"]
    learner = eval(case["python_api"], ns)
    trainer = C.Trainer(ns["z"], (ns["loss"], None), [learner])
    tol = dict(rtol=case["tolerance"]["rtol"], atol=case["tolerance"]["atol"])
    for k, (mb, expected) in enumerate(zip(case["minibatches"], case["steps"])):
        returned = trainer.train_minibatch(_feed(case, ns, mb), is_sweep_end=mb["is_sweep_end"])
        what = "%s step %d" % (name, k)
        assert returned == expected["train_minibatch_returned"], what
        np.testing.assert_allclose(W.value, expected["parameters"]["W"], err_msg=what, **tol)
        np.testing.assert_allclose(b.value, expected["parameters"]["b"], err_msg=what, **tol)
        np.testing.assert_allclose(trainer.previous_minibatch_loss_average,
                                   expected["previous_minibatch_loss_average"], err_msg=what, **tol)
        assert trainer.previous_minibatch_sample_count == expected["previous_minibatch_sample_count"], what
        assert trainer.total_number_of_samples_seen == expected["total_number_of_samples_seen"], what
        assert learner.learning_rate() == expected["learning_rate"], what
