"""Non-overlapping max-pooling whose backward pass keeps one byte per output.

PyTorch's ``max_pool2d`` keeps two tensors for its backward pass: its whole
input and the int64 argmax indices (8 bytes per pooled value). When the
kernel equals the stride the windows do not overlap, and the gradient only
needs to know where the maximum sat inside each window: ``scale ** 2``
possible positions, one byte for ``scale <= 16``. :func:`window_max_pool2d`
keeps just that.

In FRRN this matters because every FRRU pools the full-resolution residual
stream ``z`` (Sec. 3.2, Fig. 3): with ``F.max_pool2d`` each FRRU's input
``z`` stays alive until the backward pass, only for the pooling, although
nothing else needs it once ``z + r`` is computed.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


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
