"""recomputing_max_pool2d: the CRP's stride-1 pooling as a custom operator
(what the CRP runs under torch.compile): PyTorch's own output and gradient,
the input alone kept for the backward pass, a valid operator registration."""
import pytest
import torch
import torch.nn.functional as F

from mmseg_refinenet.models.utils import recomputing_max_pool2d


@pytest.mark.parametrize('kernel_size', [1, 3, 5])
@pytest.mark.parametrize('dtype,channels_last', [(torch.float32, False),
                                                 (torch.float32, True),
                                                 (torch.bfloat16, False)])
def test_same_output_and_gradient_as_max_pool2d(kernel_size, dtype,
                                                channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 9).to(dtype)
    # ties: after a ReLU whole windows hold zeros
    x = F.relu(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(2, 3, 7, 9).to(dtype)
    results = []
    for pool in (recomputing_max_pool2d,
                 lambda t, k: F.max_pool2d(t, k, 1, k // 2)):
        leaf = x.detach().clone().requires_grad_()
        out = pool(leaf, kernel_size)
        out.backward(grad)
        results.append((out, leaf.grad))
    (out, grad_in), (ref_out, ref_grad_in) = results
    assert torch.equal(out, ref_out)
    assert torch.equal(grad_in, ref_grad_in)


def test_keeps_only_its_input_for_backward():
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        recomputing_max_pool2d(x, 5)
    assert len(saved) == 1 and saved[0] is x


def test_operator_registration_is_valid():
    # schema, fake (meta) kernel, autograd registration, as PyTorch checks
    # custom operators
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    torch.library.opcheck(torch.ops.mmseg_refinenet.recomputing_max_pool2d,
                          (x, 3))


def test_rejects_even_kernels():
    with pytest.raises(ValueError, match='odd kernel_size'):
        recomputing_max_pool2d(torch.zeros(1, 1, 4, 4), 4)
