"""The max-poolings that keep less for the backward pass: F.max_pool2d's
results with less kept.

window_max_pool2d (FRRN): one byte per output kept. recomputing_max_pool2d
(the CRP): the input alone kept, through both of its implementations (the
autograd function everywhere, the custom operator where torch has one)."""
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F

from mmseg_refinenet.models.utils import (recomputing_max_pool2d,
                                          window_max_pool2d)
from mmseg_refinenet.models.utils import max_pooling

# the implementations of recomputing_max_pool2d this torch has
RECOMPUTING_PATHS = [
    False,
    pytest.param(
        True,
        marks=pytest.mark.skipif(
            not max_pooling.HAS_CUSTOM_OP,
            reason='custom operators need torch >= 2.4'))
]


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


# -- recomputing_max_pool2d -------------------------------------------------


@pytest.mark.parametrize('custom_op', RECOMPUTING_PATHS)
@pytest.mark.parametrize('kernel_size', [1, 3, 5])
@pytest.mark.parametrize('dtype,channels_last', [(torch.float32, False),
                                                 (torch.float32, True),
                                                 (torch.bfloat16, False)])
def test_recomputing_same_output_and_gradient_as_max_pool2d(
        custom_op, kernel_size, dtype, channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 9).to(dtype)
    # ties: after a ReLU whole windows hold zeros
    x = F.relu(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(2, 3, 7, 9).to(dtype)
    results = []
    for pool in (
            lambda t, k: recomputing_max_pool2d(t, k, custom_op=custom_op),
            lambda t, k: F.max_pool2d(t, k, 1, k // 2)):
        leaf = x.detach().clone().requires_grad_()
        out, saved = _saved(lambda: pool(leaf, kernel_size))
        out.backward(grad)
        results.append((out, leaf.grad, saved, leaf))
    (out, grad_in, saved, leaf), (ref_out, ref_grad_in, ref_saved, _) = results
    assert torch.equal(out, ref_out)
    assert torch.equal(grad_in, ref_grad_in)
    # the input alone kept; F.max_pool2d keeps it and int64 indices
    assert len(saved) == 1 and saved[0] is leaf
    assert torch.int64 in [t.dtype for t in ref_saved]


@pytest.mark.parametrize('custom_op', RECOMPUTING_PATHS)
def test_recomputing_keeps_only_its_input_for_backward(custom_op):
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    out, saved = _saved(
        lambda: recomputing_max_pool2d(x, 5, custom_op=custom_op))
    assert len(saved) == 1 and saved[0] is x
    assert out.grad_fn is not None


@pytest.mark.parametrize('custom_op', RECOMPUTING_PATHS)
def test_recomputing_gradcheck(custom_op):
    x = torch.randn(1, 2, 5, 6, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: recomputing_max_pool2d(t, 3, custom_op=custom_op), x)


@pytest.mark.skipif(not max_pooling.HAS_CUSTOM_OP,
                    reason='custom operators need torch >= 2.4')
def test_recomputing_operator_registration_is_valid():
    # schema, fake (meta) kernel, autograd registration, as PyTorch checks
    # custom operators
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    torch.library.opcheck(torch.ops.mmseg_refinenet.recomputing_max_pool2d,
                          (x, 3))


@pytest.mark.parametrize('has_custom_op', [False, True])
@pytest.mark.parametrize('compiling', [False, True])
def test_recomputing_custom_op_only_while_compiling(monkeypatch,
                                                    has_custom_op,
                                                    compiling):
    """The custom operator where torch has one and torch.compile traces
    the call; the autograd function otherwise."""
    calls = []

    def fake_op(x, kernel_size):
        calls.append('op')
        return F.max_pool2d(x, kernel_size, 1, kernel_size // 2)

    monkeypatch.setattr(max_pooling, 'HAS_CUSTOM_OP', has_custom_op)
    monkeypatch.setattr(max_pooling, '_pool_op', fake_op, raising=False)
    monkeypatch.setattr(max_pooling, 'is_compiling', lambda: compiling)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    out = recomputing_max_pool2d(x, 3)
    if has_custom_op and compiling:
        assert calls == ['op']
    else:
        assert calls == []
        assert type(out.grad_fn).__name__ == '_RecomputingMaxPool2dBackward'


def test_recomputing_custom_op_names_the_torch_it_needs(monkeypatch):
    monkeypatch.setattr(max_pooling, 'HAS_CUSTOM_OP', False)
    with pytest.raises(RuntimeError, match='torch 2.4'):
        recomputing_max_pool2d(torch.zeros(1, 1, 4, 4), 3, custom_op=True)


@pytest.mark.parametrize('kernel_size', [4, 0, 3.0, True])
def test_recomputing_rejects_bad_kernels(kernel_size):
    with pytest.raises(ValueError, match='kernel_size must be a positive odd'):
        recomputing_max_pool2d(torch.zeros(1, 1, 4, 4), kernel_size)
