"""How Functions print (CNTK's signature line for str, its graph description for repr), the
typing records' names, update_signature with types, typed arguments, and ``Variable >> f``."""

import re

import numpy as np
import pytest

import cntk as C
from cntk.layers import Dense, Sequential, Embedding, Label
from cntk.layers.typing import Tensor, SparseTensor, ParameterTensor, Sequence, SequenceOver, Signature, tensor


def test_signatures_of_cntk_documentation_examples():
    assert str(C.log(C.input_variable(1), name='f')) == 'f: Log(Tensor[1]) -> Tensor[1]'

    @C.Function
    def g(x, y):
        return x + y
    assert str(g) == 'Plus(x: Sequence[tensor], y: Sequence[tensor]) -> Sequence[tensor]'

    @C.Function
    def h(x, y):
        return C.exp(x + y)
    assert str(h) == 'Composite(x: Sequence[tensor], y: Sequence[tensor]) -> Sequence[tensor]'
    # a layer before it is applied: its argument is a placeholder of unknown type (the output's
    # shape is already known here, where CNTK prints it as tensor)
    assert str(Dense(10)) == 'Dense(x: Sequence[tensor]) -> Sequence[Tensor[10]]'


def test_signatures_of_applied_layers_and_composites():
    x = C.input_variable(784, name='x')
    assert str(Dense(10)(x)) == 'Dense(x: Tensor[784]) -> Tensor[10]'
    assert str(Sequential([Dense(50), Dense(10)])(x)) == 'Composite(x: Tensor[784]) -> Tensor[10]'
    s = C.sequence.input_variable(150, name='x')
    assert str(Dense(300)(s)) == 'Dense(x: Sequence[Tensor[150]]) -> Sequence[Tensor[300]]'
    assert str(Dense(300, name='out')(s)) == 'out: Dense(x: Sequence[Tensor[150]]) -> Sequence[Tensor[300]]'
    # the root's op name only when it is applied to the graph's leaves
    assert str(x + 1).startswith('Plus(x: Tensor[784]) -> Tensor[784]')
    assert str(C.exp(x) + 1).startswith('Composite(')
    assert str(x * C.exp(x)).startswith('ElementTimes(')          # (CNTK compares the leading leaves)
    assert str(C.relu(x).root_function) == 'ReLU(x: Tensor[784]) -> Tensor[784]'
    assert str(C.combine([x, s])) == 'Combine(x: Tensor[784], x: Sequence[Tensor[150]]) -> ' \
                                     'Tuple[Tensor[784], Sequence[Tensor[150]]]'
    # a sparse input, an unnamed input, a sequence over a named axis, no dynamic axes, a scalar
    w = C.sequence.input_variable(943, is_sparse=True, name='w')
    assert str(Embedding(150)(w)) == 'Embedding(w: Sequence[SparseTensor[943]]) -> Sequence[Tensor[150]]'
    assert str(C.sigmoid(C.input_variable((2, 3)))) == 'Sigmoid(Tensor[2,3]) -> Tensor[2,3]'
    q = C.Axis('q')

    @C.Function
    def f(a: SequenceOver[q][Tensor[3]], p: ParameterTensor[3], c: Tensor[()]):
        return a * p + c, C.reduce_sum(a)
    assert str(f) == 'Composite(a: SequenceOver[q][Tensor[3]], p: ParameterTensor[3], c: float) -> ' \
                     'Tuple[SequenceOver[q][Tensor[3]], SequenceOver[q][float]]'
    assert str(Label('lbl')(x)) == 'lbl: Pass(x: Tensor[784]) -> Tensor[784]'


def test_repr_is_cntks_graph_description():
    s = C.sequence.input_variable(150, name='x')
    r = repr(Dense(300)(s))
    assert re.fullmatch(r"Composite\(Dense\): Input\('x', \[#, \*\], \[150\]\) -> Output\('\w+', \[#, \*\], \[300\]\)",
                        r), r
    assert re.fullmatch(r"Composite\(Dense\): Placeholder\('x', \[\?\?\?\], \[\?\?\?\]\) -> Output\('\w+', "
                        r"\[\?\?\?\], \[10\]\)", repr(Dense(10))), repr(Dense(10))
    z = C.plus(C.input_variable((2, 3), name='a'), C.input_variable(3, name='b'))
    assert re.fullmatch(r"Plus: Input\('a', \[#\], \[2 x 3\]\), Input\('b', \[#\], \[3\]\) -> Output\('\w+', \[#\], "
                        r"\[2 x 3\]\)", repr(z.root_function)), repr(z.root_function)
    assert repr(z).startswith("Composite(Plus): Input('a', [#], [2 x 3])")


def test_variable_repr_is_cntks_description():
    # kind('name', dynamic axes, shape), as CNTK 2.7 prints them (axes and shape in Python order)
    x = C.sequence.input_variable(150, name='x')
    assert repr(x) == str(x) == "Input('x', [#, *], [150])"
    assert repr(C.input_variable((2, 3), name='i')) == "Input('i', [#], [2 x 3])"
    assert repr(C.sequence.input_variable(4, sequence_axis=C.Axis('m'), name='s')) == "Input('s', [#, m], [4])"
    # a free dimension (sized at run time): the unpacked sequence axis
    unpacked = C.sequence.unpack(x, 0, no_mask_output=True, name='u').output
    assert re.fullmatch(r"Output\('\w+', \[#\], \[\* x 150\]\)", repr(unpacked)), repr(unpacked)
    assert repr(C.parameter((784, 10), name='W')) == "Parameter('W', [], [784 x 10])"
    assert repr(C.parameter((C.InferredDimension, 5), name='W')) == "Parameter('W', [], [? x 5])"
    assert repr(C.constant(np.ones((2, 3)), name='c')) == "Constant('c', [], [2 x 3])"
    assert repr(C.constant(2.0, name='k')) == "Constant('k', [], [])"
    assert repr(C.placeholder(name='p')) == "Placeholder('p', [???], [???])"
    # unnamed variables show their uid; an op's output is an Output
    assert re.fullmatch(r"Input\('Input\d+', \[#\], \[3\]\)", repr(C.input_variable(3)))
    assert re.fullmatch(r"Parameter\('Parameter\d+', \[\], \[4\]\)", repr(C.parameter(4)))
    d = Dense(10)(C.input_variable(784, name='in'))
    assert re.fullmatch(r"Output\('\w+', \[#\], \[10\]\)", repr(d.output))
    assert d.W.__repr__() == "Parameter('W', [], [784 x 10])"
    # a Function's description is made of its variables' descriptions
    assert repr(d) == "Composite(Dense): %r -> %r" % (d.arguments[0], d.output)


def test_typing_records_print_as_cntk_types():
    assert str(Tensor[13, 42]) == 'Tensor[13,42]'
    assert str(Tensor[np.float64, 3]) == 'Tensor[3]'                 # the dtype is not part of the name
    assert str(Sequence[SparseTensor[9000]]) == 'Sequence[SparseTensor[9000]]'
    assert str(ParameterTensor[4, 2]) == 'ParameterTensor[4,2]'
    assert str(SequenceOver[C.Axis('in')][Tensor[2]]) == 'SequenceOver[in][Tensor[2]]'
    assert str(Tensor[()]) == 'float' and str(tensor) == 'tensor'
    with pytest.raises(TypeError, match=r"abstract type Tensor\[32\] cannot be instantiated; "
                                        r"use 'input\(\*\*Tensor\[32\]\)' instead"):
        Tensor[32]()


def test_update_signature_with_types():
    d = Dense(5)
    d.update_signature(Tensor[13, 42])
    assert d.shape == (5,) and d.W.shape == (13, 42, 5)
    assert str(d) == 'Dense(x: Tensor[13,42]) -> Tensor[5]'

    @C.Function
    def f(x, y):
        return x * 2 + y
    f.update_signature(y=Sequence[Tensor[3]], x=3)
    assert str(f) == 'Composite(x: Tensor[3], y: Sequence[Tensor[3]]) -> Sequence[Tensor[3]]'

    @C.Function
    def g(x):
        return x + 1
    g.update_signature(np.float64)                 # a scalar of that dtype
    assert g.arguments[0].shape == () and g.arguments[0].dtype == np.float64
    np.testing.assert_allclose(g(np.array([1., 2.])), [2., 3.])

    @C.Function
    @Signature(Tensor[2], Tensor[2])
    def h(a, b):
        return a - b
    assert str(h) == 'Minus(a: Tensor[2], b: Tensor[2]) -> Tensor[2]'
    with pytest.raises(TypeError, match="update_signature"):
        Dense(3).update_signature(3, 4)


def test_typed_arguments_reject_variables_of_another_shape():
    @C.Function
    def f(x: Tensor[13]):
        return C.sigmoid(x)
    with pytest.raises(TypeError, match=r"argument x's type Tensor\[13\] is incompatible with the type "
                                        r"Tensor\[42\] of the passed Variable"):
        f(C.input_variable(42))
    assert f(C.input_variable(13)).shape == (13,)


def test_variable_on_the_left_of_rshift():
    x = C.input_variable(4, name='x')
    X = np.random.RandomState(0).randn(3, 4).astype(np.float32)
    d1, d2 = Dense(3, activation=C.relu), Dense(2)
    y = x >> d1 >> d2
    assert isinstance(y, C.Function) and y.shape == (2,)
    np.testing.assert_allclose(y.eval({x: X}), d2(d1(x)).eval({x: X}), rtol=1e-6)
    np.testing.assert_allclose((x >> C.tanh).eval({x: X}), np.tanh(X), rtol=1e-6)
    np.testing.assert_allclose((x >> (lambda v: v * 2)).eval({x: X}), X * 2, rtol=1e-6)
    both = x >> (C.abs, C.negate)                 # a tuple applies each member: two outputs
    assert len(both.outputs) == 2
    a, n = both.eval({x: X}).values()
    np.testing.assert_allclose(a, np.abs(X))
    np.testing.assert_allclose(n, -X)
    assert str(x >> Dense(3)) == 'Dense(x: Tensor[4]) -> Tensor[3]'
    with pytest.raises(TypeError):
        x >> 3
