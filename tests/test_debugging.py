"""cntk.debugging, cntk.cntk_py and cntk.eval: fixed seeds, deterministic algorithms, the
signature/graph dumps, the profiler, the CPU thread count, and Evaluator under C.eval."""

import glob
import json
import os

import numpy as np
import pytest
import torch

import cntk as C
from cntk import initializer
from cntk.ops import normalization


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Each test leaves the seed streams, torch's determinism and thread count as found."""
    rng, dropout_seeds = initializer._global_rng, normalization._auto_seeds
    det, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    fixed = C.cntk_py.is_random_seed_fixed()
    yield
    initializer._global_rng, normalization._auto_seeds = rng, dropout_seeds
    torch.use_deterministic_algorithms(det, warn_only=det_warn)
    torch.set_num_threads(threads)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    C.cntk_py._seed_fixed[0] = fixed


def _build_and_run():
    """A model with automatically seeded parameters, a random op and a dropout; returns the
    parameter values, two uniform draws, and a training-mode dropout output."""
    x = C.input_variable(6, np.float64)
    h = C.layers.Dense(8, init=C.glorot_uniform())(x)
    d = C.dropout(h, 0.5)
    z = C.layers.Dense(3)(d)
    r = C.random.uniform((4,), np.float64)
    params = [p.value.copy() for p in z.parameters]
    draws = [r.eval(), r.eval()]
    data = np.ones((5, 6))
    _, out = d.forward({d.arguments[0]: data}, [d.output], {d.output})
    return params, draws, out[d.output]


def _same(a, b):
    pa, da, oa = a
    pb, db, ob = b
    return all(np.array_equal(u, v) for u, v in zip(pa, pb)) and \
        all(np.array_equal(u, v) for u, v in zip(da, db)) and np.array_equal(oa, ob)


def test_set_fixed_random_seed_repeats_initial_values_and_draws():
    C.cntk_py.set_fixed_random_seed(1)
    assert C.cntk_py.is_random_seed_fixed()
    first = _build_and_run()
    C.cntk_py.set_fixed_random_seed(1)
    second = _build_and_run()
    assert _same(first, second)
    assert not np.array_equal(first[1][0], first[1][1])     # each evaluation still draws anew
    assert 0 < np.count_nonzero(first[2]) < first[2].size   # the dropout really drops
    C.cntk_py.set_fixed_random_seed(2)
    third = _build_and_run()
    random_params = [(u, v) for u, v in zip(first[0], third[0]) if np.any(u)]     # biases start at 0
    assert len(random_params) == 2 and not any(np.array_equal(u, v) for u, v in random_params)
    assert not np.array_equal(first[1][0], third[1][0])
    assert not np.array_equal(first[2], third[2])


def test_reset_random_seed_clears_the_fixed_flag_and_restarts():
    C.cntk_py.set_fixed_random_seed(5)
    C.cntk_py.reset_random_seed(3)
    assert not C.cntk_py.is_random_seed_fixed()
    a = _build_and_run()
    C.cntk_py.reset_random_seed(3)
    assert _same(a, _build_and_run())


def test_force_deterministic_fixes_seed_and_algorithms():
    torch.use_deterministic_algorithms(False)
    C.debugging.force_deterministic(7)
    assert torch.are_deterministic_algorithms_enabled()
    assert C.cntk_py.should_force_deterministic_algorithms()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert C.cntk_py.is_random_seed_fixed()
    a = _build_and_run()
    C.debugging.force_deterministic(7)
    assert _same(a, _build_and_run())
    C.debugging.force_deterministic(8)
    assert not _same(a, _build_and_run())


@pytest.mark.parametrize("bad", [-1, 2 ** 32, 1.5, "1", True])
def test_fixed_seed_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="set_fixed_random_seed"):
        C.cntk_py.set_fixed_random_seed(bad)


def test_explicit_seeds_are_unaffected_by_the_fixed_seed():
    C.cntk_py.set_fixed_random_seed(1)
    a = C.parameter((3, 4), init=C.glorot_uniform(seed=9)).value
    C.cntk_py.set_fixed_random_seed(2)
    b = C.parameter((3, 4), init=C.glorot_uniform(seed=9)).value
    np.testing.assert_array_equal(a, b)


def test_evaluator_from_cntk_eval():
    assert C.eval.Evaluator is C.train.Evaluator
    from cntk.eval import Evaluator
    x = C.input_variable(2)
    y = C.input_variable(2)
    err = C.squared_error(x, y)
    ev = Evaluator(err)
    xs = np.array([[1, 2], [3, 4], [0, 0]], np.float32)
    ys = np.array([[1, 1], [1, 1], [1, 1]], np.float32)
    expected = ((xs - ys) ** 2).sum(axis=1).mean()
    assert ev.test_minibatch({x: xs, y: ys}) == pytest.approx(expected, rel=1e-6)


def test_progress_writer_base_is_cntk_py_progress_writer():
    assert C.cntk_py.ProgressWriter is C.logging.ProgressWriter
    seen = []

    class Writer(C.cntk_py.ProgressWriter):
        def __init__(self):
            super().__init__(1, 0, 1, 0, 1, 0)

        def on_write_test_summary(self, samples, updates, summaries, aggregate_metric, elapsed_milliseconds):
            seen.append((samples, aggregate_metric))

    x = C.input_variable(1)
    ev = C.eval.Evaluator(C.reduce_sum(x), [Writer()])
    ev.test_minibatch({x: np.array([[1.0], [2.0]], np.float32)})
    ev.summarize_test_progress()
    assert seen and seen[0][0] == 2 and seen[0][1] == pytest.approx(3.0)


def test_cntk_py_classes_are_the_library_classes():
    x = C.input_variable(2)
    assert isinstance(x, C.cntk_py.Variable)
    assert isinstance(C.parameter(2), C.cntk_py.Parameter)
    assert isinstance(C.constant(1.0), C.cntk_py.Constant)
    assert isinstance(C.plus(x, x), C.cntk_py.Function)


def _model():
    x = C.sequence.input_variable(3, name="features")
    return C.layers.Dense(2, name="out")(x), x


def test_dump_signature(capsys):
    z, _ = _model()
    C.debugging.dump_signature(z)
    assert capsys.readouterr().out.strip() == "out(features: Sequence[Tensor[3]]) -> Sequence[Tensor[2]]"
    y = C.plus(C.input_variable(4), 1)
    C.debugging.dump_signature(y, tag="adder")
    assert capsys.readouterr().out.strip() == "adder(Tensor[4]) -> Tensor[4]"
    two = C.combine([z, C.sequence.last(z)])
    C.debugging.dump_signature(two, tag="pair")
    assert capsys.readouterr().out.strip() == \
        "pair(features: Sequence[Tensor[3]]) -> Tuple[Sequence[Tensor[2]], Tensor[2]]"


def test_dump_function_lists_every_node(capsys):
    z, x = _model()
    C.debugging.dump_function(z)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "out(features: Sequence[Tensor[3]]) -> Sequence[Tensor[2]]"
    assert lines[1] == "  Axis defaultDynamicAxis == n*"
    ops = [ln.split()[0] for ln in lines[2:]]
    assert ops[:3] == ["Dense", "Plus", "Times"]       # the root first, then inside the block
    assert sorted(ops[3:]) == ["Input", "Parameter", "Parameter"]
    inp = [ln for ln in lines if ln.split()[0] == "Input"][0]
    assert "features %s" % x.uid in inp and inp.rstrip().endswith("[b*,n*](3,)")
    w = [ln for ln in lines if ln.split()[0] == "Parameter" and ln.split()[1] == "W"][0]
    assert w.rstrip().endswith("(3, 2)")
    times = [ln for ln in lines if ln.split()[0] == "Times"][0]
    assert "W:(3, 2)" in times and ":[b*,n*](2,))" in times


def test_dump_rejects_non_functions():
    with pytest.raises(TypeError, match="dump_function"):
        C.debugging.dump_function(3)


def test_profiler_writes_a_trace(tmp_path):
    d = str(tmp_path / "prof")
    C.debugging.start_profiler(d, sync_gpu=False)
    x = C.input_variable(16)
    z = C.layers.Dense(8)(x)
    z.eval(np.ones((4, 16), np.float32))        # not recorded: the profiler is not enabled yet
    C.debugging.enable_profiler()
    z.eval(np.ones((4, 16), np.float32))
    C.debugging.disable_profiler()
    paths = C.debugging.stop_profiler()
    assert paths == sorted(glob.glob(os.path.join(d, "*.trace.json"))) and len(paths) == 1
    with open(paths[0]) as fh:
        trace = json.load(fh)
    names = {e.get("name", "") for e in trace["traceEvents"]}
    assert any("mm" in n or "addmm" in n or "matmul" in n for n in names)


def test_profiler_state_errors(tmp_path):
    with pytest.raises(RuntimeError, match="not started"):
        C.debugging.enable_profiler()
    C.debugging.start_profiler(str(tmp_path / "p"))
    try:
        with pytest.raises(RuntimeError, match="already started"):
            C.debugging.start_profiler(str(tmp_path / "q"))
    finally:
        assert C.debugging.stop_profiler() == []
    with pytest.raises(ValueError, match="reserve_mem"):
        C.debugging.start_profiler(str(tmp_path / "r"), reserve_mem=0)


def test_cpu_thread_count():
    C.cntk_py.set_max_num_cpu_threads(1)
    assert C.cntk_py.get_max_num_cpu_threads() == 1 == torch.get_num_threads()
    C.cntk_py.set_max_num_cpu_threads(2)
    assert C.cntk_py.get_max_num_cpu_threads() == 2
    with pytest.raises(ValueError, match="set_max_num_cpu_threads"):
        C.cntk_py.set_max_num_cpu_threads(0)
