"""Stride-1 max-pooling as one op that ``torch.compile`` cannot look into.

Chained residual pooling (RefineNet Sec. 3.2) max-pools with stride 1 and
overlapping windows, and feeds each pooled map to a convolution whose
output is pooled again and also summed into the block's output. Under
``torch.compile``, Inductor (PyTorch 2.13, CPU backend) decomposes the
backward of such a pooling into a zero-filled buffer and a ``scatter_add``
that it runs as a separate kernel, and in this pattern it fuses the
addition that reads the buffer with the fill, before the scatter: the
gradients of the stage convolutions and of the block's input come out
wrong (by 60 to 100 % in ``tests/test_compile.py``), with no error. The
forward pass is right.

:func:`recomputing_max_pool2d` is that pooling as a custom operator with a
custom backward operator: Inductor calls PyTorch's own kernels for both,
so the compiled gradients are the eager ones. Like the CRP's
``recompute_pooling``, it keeps only its input for the backward pass and
recomputes the argmax indices there, instead of keeping them (int64).
"""
import torch
import torch.nn.functional as F
from torch import Tensor


@torch.library.custom_op('mmseg_refinenet::recomputing_max_pool2d',
                         mutates_args=())
def _pool(x: Tensor, kernel_size: int) -> Tensor:
    return F.max_pool2d(x, kernel_size, stride=1, padding=kernel_size // 2)


@_pool.register_fake
def _pool_fake(x: Tensor, kernel_size: int) -> Tensor:
    # odd kernels with padding kernel_size // 2 keep the size (checked by
    # recomputing_max_pool2d)
    return torch.empty_like(x)


@torch.library.custom_op('mmseg_refinenet::recomputing_max_pool2d_backward',
                         mutates_args=())
def _pool_backward(grad: Tensor, x: Tensor, kernel_size: int) -> Tensor:
    padding = kernel_size // 2
    _, indices = F.max_pool2d(
        x, kernel_size, stride=1, padding=padding, return_indices=True)
    return torch.ops.aten.max_pool2d_with_indices_backward(
        grad, x, [kernel_size, kernel_size], [1, 1], [padding, padding],
        [1, 1], False, indices)


@_pool_backward.register_fake
def _pool_backward_fake(grad: Tensor, x: Tensor, kernel_size: int) -> Tensor:
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    x, kernel_size = inputs
    ctx.save_for_backward(x)
    ctx.kernel_size = kernel_size


def _backward(ctx, grad: Tensor):
    (x, ) = ctx.saved_tensors
    return _pool_backward(grad, x, ctx.kernel_size), None


_pool.register_autograd(_backward, setup_context=_setup_context)


def recomputing_max_pool2d(x: Tensor, kernel_size: int) -> Tensor:
    """``F.max_pool2d(x, kernel_size, stride=1, padding=kernel_size // 2)``
    as one custom operator, with the same output and gradient.

    Its backward pass keeps ``x`` and recomputes the argmax indices. Meant
    for training under ``torch.compile`` (see the module's docstring); in
    eager mode ``F.max_pool2d`` is the same and has less overhead.

    Args:
        x (Tensor): (N, C, H, W).
        kernel_size (int): Odd window size; the output keeps H and W.

    Returns:
        Tensor: (N, C, H, W).
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError('recomputing_max_pool2d needs an odd kernel_size '
                         f'(the output keeps the input size), got '
                         f'{kernel_size}')
    return _pool(x, kernel_size)
