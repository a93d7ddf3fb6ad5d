"""Theano's integer-ratio bilinear upsampling, for converted FRRN weights.

The official FRRN (TobyPDE/FRRN, ``dltools/layers.py``) upsamples its
pooling stream with ``theano.tensor.nnet.abstract_conv.bilinear_upsampling``:
the edge rows and columns are repeated once, then a transposed convolution
with the triangular kernel ``(1, 2, ..., r, ..., 2, 1) / r``, stride ``r``
and padding ``2r - (r - 1) // 2 - 1``. Written out, output index ``t`` (per
axis) samples the input at

    q(t) = (t - (r - 1) // 2) / r

by linear interpolation, clamped to the edges. For ``r = 2``: ``out[2i] =
x[i]`` and ``out[2i + 1] = (x[i] + x[i + 1]) / 2``, the last value
repeated. This is a quarter input pixel away from PyTorch's
``F.interpolate(..., align_corners=False)`` at every position (which
samples ``(t + 0.5) / r - 0.5``), so weights trained with one do not see
their features where they expect them with the other.
"""
import torch.nn.functional as F
from torch import Tensor

from .arg_checks import check_positive_int


def theano_bilinear_upsample(x: Tensor, ratio: int = 2) -> Tensor:
    """Upsample (N, C, H, W) to (N, C, ratio * H, ratio * W) as Theano's
    ``bilinear_upsampling`` does (see the module docstring).

    Computed as: replicate-pad one pixel on every side, bilinear
    interpolation with ``align_corners=True`` to ``ratio * (size + 1) + 1``
    samples (spacing ``1 / ratio`` input pixels), then the crop that starts
    at ``q = (-(ratio - 1) // 2) / ratio``.
    """
    check_positive_int('theano_bilinear_upsample', 'ratio', ratio)
    if x.dim() != 4:
        raise ValueError('theano_bilinear_upsample takes (N, C, H, W), got '
                         f'a tensor of shape {tuple(x.shape)}')
    if ratio == 1:
        return x
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode='replicate')
    dense = F.interpolate(
        padded,
        size=(ratio * (height + 1) + 1, ratio * (width + 1) + 1),
        mode='bilinear',
        align_corners=True)
    # padded index = input index + 1, so q(t) + 1 = (t + start) / ratio
    start = ratio - (ratio - 1) // 2
    return dense[..., start:start + ratio * height,
                 start:start + ratio * width]
