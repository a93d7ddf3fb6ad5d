"""Each RefineNet block computes what the paper (Sec. 3.2) and the released
models say, checked against hand-written functional code."""
import collections

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmseg_refinenet.models.blocks import (ChainedResidualPooling,
                                           MultiResolutionFusion,
                                           RefineNetBlock, ResidualConvUnit)
from harness.memory import kept_bytes


def _randomize(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return module


def test_rcu_matches_formula_and_has_official_biases():
    rcu = _randomize(ResidualConvUnit(8))
    c1, c2 = rcu.conv1.conv, rcu.conv2.conv
    assert c1.bias is not None and c2.bias is None
    assert not rcu.conv1.with_norm and not rcu.conv2.with_norm
    x = torch.randn(2, 8, 9, 11)
    expected = x + F.conv2d(
        F.relu(F.conv2d(F.relu(x), c1.weight, c1.bias, padding=1)),
        c2.weight, None, padding=1)
    x_before = x.clone()
    torch.testing.assert_close(rcu(x), expected)
    # the pre-activation must not overwrite the identity input
    assert torch.equal(x, x_before)


@pytest.mark.parametrize('norm_cfg', [None, dict(type='BN')])
def test_zero_init_starts_as_identity_with_and_without_norm(norm_cfg):
    """zero_init: the RCU starts as the identity and the CRP as act(x).
    With a norm layer it is the norm's scale that is zeroed: a zeroed
    convolution before BN would leave BN normalising zeros (gradients
    scaled by 1/sqrt(eps), the branch at full scale after one step)."""
    torch.manual_seed(0)
    rcu = ResidualConvUnit(8, norm_cfg=norm_cfg, zero_init=True)
    crp = ChainedResidualPooling(8, num_stages=2, norm_cfg=norm_cfg,
                                 zero_init=True)
    for module in (rcu, crp):
        module.init_weights()
        module.train()
    x = torch.randn(2, 8, 9, 11, requires_grad=True)
    torch.testing.assert_close(rcu(x), x)
    torch.testing.assert_close(crp(x), F.relu(x))
    last = [rcu.conv2] + list(crp.convs)
    if norm_cfg is None:
        assert all(not m.conv.weight.any() for m in last)
        return
    assert all(m.conv.weight.any() and not m.norm.weight.any()
               for m in last)
    # gradients stay at the scale of the inputs: BN's scale learns first
    rcu(x).square().sum().backward()
    grad = rcu.conv2.norm.weight.grad
    assert grad.abs().max() > 0
    assert rcu.conv2.conv.weight.grad.abs().max() == 0
    assert grad.abs().max() < 1e3


def test_rcu_with_cp_same_output_and_grad():
    rcu = _randomize(ResidualConvUnit(4))
    rcu_cp = _randomize(ResidualConvUnit(4, with_cp=True))
    x = torch.randn(1, 4, 6, 6, requires_grad=True)
    y1 = rcu(x).square().sum()
    g1 = torch.autograd.grad(y1, [x, rcu.conv1.conv.weight])
    y2 = rcu_cp(x).square().sum()
    g2 = torch.autograd.grad(y2, [x, rcu_cp.conv1.conv.weight])
    torch.testing.assert_close(y1, y2)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_fusion_single_input_passes_through():
    fusion = MultiResolutionFusion([16])
    assert len(fusion.convs) == 0 and fusion.out_channels == 16
    x = torch.randn(1, 16, 5, 5)
    assert fusion([x]) is x
    with pytest.raises(ValueError, match='single-input'):
        MultiResolutionFusion([16], out_channels=8)


def test_fusion_convs_upsamples_to_largest_and_sums():
    fusion = _randomize(MultiResolutionFusion([32, 16]))
    assert fusion.out_channels == 16  # the smallest input width
    assert all(m.conv.bias is None for m in fusion.convs)
    low = torch.randn(2, 32, 4, 6)
    high = torch.randn(2, 16, 8, 11)
    out = fusion([low, high])
    assert out.shape == (2, 16, 8, 11)
    w0, w1 = fusion.convs[0].conv.weight, fusion.convs[1].conv.weight
    expected = F.interpolate(
        F.conv2d(low, w0, padding=1), size=(8, 11), mode='bilinear',
        align_corners=False) + F.conv2d(high, w1, padding=1)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('order', ['pool_conv', 'conv_pool'])
@pytest.mark.parametrize('stages', [1, 2, 4])
def test_crp_chain(order, stages):
    crp = _randomize(ChainedResidualPooling(6, num_stages=stages, order=order))
    assert crp.num_stages == stages
    assert all(m.conv.bias is None for m in crp.convs)
    x = torch.randn(1, 6, 7, 9)
    top = F.relu(x)
    expected = top.clone()
    for m in crp.convs:
        if order == 'pool_conv':
            top = F.conv2d(F.max_pool2d(top, 5, 1, 2), m.conv.weight,
                           padding=1)
        else:
            top = F.max_pool2d(
                F.conv2d(top, m.conv.weight, padding=1), 5, 1, 2)
        expected = expected + top
    x_before = x.clone()
    torch.testing.assert_close(crp(x), expected)
    assert torch.equal(x, x_before)


def _saved_dtypes(fn):
    """The dtypes of the tensors autograd keeps for the backward of fn(),
    outside checkpointed regions."""
    dtypes = []

    def pack(tensor):
        dtypes.append(tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, dtypes


class _OpCounter(TorchDispatchMode):
    """Counts the ATen ops that run under it."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


# maps of the input's size that a 4-stage CRP leaves alive after its
# forward pass (its output included). Without recomputation: act(x), and
# per stage the pooling's input, its int64 indices (2 maps in fp32) and the
# pooled map. With it, 'pool_conv': act(x) and the stage outputs fed to the
# next stage; 'conv_pool' (the pooling alone recomputed): act(x), and per
# stage the convolution's output and the pooled map
KEPT_MAPS = {('pool_conv', False): 17, ('pool_conv', True): 5,
             ('conv_pool', False): 17, ('conv_pool', True): 9}


@pytest.mark.parametrize('order', ['pool_conv', 'conv_pool'])
def test_crp_recompute_pooling_keeps_less_same_result(order):
    crps = [
        _randomize(ChainedResidualPooling(6, order=order,
                                          recompute_pooling=flag))
        for flag in (False, True)
    ]
    x = torch.randn(2, 6, 7, 9, requires_grad=True)
    results = []
    for flag, crp in zip((False, True), crps):
        out, dtypes = _saved_dtypes(lambda: crp(x))
        # on a leaf of its own: the tracker hooks the tensors it sees
        x_kept = x.detach().requires_grad_()
        _, kept = kept_bytes(lambda: crp(x_kept), crp, x_kept)
        assert kept == KEPT_MAPS[order, flag] * x.nbytes, (flag, kept)
        with _OpCounter() as ops:
            grads = torch.autograd.grad(out.square().sum(),
                                        [x] + list(crp.parameters()))
        results.append((out, grads, dtypes, ops.counts))
    (out0, grads0, dtypes0, ops0), (out1, grads1, dtypes1, ops1) = results
    # without recomputation every stage keeps int64 argmax indices ...
    assert dtypes0.count(torch.int64) == crps[0].num_stages
    assert ops0['max_pool2d_with_indices'] == 0
    # ... with it none, and the same output and gradients
    assert torch.int64 not in dtypes1
    torch.testing.assert_close(out1, out0, rtol=0, atol=0)
    for a, b in zip(grads1, grads0):
        torch.testing.assert_close(a, b)
    # the backward pass recomputes every pooling and no convolution
    assert ops1['max_pool2d_with_indices'] == crps[1].num_stages
    assert ops1['convolution'] == 0
    assert ops1['convolution_backward'] == crps[1].num_stages
    # no recomputation where nothing needs gradients (inference)
    with torch.no_grad():
        torch.testing.assert_close(crps[1](x), out0)


def _has_mem_tracker():
    try:
        import torch.distributed._tools.mem_tracker  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_mem_tracker(),
                    reason='MemTracker needs PyTorch >= 2.5')
@pytest.mark.parametrize('order', ['pool_conv', 'conv_pool'])
@pytest.mark.parametrize('flag', [False, True])
@pytest.mark.parametrize('norm_cfg', [None, dict(type='BN')])
def test_crp_kept_bytes_without_mem_tracker_agree(order, flag, norm_cfg):
    """What the memory test measures where PyTorch has no MemTracker (the
    count from operator outputs) is what MemTracker measures."""
    from harness.memory import _kept_bytes_from_outputs
    crp = _randomize(ChainedResidualPooling(
        6, order=order, recompute_pooling=flag, norm_cfg=norm_cfg))
    x = torch.randn(2, 6, 7, 9, requires_grad=True)
    _, tracked = kept_bytes(lambda: crp(x), crp, x)
    x = x.detach().requires_grad_()
    _, counted = _kept_bytes_from_outputs(lambda: crp(x))
    assert counted == tracked > 0


def test_crp_recompute_pooling_with_norm_updates_statistics_once():
    """With norm layers a 'pool_conv' stage recomputes the pooling alone:
    recomputing the whole stage would run each norm layer twice per step
    and update its running statistics twice."""
    crps = [
        _randomize(ChainedResidualPooling(6, norm_cfg=dict(type='BN'),
                                          recompute_pooling=flag))
        for flag in (False, True)
    ]
    x = torch.randn(2, 6, 7, 9, requires_grad=True)
    outs = []
    for crp in crps:
        crp.train()
        out = crp(x)
        with _OpCounter() as ops:
            out.square().sum().backward()
        assert ops.counts['convolution'] == 0
        outs.append(out)
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    for bn0, bn1 in zip(crps[0].convs, crps[1].convs):
        assert int(bn1.norm.num_batches_tracked) == 1
        torch.testing.assert_close(bn1.norm.running_mean,
                                   bn0.norm.running_mean, rtol=0, atol=0)
        torch.testing.assert_close(bn1.norm.running_var,
                                   bn0.norm.running_var, rtol=0, atol=0)


def test_crp_rejects_bad_arguments():
    with pytest.raises(ValueError, match='num_stages'):
        ChainedResidualPooling(8, num_stages=0)
    with pytest.raises(ValueError, match='order'):
        ChainedResidualPooling(8, order='max_avg')
    with pytest.raises(ValueError, match='channels'):
        ChainedResidualPooling(0)


def test_refinenet_block_structure_and_shapes():
    block = RefineNetBlock([16, 32, 8], num_input_rcus=[2, 2, 0])
    assert [len(r) for r in block.input_rcus] == [2, 2, 0]
    assert len(block.output_rcus) == 3
    assert block.crp.num_stages == 4
    assert block.out_channels == 8
    feats = [
        torch.randn(1, 16, 10, 13),
        torch.randn(1, 32, 5, 7),
        torch.randn(1, 8, 3, 4)
    ]
    out = block(feats)
    assert out.shape == (1, 8, 10, 13)
    with pytest.raises(ValueError, match='built for 3 inputs'):
        block(feats[:2])


def test_refinenet_block_without_crp_and_bad_crp():
    block = RefineNetBlock([8], with_crp=False)
    assert block.crp is None
    assert block([torch.randn(1, 8, 4, 4)]).shape == (1, 8, 4, 4)
    with pytest.raises(ValueError, match='crp_stages=0 with with_crp=True'):
        RefineNetBlock([8], crp_stages=0)
    with pytest.raises(ValueError, match='num_input_rcus'):
        RefineNetBlock([8, 8], num_input_rcus=[2])
    with pytest.raises(ValueError, match='num_output_rcus'):
        RefineNetBlock([8], num_output_rcus=-1)


def test_refinenet_block_data_flow_order():
    """RCUs -> fusion -> CRP -> output RCUs, each fed by the previous."""
    block = RefineNetBlock([4, 4], num_input_rcus=1, num_output_rcus=1)
    calls = []  # (name, positional inputs, output) of every call
    modules = dict(rcu0=block.input_rcus[0], rcu1=block.input_rcus[1],
                   fusion=block.fusion, crp=block.crp,
                   output_rcus=block.output_rcus)
    for name, module in modules.items():
        module.register_forward_hook(
            lambda m, args, out, name=name: calls.append((name, args, out)))
    x0, x1 = torch.randn(1, 4, 4, 4), torch.randn(1, 4, 2, 2)
    out = block([x0, x1])
    assert [name for name, _, _ in calls] == list(modules)
    (_, (in0, ), rcu0), (_, (in1, ), rcu1), (_, (paths, ), fused), \
        (_, (crp_in, ), pooled), (_, (out_in, ), refined) = calls
    assert in0 is x0 and in1 is x1
    assert len(paths) == 2 and paths[0] is rcu0 and paths[1] is rcu1
    assert crp_in is fused and out_in is pooled and out is refined
