"""The forms in which ``train_minibatch``/``test_minibatch`` take a minibatch: a {variable or
name: data} map, a list of data in argument order, the data alone for a single input, with
reader ``MinibatchData`` values anywhere data is expected."""

__all__ = ["prepare_arguments", "is_minibatch_data"]


def is_minibatch_data(value):
    """Whether ``value`` is a reader's MinibatchData (data plus sample counts and a sweep flag)."""
    return hasattr(value, "end_of_sweep") and hasattr(value, "data") and hasattr(value, "num_samples")


def prepare_arguments(function, order, arguments):
    """({argument: data}, whether any MinibatchData ends a sweep) for ``function``, whose
    arguments a positional list follows in ``order``."""
    if arguments is None:
        return {}, False
    if not isinstance(arguments, dict):
        params = function.arguments
        if len(params) == 1:
            arguments = {params[0]: arguments}
        elif isinstance(arguments, (list, tuple)) and len(arguments) == len(order):
            arguments = dict(zip(order, arguments))
        else:
            raise ValueError("the minibatch must be a {input: data} map: the function has %d inputs (%s)"
                             % (len(params), ", ".join(p.name or p.uid for p in params)))
    sweep_end = False
    out = {}
    for k, v in arguments.items():
        if is_minibatch_data(v):
            sweep_end = sweep_end or bool(v.end_of_sweep)
            v = v.data
        out[k] = v
    return out, sweep_end
