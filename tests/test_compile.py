"""RefineNetHead and FRRN trace into one graph under torch.compile.

``torch._dynamo.explain`` on a narrow RefineNetHead (4-cascaded, input
dropout, CRP) and a narrow FRRN + FRRNHead, in train and eval mode, fp32
and under bf16 autocast, with NCHW and channels_last inputs and with
gradient checkpointing: every case must give a single graph without graph
breaks. ``benchmarks/check_compile.py`` runs the same check on whole
segmentors, the loss and the full-size modules.
"""
import pytest
import torch

from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401
from mmseg_refinenet.utils.benchmark import graph_breaks

register_all_modules()

HEAD = dict(type='RefineNetHead', in_channels=[8, 16, 32, 64],
            in_index=[0, 1, 2, 3], channels=8, adapt_channels=[8, 8, 8, 16],
            num_classes=3, input_dropout_ratio=0.5,
            input_dropout_index=[2, 3])
FRRN = dict(type='FRRN', arch=None, encoder=((1, 8), (1, 16)),
            decoder=((1, 8), ), base_channels=8, residual_channels=4,
            num_stem_units=1)

# every pair of (mode, dtype, memory format) once; with_cp in training
CASES = [
    pytest.param('train', None, False, False, id='train-fp32-nchw'),
    pytest.param('train', torch.bfloat16, True, True,
                 id='train-bf16-channels_last-with_cp'),
    pytest.param('eval', None, True, False, id='eval-fp32-channels_last'),
    pytest.param('eval', torch.bfloat16, False, False, id='eval-bf16-nchw'),
]


class FRRNWithHead(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = MODELS.build(FRRN)
        self.head = MODELS.build(dict(type='FRRNHead', in_channels=8,
                                      num_classes=3))

    def forward(self, x):
        return self.head(self.backbone(x))


def _format(t, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return t.contiguous(memory_format=fmt)


def _explain(module, inputs, mode, dtype, with_cp):
    module.train(mode == 'train')
    for m in module.modules():
        if hasattr(m, 'with_cp'):
            m.with_cp = with_cp
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                        enabled=dtype is not None), \
            torch.set_grad_enabled(mode == 'train'):
        return graph_breaks(module, *inputs)


@pytest.mark.parametrize('mode,dtype,channels_last,with_cp', CASES)
def test_refinenet_head_has_no_graph_breaks(mode, dtype, channels_last,
                                            with_cp):
    torch.manual_seed(0)
    head = MODELS.build(HEAD)
    feats = [
        _format(torch.rand(2, c, 16 // 2**i, 24 // 2**i), channels_last)
        for i, c in enumerate([8, 16, 32, 64])
    ]
    if channels_last:
        head = head.to(memory_format=torch.channels_last)
    result = _explain(head, (feats, ), mode, dtype, with_cp)
    assert result['breaks'] == 0, result['reasons']
    assert result['graphs'] == 1


@pytest.mark.parametrize('mode,dtype,channels_last,with_cp', CASES)
def test_frrn_has_no_graph_breaks(mode, dtype, channels_last, with_cp):
    torch.manual_seed(0)
    model = FRRNWithHead()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = _format(torch.rand(2, 3, 32, 48), channels_last)
    result = _explain(model, (x, ), mode, dtype, with_cp)
    assert result['breaks'] == 0, result['reasons']
    assert result['graphs'] == 1


def test_graph_breaks_reports_the_reason_and_place():
    """The helper itself: a data-dependent branch breaks the graph."""

    def branchy(x):
        if x.sum() > 0:  # data-dependent: a graph break
            return x + 1
        return x - 1

    result = graph_breaks(branchy, torch.ones(3))
    assert result['breaks'] >= 1
    assert any('test_compile.py' in r for r in result['reasons'])


def _grads_eager_and_compiled(module, inputs):
    """Input and parameter gradients of sum(out ** 2), eager and compiled
    (Inductor, the default backend), on two copies of ``module``."""
    import copy
    results = []
    for compiled in (False, True):
        mod = copy.deepcopy(module).train()
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        fn = torch.compile(mod) if compiled else mod
        fn(*leaves).square().sum().backward()
        results.append([t.grad for t in leaves] +
                       [p.grad for p in mod.parameters()])
    torch._dynamo.reset()
    return results


@pytest.mark.parametrize('order', ['pool_conv', 'conv_pool'])
@pytest.mark.parametrize('recompute', [True, False])
def test_compiled_crp_gives_the_eager_gradients(order, recompute):
    """Inductor (PyTorch 2.13, CPU) miscompiled the backward of the CRP's
    chained stride-1 poolings: gradients off by 60-100 %, no error. The CRP
    pools through recomputing_max_pool2d under torch.compile, which it
    cannot fuse."""
    torch.manual_seed(0)
    crp = MODELS.build(dict(type='ChainedResidualPooling', channels=4,
                            order=order, recompute_pooling=recompute))
    eager, compiled = _grads_eager_and_compiled(
        crp, [torch.randn(2, 4, 8, 8)])
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compiled_refinenet_head_gives_the_eager_gradients():
    """The whole head, 4 blocks. Slow: 73 s of compiling with an empty
    Inductor cache on 2 cores."""
    torch.manual_seed(0)
    head = MODELS.build(dict(HEAD, input_dropout_ratio=0., dropout_ratio=0.))
    feats = [torch.rand(2, c, 16 // 2**i, 24 // 2**i)
             for i, c in enumerate([8, 16, 32, 64])]

    class Head(torch.nn.Module):  # features as separate arguments

        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, *feats):
            return self.head(list(feats))

    eager, compiled = _grads_eager_and_compiled(Head(), feats)
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-4)
