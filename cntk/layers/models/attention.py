"""The additive (Bahdanau) attention model."""

import warnings

from ... import ops as _ops
from ...ops import sequence as _sequence
from ...initializer import glorot_uniform
from ...default_options import default_options, default_override_or
from ..blocks import Stabilizer, _block, _resolved
from ..layers import Dense, Label
from ..sequence import PastValueWindow

__all__ = ["AttentionModel"]


def AttentionModel(attention_dim, attention_span=None, attention_axis=None,
                   init=default_override_or(glorot_uniform()), go_backwards=default_override_or(False),
                   enable_self_stabilization=default_override_or(True), name=''):
    """A function (encoder hidden-state sequence, decoder hidden-state sequence) -> for every
    decoder step, the encoder states averaged with attention weights
    softmax_e(v . tanh(W_enc h_enc[e] + W_dec h_dec)) over the encoder positions e (masked to each
    sequence's length; bias-free projections, stabilized). ``attention_span`` and
    ``attention_axis`` select CNTK's deprecated mode: a fixed window of the last
    ``attention_span`` encoder states (PastValueWindow) stacked along ``attention_axis``."""
    init, go_backwards, enable_self_stabilization = _resolved(AttentionModel, init=init, go_backwards=go_backwards,
                                                             enable_self_stabilization=enable_self_stabilization)

    windowed = True
    if attention_span is None:
        if attention_axis is not None:
            raise ValueError("AttentionModel: attention_span cannot be None when attention_axis is given")
        windowed = False
    elif attention_span <= 0:
        raise ValueError("AttentionModel: attention_span must be positive; got %r" % (attention_span,))
    elif attention_axis is None:
        raise ValueError("AttentionModel: attention_axis cannot be None when attention_span is given")

    def stabilized_projection(dim):
        # bias-free, as all of the model's projections
        with default_options(bias=False):
            return Stabilizer(enable_self_stabilization=enable_self_stabilization) >> \
                Dense(dim, init=init, input_rank=1)
    attn_proj_enc = stabilized_projection(attention_dim)
    attn_proj_dec = stabilized_projection(attention_dim)
    attn_proj_tanh = stabilized_projection(1)
    attn_final_stab = Stabilizer(enable_self_stabilization=enable_self_stabilization)

    if windowed:
        warnings.warn("AttentionModel: attention_span and attention_axis are deprecated (since CNTK 2.3)",
                      DeprecationWarning, stacklevel=2)

        def windowed_attention(h_enc, h_dec):
            window, valid = PastValueWindow(attention_span, axis=attention_axis,
                                            go_backwards=go_backwards)(h_enc).outputs
            h_enc_proj = _sequence.broadcast_as(attn_proj_enc(window), h_dec)
            h_enc_valid = _sequence.broadcast_as(valid, h_dec)
            u = attn_proj_tanh(_ops.tanh(attn_proj_dec(h_dec) + h_enc_proj))   # (span, 1)
            u_masked = u + (h_enc_valid - 1) * 50      # CNTK's masking constant in this mode
            weights = Label('attention_weights')(_ops.softmax(u_masked, axis=attention_axis))
            h_att = _ops.reduce_sum(_ops.element_times(_sequence.broadcast_as(window, h_dec), weights),
                                    axis=attention_axis)
            return attn_final_stab(h_att)
        return _block('AttentionModel', name, windowed_attention, arg_names=('h_enc', 'h_dec'))

    def attention(encoder_hidden_state, decoder_hidden_state):
        # the encoder sequence as a static axis (padded to the longest) and its validity mask
        unpacked = _sequence.unpack(encoder_hidden_state, padding_value=0, no_mask_output=True)  # (e, h)
        # the validity mask as (e, 1): 1 at the sequence's items, 0 in the padding
        ones = _ops.ones_like(_ops.slice(encoder_hidden_state, -1, 0, 1))
        valid = _sequence.unpack(ones, padding_value=0, no_mask_output=True)
        proj_enc = _sequence.broadcast_as(attn_proj_enc(unpacked), decoder_hidden_state)        # (e, dim)
        valid = _sequence.broadcast_as(valid, decoder_hidden_state)                               # (e, 1)
        logits = attn_proj_tanh(_ops.tanh(attn_proj_dec(decoder_hidden_state) + proj_enc))    # (e, 1)
        logits = _ops.element_select(valid, logits, _ops.constant(-1e+30))
        weights = Label('attention_weights')(_ops.softmax(logits, axis=0))
        attended = _ops.reduce_sum(weights * _sequence.broadcast_as(unpacked, weights), axis=0)    # (1, h)
        return attn_final_stab(_ops.reshape(attended, (), 0, 1))
    return _block('AttentionModel', name, attention, arg_names=('encoder_hidden_state', 'decoder_hidden_state'))
