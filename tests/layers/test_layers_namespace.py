"""The public names of cntk.layers and its modules, as CNTK 2.7 exposes them (its modules have no
``__all__`` and star-import each other, so ``from cntk.layers import *`` also gives the typing
names and the ops the modules import), and ``@Signature``'s checks."""

import numpy as np
import pytest

import cntk as C
import cntk.layers
import cntk.layers.blocks
import cntk.layers.layers
import cntk.layers.models
import cntk.layers.sequence
import cntk.layers.typing
from cntk.layers.typing import Signature, Tensor

# what each CNTK 2.7 module defines, then the CNTK objects its imports expose
BLOCKS = {"ForwardDeclaration", "GRU", "LSTM", "RNNStep", "RNNUnit", "Stabilizer", "identity",
          "BlockFunction", "Function", "Parameter", "Constant", "placeholder", "combine", "alias", "times", "slice",
          "sigmoid", "tanh", "softplus", "glorot_uniform", "InferredDimension", "get_default_override",
          "default_override_or"}
TYPING = {"Tensor", "SparseTensor", "ParameterTensor", "tensor", "Sequence", "SequenceOver", "SequenceOverMeta",
          "Signature", "Axis", "Variable", "Record"}
SEQUENCE = {"Delay", "PastValueWindow", "Recurrence", "RecurrenceFrom", "Fold", "UnfoldFrom",
            "past_value", "future_value", "splice", "combine"} | BLOCKS
HIGHER_ORDER = {"Sequential", "For", "SequentialClique", "ResNetBlock"}
LAYERS = {"Dense", "Embedding", "Convolution", "Convolution1D", "Convolution2D", "Convolution3D",
          "SequentialConvolution", "ConvolutionTranspose", "ConvolutionTranspose1D", "ConvolutionTranspose2D",
          "ConvolutionTranspose3D", "MaxPooling", "AveragePooling", "GlobalMaxPooling", "GlobalAveragePooling",
          "MaxUnpooling", "Dropout", "Activation", "BatchNormalization", "LayerNormalization", "Label",
          "Variable", "Record", "Constant", "parameter", "input", "placeholder", "combine", "times", "element_times",
          "convolution", "convolution_transpose", "pooling", "unpooling", "batch_normalization", "dropout", "splice",
          "reshape", "softmax", "tanh", "reduce_sum", "reduce_mean", "sqrt",
          "SentinelValueForAutoSelectRandomSeed"} | BLOCKS | HIGHER_ORDER | SEQUENCE | TYPING
MODELS = {"AttentionModel"}
PACKAGE = BLOCKS | TYPING | SEQUENCE | HIGHER_ORDER | LAYERS | MODELS | {"default_options", "default_options_for"}


def _star(module):
    ns = {}
    exec("from %s import *" % module.__name__, ns)
    return set(ns) - {"__builtins__"}


@pytest.mark.parametrize("module, expected", [
    (cntk.layers, PACKAGE), (cntk.layers.blocks, BLOCKS), (cntk.layers.typing, TYPING),
    (cntk.layers.sequence, SEQUENCE), (cntk.layers.layers, LAYERS), (cntk.layers.models, MODELS)],
    ids=["layers", "blocks", "typing", "sequence", "layers.layers", "models"])
def test_module_exposes_cntks_public_names(module, expected):
    missing = sorted(expected - _star(module))
    assert not missing, "%s lacks %s" % (module.__name__, missing)


def test_exposed_names_are_the_one_definition_of_each():
    L = cntk.layers
    # layers and blocks are the modules' own objects
    assert L.Stabilizer is L.blocks.Stabilizer is L.layers.Stabilizer
    assert L.LSTM is L.blocks.LSTM is L.sequence.LSTM
    assert L.Tensor is L.typing.Tensor and L.SequenceOver is L.typing.SequenceOver
    assert L.Recurrence is L.sequence.Recurrence and L.AttentionModel is L.models.AttentionModel
    # re-exported ops, variables and constants are CNTK's own
    for n in ("placeholder", "combine", "alias", "times", "slice", "sigmoid", "tanh", "softplus", "past_value",
              "future_value", "splice", "element_times", "convolution", "convolution_transpose", "pooling",
              "unpooling", "batch_normalization", "dropout", "reshape", "softmax", "reduce_sum", "reduce_mean",
              "sqrt", "parameter", "input", "Parameter", "Constant", "Axis", "InferredDimension",
              "glorot_uniform"):
        assert getattr(L, n) is getattr(C, n), n
    assert L.Variable is C.variables.Variable and L.Record is L.typing.Record
    # the submodules stay reachable under their names (CNTK's 'sequence' ends up as cntk.ops.sequence)
    assert L.sequence.__name__ == "cntk.layers.sequence" and L.typing.__name__ == "cntk.layers.typing"
    # CNTK's UntestedBranchError is an internal helper that only raises: not part of this API
    assert not hasattr(L, "UntestedBranchError")


def test_a_script_written_against_the_star_import_runs():
    ns = {}
    exec("from cntk.layers import *\n"
         "m = Axis('m')\n"
         "model = Sequential([Embedding(8), Recurrence(LSTM(6)), Stabilizer(), Dense(3, activation=sigmoid)])\n"
         "model.update_signature(SequenceOver[m][Tensor[5]])\n"
         "y = splice(past_value(model), future_value(model))\n", ns)
    y, model = ns["y"], ns["model"]
    assert y.shape == (6,) and y.output.sequence_axis == C.Axis('m')
    out = y.eval({y.arguments[0]: [np.eye(5, dtype=np.float32)[[0, 3, 1]]]})
    assert out[0].shape == (3, 6)
    np.testing.assert_allclose(out[0][0, :3], 0)      # the past of the first item is the initial 0
    np.testing.assert_allclose(out[0][2:, :3], out[0][:-2, 3:])   # both the model's output at the middle item
    np.testing.assert_allclose(out[0][-1, 3:], 0)     # the future of the last item is the initial 0


def test_signature_gives_types_and_checks_like_cntk():
    @Signature(Tensor[3], y=Tensor[2])
    def f(x, y):
        return C.splice(x, y)
    assert {k: str(t) for k, t in f.__annotations__.items()} == {"x": "Tensor[3]", "y": "Tensor[2]"}
    g = C.Function(f)
    assert str(g) == "Splice(x: Tensor[3], y: Tensor[2]) -> Tensor[5]"
    with pytest.raises(TypeError, match=r"@Signature: 1 types given for 'h', which has 2 parameters \(a, b\)"):
        @Signature(Tensor[3])
        def h(a, b):
            return a
    with pytest.raises(TypeError, match="has no parameter 'z'"):
        @Signature(Tensor[3], z=Tensor[3])
        def k(a, b):
            return a
    with pytest.raises(TypeError, match="given a type twice"):
        @Signature(Tensor[3], a=Tensor[3])
        def j(a, b):
            return a
    with pytest.raises(ValueError, match="already has annotations"):
        @Signature(Tensor[3])
        def annotated(a: Tensor[2]):
            return a
