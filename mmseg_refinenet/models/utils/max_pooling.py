"""Max-poolings that keep less than ``F.max_pool2d`` for the backward pass.

``F.max_pool2d`` keeps two tensors for its backward pass: its whole input
and the int64 argmax indices (8 bytes per pooled value). The two poolings
here give exactly its output and gradient with less kept:

* :func:`window_max_pool2d`, FRRN's non-overlapping pooling (kernel equal
  to the stride), keeps one byte per output: the position of each maximum
  inside its window.
* :func:`recomputing_max_pool2d`, the stride-1 pooling of RefineNet's
  chained residual pooling (CRP), keeps its input alone and recomputes the
  argmax indices in the backward pass.

**window_max_pool2d.** When the kernel equals the stride the windows do not
overlap, and the gradient only needs to know where the maximum sat inside
each window: ``scale ** 2`` possible positions, one byte for
``scale <= 16``. In FRRN this matters because every FRRU pools the
full-resolution residual stream ``z`` (Sec. 3.2, Fig. 3): with
``F.max_pool2d`` each FRRU's input ``z`` stays alive until the backward
pass, only for the pooling, although nothing else needs it once ``z + r``
is computed.

**recomputing_max_pool2d.** The CRP (RefineNet Sec. 3.2) max-pools with
stride 1 and overlapping windows; the pooling's input is kept anyway (the
previous stage's output), so dropping the indices is the whole saving. It
has two implementations with the same output and gradient:

* an autograd function, used in eager mode and on any torch version;
* a custom operator with a custom backward operator
  (``torch.library.custom_op``, torch >= 2.4), used while the model is
  compiled with ``torch.compile``. Inductor decomposes the backward of
  chained stride-1 poolings into a zero-filled buffer and a
  ``scatter_add``, and fuses the addition that reads the buffer with the
  fill, before the scatter: the gradients of the stage convolutions and of
  the block's input come out wrong, with no error (``tests/test_compile.py``
  shows it; the forward pass is right). A custom operator is opaque to
  Inductor, which calls PyTorch's own kernels for it, so the compiled
  gradients are the eager ones. On torch < 2.4, which has no custom
  operators, the autograd function is used under ``torch.compile`` too.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .arg_checks import check_odd_kernel_size
from .checks import is_compiling

# torch.library.custom_op: torch >= 2.4
HAS_CUSTOM_OP = hasattr(torch.library, 'custom_op')


def _offset_dtype(scale: int) -> torch.dtype:
    """The smallest integer dtype holding the ``scale ** 2`` window
    positions."""
    if scale * scale <= 256:
        return torch.uint8
    if scale * scale <= 32768:
        return torch.int16
    return torch.int32


class _WindowMaxPool2d(torch.autograd.Function):
    """``max_pool2d(x, scale, stride=scale)`` keeping the in-window position
    of each maximum (see :func:`window_max_pool2d`)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: int) -> Tensor:
        out, index = F.max_pool2d(
            x, scale, stride=scale, return_indices=True)
        # index: flat position in the (H, W) plane -> position inside the
        # window, row * scale + column (int32 arithmetic: half the bytes)
        width = x.shape[-1]
        if x.shape[-2] * width < 2**31:
            index = index.to(torch.int32)
        row = torch.div(index, width, rounding_mode='floor')
        if width % scale == 0:
            col = index  # same remainder modulo scale as the column
        else:
            col = index - row * width
        offset = (row % scale) * scale + col % scale
        ctx.save_for_backward(offset.to(_offset_dtype(scale)))
        ctx.scale = scale
        ctx.in_size = x.shape[-2:]
        ctx.channels_last = (
            x.dim() == 4 and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last))
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (offset, ) = ctx.saved_tensors
        scale = ctx.scale
        height, width = ctx.in_size
        rows, cols = grad.shape[-2:]
        lead = grad.shape[:-2]
        # (..., rows, scale, cols, scale): entry (i, a, j, b) is input pixel
        # (i * scale + a, j * scale + b); it gets the gradient of output
        # (i, j) if it was that window's maximum, a * scale + b == offset
        positions = torch.arange(scale * scale, device=grad.device)
        positions = positions.view(scale, 1, scale)
        mask = offset.unsqueeze(-1).unsqueeze(-3) == positions
        grad_in = torch.where(mask,
                              grad.unsqueeze(-1).unsqueeze(-3),
                              grad.new_zeros(()))
        grad_in = grad_in.reshape(*lead, rows * scale, cols * scale)
        if rows * scale != height or cols * scale != width:
            # floor mode: the last rows / columns were in no window
            grad_in = F.pad(
                grad_in, (0, width - cols * scale, 0, height - rows * scale))
        if ctx.channels_last:
            grad_in = grad_in.contiguous(memory_format=torch.channels_last)
        return grad_in, None


def window_max_pool2d(x: Tensor, scale: int, compact: bool = True) -> Tensor:
    """Max-pooling with ``kernel_size = stride = scale``, lean in training.

    Gives exactly ``F.max_pool2d(x, scale, stride=scale)`` and, when ``x``
    requires a gradient, exactly the same gradient, but keeps for the
    backward pass only the position of each maximum inside its
    ``scale x scale`` window: one byte per pooled value for ``scale <= 16``
    (two up to 181), where ``F.max_pool2d`` keeps the whole input ``x`` and
    int64 indices. For a float32 input pooled by 2 that is 1/16 of the
    input's bytes instead of 1 + 1/2 of them.

    Windows do not overlap, so every input pixel receives the gradient of
    at most one output: the one whose maximum it was (the same element
    PyTorch's own backward picks when a window holds several equal
    maxima). Without a gradient (inference, export) this is plain
    ``F.max_pool2d``.

    Args:
        x (Tensor): (N, C, H, W) or (C, H, W); H and W need not be multiples
            of ``scale`` (the remainder is dropped, as by ``F.max_pool2d``).
        scale (int): Kernel size and stride.
        compact (bool): Keep only the in-window positions for the backward
            pass. False: plain ``F.max_pool2d`` and its own backward (the
            input and int64 indices kept), e.g. to compare. Default: True.

    Returns:
        Tensor: (N, C, H // scale, W // scale) (or without N).
    """
    if scale == 1:
        return x
    if compact and torch.is_grad_enabled() and x.requires_grad:
        return _WindowMaxPool2d.apply(x, scale)
    return F.max_pool2d(x, scale, stride=scale)


# ---------------------------------------------------------------------------
# stride-1 pooling that recomputes its indices (the CRP's)


def _pool_forward(x: Tensor, kernel_size: int) -> Tensor:
    return F.max_pool2d(x, kernel_size, stride=1, padding=kernel_size // 2)


def _pool_backward(grad: Tensor, x: Tensor, kernel_size: int) -> Tensor:
    """The gradient of :func:`_pool_forward` with respect to ``x``, the
    argmax indices recomputed from ``x``."""
    padding = kernel_size // 2
    with torch.no_grad():
        _, indices = F.max_pool2d(
            x, kernel_size, stride=1, padding=padding, return_indices=True)
    return torch.ops.aten.max_pool2d_with_indices_backward(
        grad, x, [kernel_size, kernel_size], [1, 1], [padding, padding],
        [1, 1], False, indices)


class _RecomputingMaxPool2d(torch.autograd.Function):
    """Stride-1 max-pooling keeping its input alone for the backward pass
    (see :func:`recomputing_max_pool2d`)."""

    @staticmethod
    def forward(ctx, x: Tensor, kernel_size: int) -> Tensor:
        ctx.save_for_backward(x)
        ctx.kernel_size = kernel_size
        return _pool_forward(x, kernel_size)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        (x, ) = ctx.saved_tensors
        return _pool_backward(grad, x, ctx.kernel_size), None


if HAS_CUSTOM_OP:

    @torch.library.custom_op('mmseg_refinenet::recomputing_max_pool2d',
                             mutates_args=())
    def _pool_op(x: Tensor, kernel_size: int) -> Tensor:
        return _pool_forward(x, kernel_size)

    @_pool_op.register_fake
    def _pool_op_fake(x: Tensor, kernel_size: int) -> Tensor:
        # odd kernels with padding kernel_size // 2 keep the size (checked
        # by recomputing_max_pool2d)
        return torch.empty_like(x)

    @torch.library.custom_op(
        'mmseg_refinenet::recomputing_max_pool2d_backward', mutates_args=())
    def _pool_backward_op(grad: Tensor, x: Tensor,
                          kernel_size: int) -> Tensor:
        return _pool_backward(grad, x, kernel_size)

    @_pool_backward_op.register_fake
    def _pool_backward_op_fake(grad: Tensor, x: Tensor,
                               kernel_size: int) -> Tensor:
        return torch.empty_like(x)

    def _setup_context(ctx, inputs, output) -> None:
        x, kernel_size = inputs
        ctx.save_for_backward(x)
        ctx.kernel_size = kernel_size

    def _op_backward(ctx, grad: Tensor):
        (x, ) = ctx.saved_tensors
        return _pool_backward_op(grad, x, ctx.kernel_size), None

    _pool_op.register_autograd(_op_backward, setup_context=_setup_context)


def recomputing_max_pool2d(x: Tensor,
                           kernel_size: int,
                           custom_op: Optional[bool] = None) -> Tensor:
    """``F.max_pool2d(x, kernel_size, stride=1, padding=kernel_size // 2)``
    with the same output and gradient, keeping only ``x`` for the backward
    pass, which recomputes the argmax indices (no int64 indices kept).

    Args:
        x (Tensor): (N, C, H, W).
        kernel_size (int): Odd window size; the output keeps H and W.
        custom_op (bool, optional): Run as the custom operator
            ``torch.ops.mmseg_refinenet.recomputing_max_pool2d`` (True;
            needs torch >= 2.4) or as an autograd function (False). None:
            the custom operator while ``torch.compile`` traces the call and
            torch has custom operators, else the autograd function (see
            the module's docstring). Default: None.

    Returns:
        Tensor: (N, C, H, W).
    """
    check_odd_kernel_size('recomputing_max_pool2d', 'kernel_size',
                          kernel_size)
    if custom_op is None:
        custom_op = HAS_CUSTOM_OP and is_compiling()
    elif custom_op and not HAS_CUSTOM_OP:
        raise RuntimeError(
            'recomputing_max_pool2d(custom_op=True) needs '
            'torch.library.custom_op, new in torch 2.4; this is torch '
            f'{torch.__version__}. Use custom_op=None or False.')
    if custom_op:
        return _pool_op(x, kernel_size)
    return _RecomputingMaxPool2d.apply(x, kernel_size)
