"""The Function object (spec §2): arguments, invocation, differentiation, graph surgery,
operators, properties and parameters."""

import numpy as np
import pytest

import cntk as C
from cntk.ops.functions import Function, CloneMethod


def f32(*a):
    return np.asarray(a[0] if len(a) == 1 else a, dtype=np.float32)


def rnd(*shape, seed=0, dtype=np.float32):
    return np.random.RandomState(seed).randn(*shape).astype(dtype)


# -- arguments -----------------------------------------------------------------------------

def test_arguments_order_is_stable_and_positional():
    x = C.input_variable(2, name="x")
    y = C.input_variable(2, name="y")
    z = C.input_variable(2, name="z")
    f = (x - y) * 2 + z
    assert f.arguments == [x, y, z]
    # the same order every time it is asked
    assert [a.uid for a in f.arguments] == [a.uid for a in f.arguments]
    assert f.signature == f.arguments
    a, b, c = f32([[1, 2]]), f32([[10, 20]]), f32([[100, 200]])
    np.testing.assert_allclose(f(a, b, c), (a - b) * 2 + c)
    # keyword arguments bind by name
    np.testing.assert_allclose(f(c, z=a, y=b), (c - b) * 2 + a)


def test_call_with_too_many_args_or_unknown_keyword_raises():
    x = C.input_variable(2, name="x")
    f = x * 2
    with pytest.raises(TypeError):
        f(f32([[1, 2]]), f32([[1, 2]]))
    with pytest.raises(TypeError, match="nope"):
        f(nope=f32([[1, 2]]))


def test_symbolic_call_is_clone_share_with_substitution():
    x = C.input_variable(3, name="x")
    W = C.parameter((3, 2), init=rnd(3, 2), name="W")
    f = C.times(x, W, name="t")
    z = C.input_variable(3, name="z")
    g = f(z)
    assert isinstance(g, Function)
    assert g.arguments == [z]
    # the parameter is shared, not copied
    assert g.parameters == [W]
    data = rnd(4, 3, seed=1)
    np.testing.assert_allclose(g.eval({z: data}), data @ W.value, rtol=1e-5)
    W.value = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(g.eval({z: data}), data @ np.ones((3, 2)), rtol=1e-5)
    np.testing.assert_allclose(f.eval({x: data}), data @ np.ones((3, 2)), rtol=1e-5)
    # the original is untouched
    assert f.arguments == [x]


def test_symbolic_call_with_function_argument_composes():
    x = C.input_variable(2, name="x")
    f = C.square(x)
    g = C.exp(x)
    h = f(g)
    assert h.arguments == [x]
    d = f32([[0.5, -1.0]])
    np.testing.assert_allclose(h.eval(d), np.exp(d) ** 2, rtol=1e-5)


def test_numeric_call_returns_array_or_tuple():
    x = C.input_variable(2, name="x")
    f = x + 1
    r = f(f32([[1, 2], [3, 4]]))
    assert isinstance(r, np.ndarray)
    np.testing.assert_allclose(r, [[2, 3], [4, 5]])
    m = C.combine([x + 1, x * 3])
    r = m(f32([[1, 2]]))
    assert isinstance(r, tuple) and len(r) == 2
    np.testing.assert_allclose(r[0], [[2, 3]])
    np.testing.assert_allclose(r[1], [[3, 6]])


# -- eval -------------------------------------------------------------------------------------

def test_eval_keyed_by_variable_name_and_bare():
    x = C.input_variable(2, name="x")
    y = C.input_variable(2, name="y")
    f = x * y
    a, b = f32([[1, 2]]), f32([[3, 4]])
    np.testing.assert_allclose(f.eval({x: a, y: b}), a * b)
    np.testing.assert_allclose(f.eval({"x": a, "y": b}), a * b)
    np.testing.assert_allclose(f.eval({"x": a, y: b}), a * b)
    g = C.sqrt(x)
    np.testing.assert_allclose(g.eval(f32([[4, 9]])), [[2, 3]])
    # a list of samples for a non-sequence input
    np.testing.assert_allclose(g.eval([f32(4, 9), f32(16, 25)]), [[2, 3], [4, 5]])


def test_eval_outputs_selection_and_multi_output_dict():
    x = C.input_variable(2, name="x")
    a = C.plus(x, 1, name="a")
    b = C.element_times(x, 2, name="b")
    m = C.combine([a, b])
    d = f32([[1, 2]])
    r = m.eval({x: d})
    assert isinstance(r, dict) and set(r.keys()) == {a.output, b.output}
    np.testing.assert_allclose(r[a.output], d + 1)
    np.testing.assert_allclose(r[b.output], d * 2)
    # select one output: comes back bare
    r1 = m.eval({x: d}, outputs=[b.output])
    np.testing.assert_allclose(r1, d * 2)
    # intermediate node of a graph
    f = C.square(a)
    r2 = f.eval({x: d}, outputs=[a.output, f.output])
    np.testing.assert_allclose(r2[a.output], d + 1)
    np.testing.assert_allclose(r2[f.output], (d + 1) ** 2)


def test_eval_without_arguments_for_constant_graph():
    c = C.constant(f32(1, 2, 3))
    f = c * 2
    np.testing.assert_allclose(f.eval(), [2, 4, 6])


# -- forward / backward ----------------------------------------------------------------------

def test_forward_backward_with_root_gradients():
    x = C.input_variable(3, needs_gradient=True, name="x")
    W = C.parameter((3, 2), init=rnd(3, 2), name="W")
    t = C.times(x, W)
    f = C.tanh(t)
    d = rnd(4, 3, seed=2)
    state, out = f.forward({x: d}, [f.output], keep_for_backward=[f.output])
    ref = np.tanh(d @ W.value)
    np.testing.assert_allclose(out[f.output], ref, rtol=1e-5)
    rg = rnd(4, 2, seed=3)
    grads = f.backward(state, {f.output: rg}, variables={W, x})
    dt = rg * (1 - ref ** 2)
    np.testing.assert_allclose(grads[W], d.T @ dt, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[x], dt @ W.value.T, rtol=1e-4, atol=1e-5)


def test_forward_without_keep_returns_no_state():
    x = C.input_variable(3, name="x")
    f = x * 2
    state, out = f.forward({x: f32([[1, 2, 3]])})
    assert state is None
    np.testing.assert_allclose(out[f.output], [[2, 4, 6]])
    with pytest.raises(ValueError):
        f.backward(state, {f.output: f32([[1, 1, 1]])}, variables={x})


def test_backward_rejects_output_not_kept():
    x = C.input_variable(3, needs_gradient=True, name="x")
    a = C.square(x, name="a")
    f = C.combine([a, C.exp(x)])
    state, _ = f.forward({x: f32([[1, 2, 3]])}, f.outputs, keep_for_backward=[a.output])
    with pytest.raises(ValueError):
        f.backward(state, {f.outputs[1]: f32([[1, 1, 1]])}, variables={x})


# -- grad ---------------------------------------------------------------------------------------

def test_grad_default_wrt_arguments_needing_gradient():
    x = C.input_variable(3, needs_gradient=True, name="x")
    y = C.input_variable(3, name="y")
    f = C.reduce_sum(x * x * y)
    d, e = rnd(2, 3), rnd(2, 3, seed=1)
    g = f.grad({x: d, y: e})
    assert isinstance(g, np.ndarray)   # single wrt: bare array
    np.testing.assert_allclose(g, 2 * d * e, rtol=1e-5)


def test_grad_no_argument_needs_gradient_raises():
    x = C.input_variable(3, name="x")
    f = C.reduce_sum(x * x)
    with pytest.raises(ValueError):
        f.grad({x: rnd(2, 3)})


def test_grad_wrt_list_and_outputs():
    x = C.input_variable(3, needs_gradient=True, name="x")
    W = C.parameter((3, 2), init=rnd(3, 2), name="W")
    f = C.reduce_sum(C.times(x, W))
    d = rnd(5, 3)
    g = f.grad({x: d}, wrt=[W, x])
    assert isinstance(g, dict) and set(g) == {W, x}
    np.testing.assert_allclose(g[W], np.tile(d.sum(0)[:, None], (1, 2)), rtol=1e-5)
    np.testing.assert_allclose(g[x], np.tile(W.value.sum(1), (5, 1)), rtol=1e-5)
    gw = f.grad({x: d}, wrt=[W])
    assert isinstance(gw, np.ndarray)
    gw2 = f.grad({x: d}, wrt=W)
    np.testing.assert_allclose(gw, gw2)
    # with outputs=: (grads, outputs); a single requested output comes back bare (as CNTK)
    grads, out = f.grad({x: d}, wrt=[W], outputs=[f.output])
    np.testing.assert_allclose(grads, gw)
    # reduce_sum over all static axes gives shape () per sample (spec §14)
    np.testing.assert_allclose(out, (d @ W.value).sum(1), rtol=1e-5)
    t = f.root_function.inputs[0]     # the Times output, an intermediate node
    grads, outs = f.grad({x: d}, wrt=[W, x], outputs=[f.output, t])
    assert set(grads) == {W, x} and set(outs) == {f.output, t}
    np.testing.assert_allclose(outs[t], d @ W.value, rtol=1e-5)


def test_grad_with_grad_root():
    x = C.input_variable(2, needs_gradient=True, name="x")
    a = C.square(x, name="a")
    b = C.exp(x, name="b")
    m = C.combine([a, b])
    d = f32([[0.5, 1.0]])
    g = m.grad({x: d}, wrt=[x], grad_root=a.output)
    np.testing.assert_allclose(g, 2 * d, rtol=1e-5)


def test_grad_of_sequence_output_per_element():
    x = C.sequence.input_variable(2, needs_gradient=True, name="x")
    f = C.square(x)
    seqs = [rnd(3, 2), rnd(1, 2, seed=1)]
    g = f.grad({x: seqs}, wrt=[x])
    assert isinstance(g, list) and [s.shape for s in g] == [(3, 2), (1, 2)]
    for gi, si in zip(g, seqs):
        np.testing.assert_allclose(gi, 2 * si, rtol=1e-5)


# -- clone ----------------------------------------------------------------------------------------

def _dense_model():
    x = C.input_variable(3, name="x")
    W = C.parameter((3, 2), init=rnd(3, 2), name="W")
    b = C.parameter(2, init=f32(0.5, -0.5), name="b")
    return x, W, b, C.plus(C.times(x, W), b, name="out")


def test_clone_clone_copies_parameters():
    x, W, b, f = _dense_model()
    g = f.clone(CloneMethod.clone)
    assert len(g.parameters) == 2
    assert all(p not in (W, b) for p in g.parameters)
    assert g.arguments == [x]   # inputs are kept
    d = rnd(2, 3)
    np.testing.assert_allclose(g.eval({x: d}), f.eval({x: d}), rtol=1e-6)
    W.value = np.zeros((3, 2), np.float32)
    np.testing.assert_allclose(f.eval({x: d}), np.tile(b.value, (2, 1)))
    assert np.abs(g.eval({x: d}) - f.eval({x: d})).max() > 1e-3
    # names survive
    assert sorted(p.name for p in g.parameters) == ["W", "b"]
    assert g.find_by_name("out") is not None


def test_clone_share_shares_parameters():
    x, W, b, f = _dense_model()
    g = f.clone(CloneMethod.share)
    assert set(g.parameters) == {W, b}
    d = rnd(2, 3)
    W.value = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(g.eval({x: d}), d @ np.ones((3, 2)) + b.value, rtol=1e-5)


def test_clone_freeze_turns_parameters_into_constants():
    x, W, b, f = _dense_model()
    d = rnd(2, 3)
    before = f.eval({x: d})
    g = f.clone(CloneMethod.freeze)
    assert g.parameters == []
    assert len(g.constants) == 2
    assert all(c.is_constant and not c.is_parameter for c in g.constants)
    np.testing.assert_allclose(g.eval({x: d}), before, rtol=1e-6)
    values = {c.name: c.value for c in g.constants}
    np.testing.assert_allclose(values["W"], W.value)
    np.testing.assert_allclose(values["b"], b.value)
    # changing the original parameter does not affect the frozen copy
    W.value = np.zeros((3, 2), np.float32)
    np.testing.assert_allclose(g.eval({x: d}), before, rtol=1e-6)
    # string method name works too
    assert f.clone("freeze").parameters == []


def test_clone_with_substitutions():
    x, W, b, f = _dense_model()
    y = C.input_variable(3, name="y")
    g = f.clone(CloneMethod.share, {x: y})
    assert g.arguments == [y]
    d = rnd(2, 3)
    np.testing.assert_allclose(g.eval({y: d}), f.eval({x: d}), rtol=1e-6)
    # substitute an inner node with a function (transfer learning style: freeze + substitutions)
    t = f.find_by_name("out")
    h = C.relu(t)
    z = C.input_variable(2, name="z")
    k = h.clone(CloneMethod.freeze, {t.output: z})
    assert k.arguments == [z]
    assert k.parameters == []
    np.testing.assert_allclose(k.eval({z: f32([[-1, 2]])}), [[0, 2]])


def test_clone_freeze_then_substitution_with_feature_node():
    x, W, b, f = _dense_model()
    feat = C.times(x, W, name="feat")
    head = C.parameter((2, 1), init=1.0, name="head")
    model = C.times(C.relu(feat), head, name="model")
    new_in = C.input_variable(3, name="new_in")
    frozen = C.combine([feat]).clone(CloneMethod.freeze, {x: new_in})
    new_model = C.times(frozen, C.parameter((2, 1), init=2.0, name="new_head"))
    assert [p.name for p in new_model.parameters] == ["new_head"]
    d = rnd(3, 3)
    np.testing.assert_allclose(new_model.eval({new_in: d}), (d @ W.value) @ np.full((2, 1), 2.0), rtol=1e-5)
    assert len(model.parameters) == 2


# -- placeholders ----------------------------------------------------------------------------------

def test_replace_placeholders_in_place():
    p = C.placeholder(name="p")
    f = C.square(p) + 1
    assert f.placeholders == [p]
    assert f.arguments == [p]
    x = C.input_variable(2, name="x")
    r = f.replace_placeholders({p: x})
    assert r is f
    assert f.placeholders == []
    assert f.arguments == [x]
    assert f.shape == (2,)
    np.testing.assert_allclose(f.eval({x: f32([[1, 2]])}), [[2, 5]])


def test_replace_placeholder_single():
    p = C.placeholder()
    f = C.exp(p)
    x = C.input_variable(1, name="x")
    assert f.replace_placeholder(x) is f
    np.testing.assert_allclose(f.eval({x: f32([[0.0]])}), [[1.0]])
    q1, q2 = C.placeholder(), C.placeholder()
    g = q1 + q2
    with pytest.raises(ValueError):
        g.replace_placeholder(x)


def test_call_binds_placeholders_without_modifying_original():
    p = C.placeholder(name="p")
    W = C.parameter((2, 2), init=np.eye(2, dtype=np.float32) * 3, name="W")
    f = C.times(p, W)
    x = C.input_variable(2, name="x")
    g = f(x)
    assert f.placeholders == [p]
    assert g.placeholders == []
    assert g.parameters == [W]
    np.testing.assert_allclose(g.eval({x: f32([[1, 2]])}), [[3, 6]])


def test_unbound_placeholder_eval_raises():
    p = C.placeholder(name="p")
    x = C.input_variable(2, name="x")
    f = p + x
    with pytest.raises(ValueError):
        f.eval({x: f32([[1, 2]])})


# -- find_by_name ------------------------------------------------------------------------------

def _block_model():
    x = C.input_variable(2, name="x")
    ph = C.placeholder(name="ph")
    W = C.parameter((2, 2), init=np.eye(2, dtype=np.float32), name="W")
    inner = C.relu(C.times(ph, W, name="inner_times"), name="inner_relu")
    blk = C.as_block(inner, [(ph, x)], "MyDense", "dense1")
    out = C.plus(blk, 1.0, name="top")
    return x, W, inner, blk, out


def test_find_by_name_and_depth():
    x, W, inner, blk, out = _block_model()
    assert out.find_by_name("top") is not None
    assert out.find_by_name("top").root_function.op_name == "Plus"
    assert out.find_by_name("dense1") is not None
    assert out.find_by_name("dense1").is_block
    # inside the block only with depth >= 1 (or -1)
    assert out.find_by_name("inner_times") is None
    assert out.find_by_name("inner_times", depth=1) is not None
    assert out.find_by_name("inner_times", depth=-1) is not None
    assert out.find_by_name("W", depth=1) is W
    assert out.find_by_name("nothing") is None
    # leaves can be found by name too
    assert out.find_by_name("x") is x


def test_find_all_with_name_and_ambiguity():
    x = C.input_variable(2, name="x")
    a = C.square(x, name="dup")
    b = C.exp(a, name="dup")
    c = C.plus(b, 1, name="c")
    found = c.find_all_with_name("dup")
    assert len(found) == 2
    with pytest.raises(Exception):
        c.find_by_name("dup")
    assert c.find_all_with_name("none") == []


def test_named_node_attribute_access():
    x, W, inner, blk, out = _block_model()
    assert out.W is W          # inside the block, depth 1
    assert out.dense1.is_block
    assert out.top.root_function.op_name == "Plus"
    # fall back to attributes of the single output
    assert out.shape == (2,)
    with pytest.raises(AttributeError):
        out.no_such_thing


# -- combine / alias ---------------------------------------------------------------------------

def test_combine_duplicate_raises_and_alias_fixes():
    x = C.input_variable(2, name="x")
    a = C.square(x)
    with pytest.raises(ValueError):
        C.combine([a, a])
    m = C.combine([a, C.alias(a, name="a2")])
    assert len(m.outputs) == 2
    r = m.eval({x: f32([[2, 3]])})
    vals = list(r.values())
    np.testing.assert_allclose(vals[0], vals[1])
    np.testing.assert_allclose(vals[0], [[4, 9]])


def test_combine_of_variables_and_functions():
    x = C.input_variable(2, name="x")
    y = C.input_variable(2, name="y")
    m = C.combine(x * 2, y)
    assert len(m.outputs) == 2
    assert m.outputs[1] is y
    assert m[1].output is y
    with pytest.raises(Exception):
        m.output


# -- blocks -----------------------------------------------------------------------------------------

def test_as_block_properties():
    x, W, inner, blk, out = _block_model()
    assert blk.is_block
    assert blk.op_name == "MyDense"
    assert blk.name == "dense1"
    assert blk.block_root.op_name == "ReLU"
    mapping = blk.block_arguments_mapping
    assert len(mapping) == 1 and mapping[0][1] is x and mapping[0][0].is_placeholder
    assert blk.arguments == [x]
    assert blk.parameters == [W]
    assert not out.is_block
    with pytest.raises(Exception):
        out.block_root
    d = f32([[1, -2]])
    np.testing.assert_allclose(blk.eval({x: d}), [[1, 0]])
    np.testing.assert_allclose(out.eval({x: d}), [[2, 1]])


def test_as_block_unmapped_placeholder_raises():
    ph = C.placeholder()
    ph2 = C.placeholder()
    x = C.input_variable(2)
    with pytest.raises(ValueError):
        C.as_block(ph + ph2, [(ph, x)], "Bad")


def test_as_composite_and_primitive():
    x = C.input_variable(2, name="x")
    f = C.square(C.exp(x), name="sq")
    root = f.root_function
    assert root.op_name == "Square"
    assert root.is_primitive and not f.is_primitive
    assert f.is_composite
    comp = C.as_composite(root, name="again")
    np.testing.assert_allclose(comp.eval({x: f32([[0, 0]])}), [[1, 1]])
    assert root.inputs[0].owner.op_name == "Exp"


def test_block_can_be_called_again_symbolically():
    x, W, inner, blk, out = _block_model()
    z = C.input_variable(2, name="z")
    g = out(z)
    assert g.parameters == [W]
    np.testing.assert_allclose(g.eval({z: f32([[3, -1]])}), [[4, 1]])
    assert g.find_by_name("dense1").is_block


def test_block_clone_keeps_block_and_copies_inner_params():
    x, W, inner, blk, out = _block_model()
    g = out.clone(CloneMethod.clone)
    b2 = g.find_by_name("dense1")
    assert b2.is_block and b2.op_name == "MyDense"
    (W2,) = g.parameters
    assert W2 is not W
    W2.value = np.eye(2, dtype=np.float32) * 2
    np.testing.assert_allclose(g.eval({x: f32([[1, 1]])}), [[3, 3]])
    np.testing.assert_allclose(out.eval({x: f32([[1, 1]])}), [[2, 2]])


# -- >> and << -------------------------------------------------------------------------------------

def test_forward_composition_operators():
    x = C.input_variable(2, name="x")
    f = C.square(C.placeholder())
    g = C.exp(C.placeholder())
    h = f >> g
    h2 = g << f
    d = f32([[1, 2]])
    h_bound = h(x)
    np.testing.assert_allclose(h_bound.eval({x: d}), np.exp(d ** 2), rtol=1e-5)
    np.testing.assert_allclose(h2(x).eval({x: d}), np.exp(d ** 2), rtol=1e-5)
    np.testing.assert_allclose((x >> g).eval({x: d}), np.exp(d), rtol=1e-5) if hasattr(x, "__rshift__") else None
    k = f(x) >> g
    np.testing.assert_allclose(k.eval({x: d}), np.exp(d ** 2), rtol=1e-5)


# -- operators -----------------------------------------------------------------------------------

def test_operator_overloads_on_variables_and_functions():
    x = C.input_variable(3, name="x")
    y = C.input_variable(3, name="y")
    a, b = rnd(2, 3), rnd(2, 3, seed=1) + 3
    fx = C.alias(x)
    for expr, ref in [
        (x + y, a + b), (x - y, a - b), (x * y, a * b), (x / y, a / b),
        (fx + y, a + b), (fx - 1, a - 1), (2 * fx, 2 * a), (1 / y, 1 / b), (1 - fx, 1 - a),
        (-x, -a), (-fx, -a), (abs(x), np.abs(a)), (abs(fx), np.abs(a)), (x + 2.5, a + 2.5),
    ]:
        np.testing.assert_allclose(expr.eval({v: d for v, d in ((x, a), (y, b)) if v in expr.arguments}),
                                   ref, rtol=1e-5, atol=1e-6)


def test_operator_matmul_and_getitem():
    x = C.input_variable(3, name="x")
    W = C.parameter((3, 4), init=rnd(3, 4))
    a = rnd(2, 3)
    np.testing.assert_allclose((x @ W).eval({x: a}), a @ W.value, rtol=1e-5)
    np.testing.assert_allclose((C.alias(x) @ W).eval({x: a}), a @ W.value, rtol=1e-5)
    # CNTK keeps the indexed axis with size 1
    r = x[1].eval({x: a})
    assert r.shape == (2, 1)
    np.testing.assert_allclose(r, a[:, 1:2])
    np.testing.assert_allclose(x[0:2].eval({x: a}), a[:, 0:2])
    np.testing.assert_allclose(C.alias(x)[1:].eval({x: a}), a[:, 1:])


def test_star_is_elementwise_not_matmul():
    x = C.input_variable((2, 2), name="x")
    c = C.constant(np.array([[1, 2], [3, 4]], np.float32))
    a = np.array([[[1, 1], [1, 1]]], np.float32)
    np.testing.assert_allclose((x * c).eval({x: a}), a * c.value)


# -- properties ------------------------------------------------------------------------------------

def test_function_collections():
    x = C.input_variable(2, name="x")
    W = C.parameter((2, 2), init=1.0, name="W")
    k = C.constant(3.0, shape=(2,), name="k")
    p = C.placeholder(name="p")
    f = C.times(x, W) * k + p
    assert f.parameters == [W]
    assert f.constants == [k]
    assert f.placeholders == [p]
    assert set(f.arguments) == {x, p}
    ins = f.inputs
    for v in (x, W, k, p):
        assert v in ins
    # a primitive's inputs are its direct operands
    root = f.root_function
    assert len(root.inputs) == 2
    assert root.inputs[1] is p


def test_function_name_uid_and_output_forwarding():
    x = C.input_variable(2, name="x")
    f = C.tanh(x, name="th")
    assert f.name == "th"
    f.name = "renamed"
    assert f.name == "renamed"
    assert isinstance(f.uid, str) and f.uid
    assert f.output.owner.op_name == "Tanh"
    assert f.shape == (2,)
    assert f.dtype == np.float32
    assert f.output.dynamic_axes == (C.Axis.default_batch_axis(),)


def test_parameter_value_get_set():
    W = C.parameter((2, 3), init=2.0, name="W")
    np.testing.assert_allclose(W.value, np.full((2, 3), 2.0))
    W.value = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(W.value, np.arange(6).reshape(2, 3))
    # value is a copy: modifying it does not change the parameter
    v = W.value
    v[:] = 100
    np.testing.assert_allclose(W.value, np.arange(6).reshape(2, 3))
    with pytest.raises(ValueError):
        W.value = np.zeros((4, 4), np.float32)
    assert W.shape == (2, 3) and W.name == "W" and W.is_parameter
    assert W.uid.startswith("Parameter")
    P = C.parameter(init=np.arange(4, dtype=np.float32).reshape(2, 2))
    assert P.shape == (2, 2)
    np.testing.assert_allclose(P.value, np.arange(4).reshape(2, 2))
    assert C.Parameter((2,)).value.tolist() == [0, 0]


def test_parameter_initializer():
    W = C.parameter((20, 30), init=C.glorot_uniform(seed=1))
    v = W.value
    assert v.shape == (20, 30) and np.abs(v).max() > 0
    lim = np.sqrt(6.0 / (20 + 30))
    assert np.abs(v).max() <= lim + 1e-6


def test_constant():
    c = C.constant(2.0, shape=(2, 3), name="c")
    assert c.is_constant and not c.is_parameter and c.shape == (2, 3)
    np.testing.assert_allclose(c.value, np.full((2, 3), 2.0))
    c2 = C.constant(np.array([1, 2, 3], np.float32))
    assert c2.shape == (3,)
    c3 = C.Constant(5.0)
    assert c3.shape == ()
    np.testing.assert_allclose(c3.value, 5.0)
    x = C.input_variable(3, name="x")
    f = x * c2
    assert f.constants == [c2]
    np.testing.assert_allclose(f.eval({x: f32([[1, 1, 1]])}), [[1, 2, 3]])


def test_constant_has_no_gradient():
    x = C.input_variable(2, needs_gradient=True, name="x")
    c = C.constant(np.array([1, 2], np.float32))
    f = C.reduce_sum(x * c)
    assert not c.needs_gradient
    st, _ = f.forward({x: f32([[1, 1]])}, keep_for_backward=[f.output])
    with pytest.raises(ValueError):
        f.backward(st, {f.output: f32([[1]])}, variables={c})


def test_inferred_parameter_times():
    x = C.input_variable(5, name="x")
    W = C.parameter((C.InferredDimension, 3), init=C.glorot_uniform(seed=3))
    f = C.times(x, W)
    assert W.shape == (5, 3)
    assert f.shape == (3,)
    d = rnd(2, 5)
    np.testing.assert_allclose(f.eval({x: d}), d @ W.value, rtol=1e-5)


def test_inferred_parameter_times_through_placeholder():
    p = C.placeholder()
    W = C.parameter((-1, 3), init=1.0, name="W")
    f = C.times(p, W)
    x = C.input_variable(4, name="x")
    g = f(x)
    assert W.shape == (4, 3)
    np.testing.assert_allclose(g.eval({x: np.ones((1, 4), np.float32)}), [[4, 4, 4]])


def test_inferred_parameter_plus():
    x = C.input_variable((2, 3), name="x")
    b = C.parameter(C.InferredDimension, init=0.5)
    f = x + b
    assert b.shape == (3,)
    np.testing.assert_allclose(f.eval({x: np.zeros((1, 2, 3), np.float32)}), np.full((1, 2, 3), 0.5))


def test_variable_properties():
    x = C.input_variable((2, 3), name="x", needs_gradient=True)
    assert x.shape == (2, 3)
    assert x.dtype == np.float32
    assert x.dynamic_axes == (C.Axis.default_batch_axis(),)
    assert not x.is_sparse
    assert x.needs_gradient
    assert x.name == "x"
    assert isinstance(x.uid, str) and x.uid
    assert x.owner is None
    assert x.is_input and not x.is_output and not x.is_parameter and not x.is_constant and not x.is_placeholder
    s = C.sequence.input_variable(4, is_sparse=True, name="s")
    assert s.is_sparse
    assert s.dynamic_axes == (C.Axis.default_batch_axis(), C.Axis.default_dynamic_axis())
    f = C.relu(x)
    o = f.output
    assert o.is_output and not o.is_input
    assert o.owner is not None and o.owner.op_name == "ReLU"
    assert o.shape == (2, 3)
    p = C.placeholder(name="p")
    assert p.is_placeholder and not p.is_input
    W = C.parameter(2)
    assert W.is_parameter and W.needs_gradient and W.dynamic_axes == ()
    c = C.constant(1.0)
    assert c.is_constant and not c.needs_gradient
    assert x.uid != s.uid != W.uid
    assert W.as_parameter() is W
    with pytest.raises(Exception):
        x.as_parameter()


def test_variables_are_hashable_and_distinct():
    a = C.input_variable(2, name="same")
    b = C.input_variable(2, name="same")
    assert a != b and len({a, b}) == 2


# -- dtypes -----------------------------------------------------------------------------------------

def test_float64_model():
    x = C.input_variable(3, dtype=np.float64, needs_gradient=True, name="x")
    W = C.parameter((3, 2), init=rnd(3, 2, dtype=np.float64), dtype=np.float64)
    f = C.tanh(C.times(x, W))
    assert f.dtype == np.float64
    d = rnd(2, 3, dtype=np.float64)
    r = f.eval({x: d})
    assert r.dtype == np.float64
    np.testing.assert_allclose(r, np.tanh(d @ W.value), rtol=1e-12)
    g = f.grad({x: d}, wrt=[W])
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, d.T @ (1 - np.tanh(d @ W.value) ** 2), rtol=1e-10)


def test_float64_constants_adopt_dtype():
    x = C.input_variable(2, dtype=np.float64, name="x")
    f = x * 2 + 1
    r = f.eval({x: np.array([[1.0, 2.0]])})
    assert r.dtype == np.float64
    b = C.parameter(2, init=0.25)    # no explicit dtype: follows the computation
    g = x + b
    assert g.eval({x: np.array([[1.0, 2.0]])}).dtype == np.float64


def test_float16_model():
    x = C.input_variable(3, dtype=np.float16, name="x")
    W = C.parameter((3, 2), init=np.ones((3, 2), np.float16), dtype=np.float16)
    f = C.times(x, W) + 1
    assert f.dtype == np.float16
    r = f.eval({x: np.ones((2, 3), np.float16)})
    assert r.dtype == np.float16
    np.testing.assert_allclose(r.astype(np.float32), np.full((2, 2), 4.0))


def test_mixed_explicit_dtypes_raise():
    x = C.input_variable(2, dtype=np.float64)
    y = C.input_variable(2, dtype=np.float32)
    with pytest.raises(ValueError):
        x + y


# -- misc ---------------------------------------------------------------------------------------------

def test_argument_map():
    x = C.input_variable(2, name="x")
    y = C.input_variable(2, name="y")
    f = x + y
    m = f.argument_map(1, y=2)
    assert m == {x: 1, y: 2}


def test_multi_output_function_indexing_and_call():
    x = C.input_variable(2, name="x")
    m = C.combine([C.square(x), C.exp(x)])
    first = m[0]
    assert first.output is m.outputs[0]
    d = f32([[1, 2]])
    np.testing.assert_allclose(first.eval({x: d}), d ** 2)


def test_function_used_as_operand_multiple_times():
    x = C.input_variable(2, name="x")
    h = C.square(x)
    f = h + h * h
    d = f32([[1, 2]])
    np.testing.assert_allclose(f.eval({x: d}), d ** 2 + d ** 4)


def test_grad_accumulates_over_shared_parameter_uses():
    x = C.input_variable(2, name="x")
    W = C.parameter((2, 2), init=np.eye(2, dtype=np.float32))
    f = C.reduce_sum(C.times(C.times(x, W), W))
    d = f32([[1, 2]])
    g = f.grad({x: d}, wrt=[W])
    # numeric check
    eps = 1e-3
    num = np.zeros((2, 2))
    W0 = W.value.copy()
    for i in range(2):
        for j in range(2):
            Wp = W0.copy(); Wp[i, j] += eps
            Wm = W0.copy(); Wm[i, j] -= eps
            num[i, j] = ((d @ Wp @ Wp).sum() - (d @ Wm @ Wm).sum()) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-3)


def test_combine_is_its_own_node():
    x = C.input_variable(2, name="x")
    a = C.square(x, name="a")
    b = C.exp(x, name="b")
    m = C.combine([a, b], name="both")
    assert m.op_name == "Combine"
    assert m.name == "both"
    assert not m.is_block
    # renaming the combine does not rename the first operand
    m.name = "renamed"
    assert m.name == "renamed" and a.name == "a"
    assert C.combine([a, b]).uid != C.combine([a, b]).uid or True
    assert isinstance(m.uid, str) and m.uid != a.uid


def test_rshift_with_tuple_and_multi_output():
    x = C.input_variable(2, name="x")
    sq = C.square(C.placeholder())
    ex = C.exp(C.placeholder())
    both = C.alias(x) >> (sq, ex)
    assert len(both.outputs) == 2
    d = f32([[1, 2]])
    r = both.eval({x: d})
    np.testing.assert_allclose(r[both.outputs[0]], d ** 2, rtol=1e-6)
    np.testing.assert_allclose(r[both.outputs[1]], np.exp(d), rtol=1e-6)
    # a multi-output function feeds a two-argument function positionally
    p, q = C.placeholder(name="p"), C.placeholder(name="q")
    diff = p - q
    out = both >> diff
    np.testing.assert_allclose(out.eval({x: d}), d ** 2 - np.exp(d), rtol=1e-6)
    # a tuple of the same length as the outputs maps output i to member i
    pair = both >> (C.negate(C.placeholder()), C.log(C.placeholder()))
    r = pair.eval({x: d})
    np.testing.assert_allclose(r[pair.outputs[0]], -d ** 2, rtol=1e-6)
    np.testing.assert_allclose(r[pair.outputs[1]], d, rtol=1e-6)


def test_partial_call_raises():
    x = C.input_variable(2, name="x")
    y = C.input_variable(2, name="y")
    f = x * y
    z = C.input_variable(2, name="z")
    with pytest.raises(TypeError, match="y"):
        f(z)
    with pytest.raises(TypeError):
        f(f32([[1, 2]]))


def test_update_signature_and_types():
    p = C.placeholder(name="a")
    q = C.placeholder(name="b")
    f = C.times(p, C.parameter((3, 2), init=1.0)) + q
    f.update_signature(3, (2,))
    assert [a.name for a in f.arguments] == ["a", "b"]
    assert all(a.is_input for a in f.arguments)
    assert f.arguments[0].shape == (3,)
    np.testing.assert_allclose(f(f32([[1, 1, 1]]), f32([[1, 2]])), [[4, 5]])
    x = C.sequence.input_variable(4, dtype=np.float64, needs_gradient=True, name="x")
    t = x.type
    assert t.shape == (4,) and t.dtype == np.float64 and t.needs_gradient and not t.is_sparse
    assert t.dynamic_axes == x.dynamic_axes
    g = C.tanh(C.placeholder(name="s"))
    g.update_signature(t)
    assert g.arguments[0].dtype == np.float64
    assert g.arguments[0].dynamic_axes == x.dynamic_axes
    assert g.type.shape == (4,)
    with pytest.raises(TypeError):
        (x * 2).update_signature(4)


def test_custom_attributes():
    x = C.input_variable(2, name="x")
    f = C.relu(x)
    assert f.custom_attributes == {}
    f.custom_attributes = {"author": "me", "version": 2}
    assert f.custom_attributes["version"] == 2
    f.custom_attributes["k"] = "v"
    assert f.root_function.custom_attributes["k"] == "v"


def test_numpy_on_the_left_builds_graph():
    x = C.input_variable(2, name="x")
    c = np.array([1.0, 2.0], np.float32)
    for expr, ref in [(c * x, lambda d: c * d), (c + x, lambda d: c + d), (c - C.alias(x), lambda d: c - d),
                      (np.float32(2) * x, lambda d: 2 * d)]:
        assert isinstance(expr, Function)
        d = f32([[3, 4]])
        np.testing.assert_allclose(expr.eval({x: d}), ref(d))


def test_keep_for_backward_subset_of_outputs():
    x = C.input_variable(2, needs_gradient=True, name="x")
    a = C.square(x, name="a")
    b = C.exp(x, name="b")
    m = C.combine([a, b])
    d = f32([[1, 2]])
    state, out = m.forward({x: d}, m.outputs, keep_for_backward={a.output, b.output})
    ga = m.backward(state, {a.output: f32([[1, 1]])}, {x})[x]
    gb = m.backward(state, {b.output: f32([[1, 1]])}, {x})[x]
    gab = m.backward(state, {a.output: f32([[1, 1]]), b.output: f32([[1, 1]])}, {x})[x]
    np.testing.assert_allclose(ga, 2 * d, rtol=1e-6)
    np.testing.assert_allclose(gb, np.exp(d), rtol=1e-6)
    np.testing.assert_allclose(gab, 2 * d + np.exp(d), rtol=1e-6)


def test_forward_outputs_intermediate_node():
    x = C.input_variable(2, needs_gradient=True, name="x")
    a = C.square(x, name="a")
    f = C.exp(a)
    d = f32([[1, 2]])
    state, out = f.forward({x: d}, [a.output, f.output], keep_for_backward=[a.output])
    np.testing.assert_allclose(out[a.output], d ** 2)
    np.testing.assert_allclose(out[f.output], np.exp(d ** 2), rtol=1e-6)
    g = f.backward(state, {a.output: f32([[1, 1]])}, {x})
    np.testing.assert_allclose(g[x], 2 * d)


def test_parameter_gradient_via_backward():
    x = C.input_variable(2, name="x")
    W = C.parameter((2, 3), init=rnd(2, 3), name="W")
    f = C.times(x, W)
    d = rnd(4, 2, seed=5)
    state, _ = f.forward({x: d}, keep_for_backward=[f.output])
    rg = rnd(4, 3, seed=6)
    g = f.backward(state, {f.output: rg}, {W})
    np.testing.assert_allclose(g[W], d.T @ rg, rtol=1e-5)


def test_eval_after_parameter_value_change_and_in_place_rebinding():
    x = C.input_variable(2, name="x")
    W = C.parameter((2, 2), init=np.eye(2, dtype=np.float32))
    f = C.times(x, W)
    d = f32([[1, 2]])
    np.testing.assert_allclose(f.eval({x: d}), d)
    W.value = 2 * np.eye(2, dtype=np.float32)
    np.testing.assert_allclose(f.eval({x: d}), 2 * d)
    # a plan cached before replace_placeholders must not be reused afterwards
    p = C.placeholder()
    g = C.combine([f, C.square(p)])
    y = C.input_variable(2, name="y")
    g.replace_placeholders({p: y})
    r = g.eval({x: d, y: d})
    np.testing.assert_allclose(r[g.outputs[1]], d ** 2)


def test_block_primitive_inputs_include_inner_parameters():
    x, W, inner, blk, out = _block_model()
    ins = blk.root_function.inputs
    assert ins[0] is x and W in ins
    # the top-level composite sees every leaf
    assert set(out.inputs) >= {x, W}


@pytest.mark.parametrize("method", ["clone", "freeze", "share"])
def test_clone_before_parameter_shape_is_inferred(method):
    p = C.placeholder(name="p")
    W = C.parameter((C.InferredDimension, 2), init=C.glorot_uniform(seed=1), name="W")
    f = C.times(p, W)
    g = f.clone(method)
    x = C.input_variable(3, name="x")
    h = g(x)
    d = rnd(2, 3)
    r = h.eval({x: d})
    assert r.shape == (2, 2)
    leaf = (h.parameters + h.constants)[0]
    assert leaf.shape == (3, 2)
    assert (leaf is W) == (method == "share")
    assert leaf.is_constant == (method == "freeze")
    np.testing.assert_allclose(r, d @ leaf.value, rtol=1e-5)


def test_clone_keeps_adopted_dtype():
    x = C.input_variable(2, dtype=np.float64, name="x")
    b = C.parameter(2, init=0.5)     # no explicit dtype: adopts float64
    f = x + b
    for m in ("clone", "freeze"):
        g = f.clone(m)
        r = g.eval({x: np.array([[1.0, 2.0]])})
        assert r.dtype == np.float64
        np.testing.assert_allclose(r, [[1.5, 2.5]])


def test_owner_is_a_primitive_function():
    x = C.input_variable(2, name="x")
    a = C.exp(x, name="e")
    f = C.relu(a, name="r")
    o = f.output.owner
    assert isinstance(o, Function)
    assert o.is_primitive and o.op_name == "ReLU" and o.name == "r"
    assert o.inputs[0].owner.name == "e"
    assert o.inputs[0].owner.inputs[0] is x
    assert x.owner is None
    assert o.outputs[0] is f.output
    np.testing.assert_allclose(o.eval({x: f32([[0, 1]])}), np.exp([[0, 1]]), rtol=1e-6)
    # an op with several outputs
    y = C.input_variable(1, name="y")
    m = C.combine([C.square(y), C.exp(y)])
    assert m.outputs[0].owner.op_name == "Square"


def test_backward_from_all_kept_outputs_releases_the_state():
    x = C.input_variable(2, needs_gradient=True, name="x")
    f = C.square(x)
    d = f32([[1, 2]])
    state, _ = f.forward({x: d}, f.outputs, keep_for_backward=f.outputs)
    g = f.backward(state, {f.output: f32([[1, 1]])}, {x})[x]
    np.testing.assert_allclose(g, 2 * d)
    with pytest.raises(ValueError, match="forward again"):
        f.backward(state, {f.output: f32([[1, 1]])}, {x})


def test_explicit_last_axis_object_selects_the_default_form():
    z = C.input_variable((4, 3))
    t = C.input_variable((4, 3))
    assert C.cross_entropy_with_softmax(z, t, axis=C.Axis(-1)).shape == (4, 4)
    assert C.cross_entropy_with_softmax(z, t, axis=1).shape == (4, 1)
    assert C.classification_error(z, t, axis=C.Axis(-1)).shape == (4, 4)


def test_unbound_placeholder_error_names_it():
    p = C.placeholder(name="state")
    f = C.input_variable(2) + p
    with pytest.raises(ValueError, match="unbound placeholder"):
        f.eval({f.arguments[0]: np.ones((1, 2), np.float32)})


def test_ndarrayview_default_shape():
    v = C.NDArrayView((2, 3))
    assert v.shape == (2, 3) and v.asarray().sum() == 0


def test_splice_pads_operands_up_to_a_negative_axis_beyond_their_rank():
    a, b = C.input_variable(()), C.input_variable(())
    f = C.splice(a, b, axis=-2)
    assert f.shape == (2, 1)
    out = f.eval({a: f32([1, 2]), b: f32([3, 4])})
    np.testing.assert_array_equal(out, f32([[[1], [3]], [[2], [4]]]))


def test_named_layer_attribute_is_searched_inside_the_layer_first():
    # CNTK_103D: ``z.classify.b`` is the Dense layer's own bias although every layer has a 'b',
    # and ``z.first_conv`` is still found from the model whose root is the 'classify' layer
    x = C.input_variable((1, 6, 6))
    h = C.layers.Convolution2D((3, 3), 2, pad=True, name="first_conv")(x)
    z = C.layers.Dense(3, name="classify")(h)
    assert z.first_conv.shape == (2, 6, 6)
    b = z.classify.b
    assert b.shape == (3,)
    assert b is [p for p in z.parameters if p.shape == (3,)][0]
    assert z.classify.W.shape == (2, 6, 6, 3)
    with pytest.raises(AttributeError):
        z.first_conv.nothing_named_so
