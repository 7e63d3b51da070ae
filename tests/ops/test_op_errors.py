"""Invalid op constructions raise at graph construction, naming the op and the shapes.

Each case builds an op from operands that cannot work together and checks the exception
type (ValueError unless CNTK 2.7 raised something else, e.g. RuntimeError for slice
ranges, IndexError for bad ``x[...]`` keys) and the words the message must contain.
"""

import numpy as np
import pytest

import cntk as C


def _x():
    return C.input_variable((2, 3), name="x")


def _y():
    return C.input_variable((4,), name="y")


def _s():
    return C.sequence.input_variable(3, name="s")


# (id, build, exception type, substrings of the message (case-insensitive))
CASES = [
    # elementwise broadcasting
    ("plus", lambda: C.plus(_x(), _y()), ValueError, ["Plus", "(2, 3)", "(4,)", "broadcast"]),
    ("plus_three_operands", lambda: C.plus(_x(), _x(), _y()), ValueError, ["Plus", "(4,)"]),
    ("plus_operator_param", lambda: _x() + C.parameter((2,), name="W"), ValueError, ["Plus", "(2, 3)", "(2,)"]),
    ("minus", lambda: C.minus(_x(), _y()), ValueError, ["Minus", "(2, 3)", "(4,)"]),
    ("element_times", lambda: C.element_times(_x(), C.constant(np.ones((3, 2)))), ValueError,
     ["ElementTimes", "(2, 3)", "(3, 2)"]),
    ("element_divide", lambda: _x() / _y(), ValueError, ["ElementDivide", "(2, 3)", "(4,)"]),
    ("pow", lambda: C.pow(_x(), _y()), ValueError, ["Pow", "(2, 3)", "(4,)"]),
    ("log_add_exp", lambda: C.log_add_exp(_x(), _y()), ValueError, ["LogPlus", "(4,)"]),
    ("element_max", lambda: C.element_max(_x(), _y()), ValueError, ["ElementMax", "(4,)"]),
    ("less", lambda: C.less(_x(), _y()), ValueError, ["Less", "(2, 3)", "(4,)"]),
    ("element_select", lambda: C.element_select(_x(), _y(), _x()), ValueError, ["Select", "(4,)"]),
    ("clip", lambda: C.clip(_x(), C.constant(np.zeros(4)), 1.0), ValueError, ["Clip", "(2, 3)", "(4,)"]),
    ("param_relu", lambda: C.param_relu(C.parameter((4,)), _x()), ValueError, ["PReLU", "(4,)", "(2, 3)"]),
    ("dtype_mismatch", lambda: _x() + C.parameter((3,), dtype=np.float64), ValueError, ["Plus", "float32", "float64"]),
    ("different_sequence_axes",
     lambda: _s() + C.sequence.input_variable(3, sequence_axis=C.Axis.new_unique_dynamic_axis("other")),
     ValueError, ["Plus", "sequence axes"]),
    ("none_operand", lambda: C.plus(_x(), None), ValueError, ["None"]),
    # times
    ("times", lambda: C.times(_x(), C.parameter((4, 5))), ValueError, ["Times", "(2, 3)", "(4, 5)"]),
    ("times_operator", lambda: _x() @ C.parameter((2, 5)), ValueError, ["Times", "(2, 3)", "(2, 5)"]),
    ("times_output_rank", lambda: C.times(_x(), C.parameter((3, 5)), output_rank=3), ValueError,
     ["Times", "output_rank", "(3, 5)"]),
    ("times_two_inputs", lambda: C.times(_x(), C.input_variable((2, 4))), ValueError, ["Times", "(2, 3)", "(2, 4)"]),
    ("times_reduce_sequence_parameter",
     lambda: C.times(_s(), C.parameter((3, 4)),
                     infer_input_rank_to_map=C.TIMES_REDUCE_SEQUENCE_AXIS_WITHOUT_INFERRED_INPUT_RANK),
     ValueError, ["Times", "sequence"]),
    ("times_transpose", lambda: C.times_transpose(_x(), C.parameter((4, 5))), ValueError,
     ["TransposeTimes", "(4, 5)"]),
    # splice
    ("splice", lambda: C.splice(_x(), _y(), axis=0), ValueError, ["Splice", "(2, 3)", "(4,)", "axis 0"]),
    ("splice_default_axis", lambda: C.splice(_x(), C.input_variable((3, 3))), ValueError,
     ["Splice", "(2, 3)", "(3, 3)"]),
    ("splice_new_axis", lambda: C.splice(_x(), _y(), axis=C.Axis.new_leading_axis()), ValueError,
     ["Splice", "(2, 3)", "(4,)"]),
    ("splice_axis_out_of_range", lambda: C.splice(_x(), _x(), axis=2), ValueError, ["Splice", "axis 2", "rank 2"]),
    # reshape
    ("reshape_size", lambda: C.reshape(_x(), (4, 2)), ValueError, ["Reshape", "(2, 3)", "(4, 2)"]),
    ("reshape_infer_indivisible", lambda: C.reshape(_x(), (-1, 4)), ValueError, ["Reshape", "(2, 3)", "(-1, 4)"]),
    ("reshape_two_inferred", lambda: C.reshape(_x(), (-1, -1)), ValueError, ["Reshape", "(-1, -1)"]),
    ("reshape_axis_range", lambda: C.reshape(_x(), (6,), begin_axis=1, end_axis=0), ValueError,
     ["Reshape", "(2, 3)"]),
    ("reshape_sub_range", lambda: C.reshape(_x(), (4,), begin_axis=1), ValueError, ["Reshape", "(3,)", "(4,)"]),
    # slice ranges (CNTK 2.7 raises RuntimeError; ours is also a ValueError)
    ("slice_empty", lambda: C.slice(_x(), 0, 1, 1), RuntimeError, ["Slice", "[1,1)", "size 2"]),
    ("slice_reversed", lambda: C.slice(_x(), 1, 2, 1), RuntimeError, ["Slice", "[2,1)", "size 3"]),
    ("slice_out_of_range", lambda: C.slice(_x(), 1, 0, 4), RuntimeError, ["Slice", "[0,4)", "size 3"]),
    ("slice_negative_out_of_range", lambda: C.slice(_x(), 0, -3, 0), RuntimeError, ["Slice", "[-3,0)", "size 2"]),
    ("slice_multi_axis_second_bad", lambda: C.slice(_x(), [0, 1], [0, 1], [1, 7]), RuntimeError, ["Slice", "[1,7)"]),
    ("slice_axis_out_of_range", lambda: C.slice(_x(), 2, 0, 1), ValueError, ["Slice", "axis 2", "rank 2"]),
    ("slice_stride_zero", lambda: C.slice(_x(), 1, 0, 2, strides=0), ValueError, ["Slice", "stride"]),
    ("slice_argument_lengths", lambda: C.slice(_x(), [0, 1], [0], [1, 1]), ValueError, ["slice", "same length"]),
    # reductions
    ("reduce_keepdims_false_axis_none", lambda: C.reduce_sum(_x(), axis=None, keepdims=False), ValueError,
     ["ReduceElements", "non-static axis"]),
    ("reduce_keepdims_false_all_static", lambda: C.reduce_sum(_x(), axis=C.Axis.all_static_axes(), keepdims=False),
     ValueError, ["non-static axis"]),
    ("reduce_keepdims_false_batch", lambda: C.reduce_mean(_x(), axis=C.Axis.default_batch_axis(), keepdims=False),
     ValueError, ["ReduceElements", "non-static axis"]),
    ("reduce_keepdims_false_all_axes", lambda: C.reduce_max(_x(), axis=C.Axis.all_axes(), keepdims=False),
     ValueError, ["non-static axis"]),
    ("reduce_axis_out_of_range", lambda: C.reduce_sum(_x(), axis=2), ValueError, ["ReduceElements", "axis 2", "rank 2"]),
    ("reduce_negative_axis_out_of_range", lambda: C.reduce_prod(_x(), axis=-3), ValueError, ["axis -3", "rank 2"]),
    ("reduce_batch_axis_of_sequence", lambda: C.reduce_sum(_s(), axis=C.Axis.default_batch_axis()), ValueError,
     ["ReduceElements", "sequence axis"]),
    ("reduce_dynamic_axis", lambda: C.reduce_sum(_s(), axis=C.Axis.default_dynamic_axis()), ValueError,
     ["dynamic axis"]),
    ("argmax_axis_out_of_range", lambda: C.argmax(_x(), axis=5), ValueError, ["axis 5", "rank 2"]),
    ("softmax_axis_out_of_range", lambda: C.softmax(_x(), axis=2), ValueError, ["Softmax", "axis 2"]),
    ("log_softmax_axis_out_of_range", lambda: C.log_softmax(_x(), axis=-3), ValueError, ["LogSoftmax", "axis -3"]),
    # transpose
    ("transpose_not_a_permutation", lambda: C.transpose(_x(), perm=(0, 0)), ValueError,
     ["TransposeAxes", "[0, 0]", "(2, 3)"]),
    ("transpose_too_many_axes", lambda: C.transpose(_x(), perm=(0, 1, 2)), ValueError, ["TransposeAxes", "axis 2"]),
    ("swapaxes_out_of_range", lambda: C.swapaxes(_x(), 0, 3), ValueError, ["swapaxes", "axis 3", "rank 2"]),
    # losses / metrics
    ("cross_entropy_shapes", lambda: C.cross_entropy_with_softmax(_x(), _y()), ValueError,
     ["CrossEntropyWithSoftmax", "(2, 3)", "(4,)"]),
    ("cross_entropy_axis_out_of_range", lambda: C.cross_entropy_with_softmax(_x(), _x(), axis=2), ValueError,
     ["CrossEntropyWithSoftmax", "axis 2"]),
    ("squared_error_shapes", lambda: C.squared_error(_x(), _y()), ValueError, ["SquaredError", "(2, 3)", "(4,)"]),
    ("classification_error_shapes", lambda: C.classification_error(_x(), _y()), ValueError,
     ["ClassificationError", "(2, 3)", "(4,)"]),
    ("classification_error_topN_with_axis", lambda: C.classification_error(_x(), _x(), axis=0, topN=2), ValueError,
     ["ClassificationError", "topN"]),
    # x[...]
    ("getitem_too_many_indices", lambda: _x()[0, 0, 0], IndexError, ["too many indices"]),
    ("getitem_two_ellipses", lambda: _x()[..., ...], IndexError, ["Ellipsis"]),
    ("getitem_empty_slice", lambda: _x()[0:0], IndexError, ["empty"]),
    ("getitem_float", lambda: _x()[1.5], IndexError, ["1.5"]),
    ("getitem_bad_list", lambda: _x()[0, [1.0, 2.0]], IndexError, ["list"]),
    ("getitem_out_of_range", lambda: _x()[5], RuntimeError, ["Slice", "[5,6)", "size 2"]),
]


@pytest.mark.parametrize("build, exc, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_construction_error(build, exc, words):
    with pytest.raises(exc) as info:
        build()
    msg = str(info.value)
    for w in words:
        assert w.lower() in msg.lower(), "%r not in the message: %s" % (w, msg)


def test_slice_range_errors_are_also_value_errors():
    """CNTK 2.7 raises RuntimeError for bad slice ranges; ours is both, so that code catching the
    ValueError of every other construction error keeps working."""
    with pytest.raises(ValueError):
        C.slice(_x(), 0, 2, 2)


def test_valid_neighbours_of_the_error_cases_build():
    """The boundaries just inside the error cases are accepted (the checks are not too strict)."""
    x = _x()
    assert C.slice(x, 0, 0, 2).output.shape == (2, 3)
    assert C.slice(x, 1, -3, 0).output.shape == (2, 3)
    assert C.slice(x, 1, 2, 0, strides=-1).output.shape == (2, 1)
    assert C.reshape(x, (-1, 2)).output.shape == (3, 2)
    assert C.reduce_sum(x, axis=-2, keepdims=False).output.shape == (3,)
    assert C.reduce_sum(x, axis=[0, 1], keepdims=False).output.shape == ()
    assert C.splice(x, C.input_variable((1, 1)), axis=0).output.shape == (3, 3)
    assert C.splice(x, x, axis=-3).output.shape == (2, 2, 3)
    assert C.swapaxes(x, -1, -2).output.shape == (3, 2)
    assert C.times(x, C.parameter((2, 3, 4)), output_rank=1).output.shape == (4,)
    assert x[..., -1].output.shape == (2, 1)


def test_times_transpose_rank1_right_fails_when_run():
    """CNTK accepts times_transpose(x, w) with a rank-1 w at construction and fails in forward."""
    x = C.input_variable(3)
    f = C.times_transpose(x, C.parameter((3,), init=np.ones(3)))
    with pytest.raises(ValueError):
        f.eval({x: np.ones((2, 3), np.float32)})


def test_times_transpose_rank1_right_runs_when_it_has_dynamic_axes_or_the_left_is_sparse():
    """CNTK runs times_transpose with a rank-1 right operand as left·rowᵀ when that operand has
    dynamic axes or the left one is sparse (CNTK_207's sampled softmax relies on both forms)."""
    rng = np.random.RandomState(3)
    W = rng.randn(4, 3)
    h = C.input_variable(3, dtype=np.float64, needs_gradient=True)
    f = C.times_transpose(C.parameter((4, 3), init=W, dtype=np.float64), h)
    assert f.shape == (4, 1)
    H = rng.randn(2, 3)
    np.testing.assert_allclose(f.eval({h: H}), (H @ W.T)[:, :, None], rtol=1e-12)
    # float64 finite differences of sum(f * R) with respect to h
    R = rng.randn(2, 4, 1)
    g = C.reduce_sum(f * C.constant(R[0]))
    analytic = g.grad({h: H[:1]}, wrt=[h])
    eps = 1e-6
    numeric = np.array([(g.eval({h: H[:1] + eps * e}) - g.eval({h: H[:1] - eps * e})).item() / (2 * eps)
                        for e in np.eye(3)])
    np.testing.assert_allclose(np.asarray(analytic).ravel(), numeric, rtol=1e-6)
    # both operands per-sample vectors: a dot product of shape (1,)
    u = C.input_variable(3, dtype=np.float64)
    U = rng.randn(2, 3)
    d = C.times_transpose(u, h)
    assert d.shape == (1,)
    np.testing.assert_allclose(d.eval({u: U, h: H}), (U * H).sum(1, keepdims=True), rtol=1e-12)
    # sparse left with a static rank-1 right
    t = C.input_variable(4, is_sparse=True)
    lp = C.constant(np.arange(4, dtype=np.float32))
    s = C.times_transpose(t, lp)
    assert s.shape == (1,)
    onehot = C.Value.one_hot([[2], [0]], 4)
    np.testing.assert_allclose(np.asarray(s.eval({t: onehot})).reshape(-1), [2.0, 0.0])
