"""window_max_pool2d: F.max_pool2d's results, one byte per output kept."""
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F

from mmseg_refinenet.models.utils import window_max_pool2d


def _saved(fn):
    """fn()'s result and the tensors autograd keeps for its backward."""
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, saved


@pytest.mark.parametrize('shape,scale', [
    ((2, 3, 8, 12), 2),
    ((1, 4, 17, 19), 4),  # not multiples of the scale: remainder dropped
    ((2, 2, 64, 64), 32),  # 1024 window positions: int16
    ((3, 8, 6), 2),  # no batch dimension
])
@pytest.mark.parametrize('channels_last', [False, True])
def test_same_output_and_gradient_as_max_pool2d(shape, scale, channels_last):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    x[..., :4, :4] = 1.0  # ties: several maxima in a window
    x[..., 4:, :1] = 0.0
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    ours = x.clone().requires_grad_()
    ref = x.clone().requires_grad_()
    out, saved = _saved(lambda: window_max_pool2d(ours, scale))
    expected = F.max_pool2d(ref, scale, stride=scale)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    # the same element of each window gets the gradient, even among ties
    torch.testing.assert_close(ours.grad, ref.grad, rtol=0, atol=0)
    assert ours.grad.shape == x.shape
    # one small integer tensor per output: no input, no int64 indices
    assert len(saved) == 1
    assert saved[0].shape == out.shape
    assert saved[0].dtype == (torch.uint8 if scale <= 16 else torch.int16)
    if channels_last and x.dim() == 4:
        assert ours.grad.is_contiguous(memory_format=torch.channels_last)


def test_gradcheck():
    x = torch.randn(2, 3, 6, 10, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: window_max_pool2d(t, 2), x)


def test_input_not_kept_for_the_backward():
    z0 = torch.randn(1, 2, 8, 8, requires_grad=True)
    refs = []
    outs = []
    for pool in (window_max_pool2d, lambda t, s: F.max_pool2d(t, s, s)):
        z = z0 * 2
        refs.append(weakref.ref(z))
        outs.append(pool(z, 2))
        del z
    gc.collect()
    assert refs[0]() is None  # ours: freed once the caller drops it
    assert refs[1]() is not None  # F.max_pool2d keeps its input


def test_without_gradient_is_plain_max_pool2d():
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    with torch.no_grad():
        out, saved = _saved(lambda: window_max_pool2d(x, 4))
    assert out.grad_fn is None and saved == []
    torch.testing.assert_close(out, F.max_pool2d(x.detach(), 4))
    assert window_max_pool2d(x, 1) is x


def test_not_compact_is_max_pool2d():
    x = torch.randn(1, 2, 8, 8, requires_grad=True)
    out = window_max_pool2d(x, 2, compact=False)
    assert type(out.grad_fn).__name__ == 'MaxPool2DWithIndicesBackward0'
    torch.testing.assert_close(out, F.max_pool2d(x, 2), rtol=0, atol=0)
    assert window_max_pool2d(x, 1, compact=False) is x
