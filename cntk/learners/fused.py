"""Torch's fused multi-tensor optimizer kernels, used where CNTK's rule maps onto them exactly.

``torch._fused_sgd_`` and ``torch._fused_adam_`` update a tensor in one pass over memory (the
``foreach`` formulation needs one pass per arithmetic step). On the CPU they open a parallel
region per tensor, which costs more than it saves on small tensors (and can stall on a busy
machine), so there only tensors of at least ``MIN_FUSED_NUMEL`` elements take them. The kernels
want one device and dtype for all their tensors; everything else goes through ``torch._foreach_*``.
"""

import torch

__all__ = ["partition", "pick", "momentum_sgd_step", "adam_step", "MIN_FUSED_NUMEL"]

MIN_FUSED_NUMEL = 1 << 16

_KERNELS = {"sgd": hasattr(torch, "_fused_sgd_"), "adam": hasattr(torch, "_fused_adam_")}


def partition(kernel, *tensor_lists):
    """``(fused, rest)``: indices of the tensors ``kernel`` ("sgd" or "adam") should update, and of
    the others. Index i is fusable when every list's i-th tensor is a dense, contiguous tensor of
    the same device and floating dtype as the first fusable one (and large enough, on the CPU)."""
    n = len(tensor_lists[0])
    if not _KERNELS[kernel]:
        return [], list(range(n))
    fused, rest, key = [], [], None
    for i in range(n):
        ts = [tl[i] for tl in tensor_lists]
        t = ts[0]
        k = (t.device, t.dtype)
        # the kernels read every tensor as contiguous memory: a transposed gradient (as a fused
        # recurrence's weights get) would update the wrong elements
        ok = (t.dtype.is_floating_point
              and all(x.layout == torch.strided and x.is_contiguous() and (x.device, x.dtype) == k for x in ts)
              and (t.device.type != "cpu" or (t.numel() >= MIN_FUSED_NUMEL and t.dtype != torch.float16))
              and (key is None or k == key))
        if ok:
            key = k
            fused.append(i)
        else:
            rest.append(i)
    return fused, rest


def pick(tensors, indices):
    """The tensors at ``indices``."""
    return [tensors[i] for i in indices]


def momentum_sgd_step(params, grads, buffers, beta, scale):
    """``v = beta*v + scale*g; w -= v`` in one pass (CNTK's momentum SGD, the learning rate folded
    into ``scale``): torch's fused SGD with lr 1 and dampening ``1 - scale``. ``beta`` must not be 0
    (the kernel then keeps no buffers)."""
    torch._fused_sgd_(params, grads, buffers, weight_decay=0.0, momentum=beta, lr=1.0, dampening=1.0 - scale,
                      nesterov=False, maximize=False, is_first_step=False)


def adam_step(params, grads, v, s, t, eta, beta, beta2, eps):
    """CNTK's unit-gain Adam step ``v = beta*v + (1-beta)*g; s = beta2*s + (1-beta2)*g^2;
    w -= eta*sqrt(1-beta2^t)/(1-beta^t) * v/(sqrt(s) + eps)`` in one pass: torch's fused Adam
    divides sqrt(s) by sqrt(1-beta2^t) before adding its epsilon, so it gets
    ``eps/sqrt(1-beta2^t)``. Needs 0 <= beta, beta2 < 1."""
    step = torch.full((), float(t), dtype=torch.float32, device=params[0].device)
    eps_t = eps / (1.0 - beta2 ** t) ** 0.5
    torch._fused_adam_(params, grads, v, s, [], [step] * len(params), lr=eta, beta1=beta, beta2=beta2,
                       weight_decay=0.0, eps=eps_t, amsgrad=False, maximize=False)
