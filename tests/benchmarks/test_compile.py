"""RefineNetHead and FRRN trace into one graph under torch.compile.

``torch._dynamo.explain`` on a narrow RefineNetHead (4-cascaded, input
dropout, CRP) and a narrow FRRN + FRRNHead, in train and eval mode, fp32
and under bf16 autocast, with NCHW and channels_last inputs and with
gradient checkpointing: every case must give a single graph without graph
breaks. ``benchmarks/check_compile.py`` runs the same check on whole
segmentors, the loss and the full-size modules.

Compiled (Inductor) training must give the eager gradients: the CRP in
both orders, with and without recomputation, and (slow) a whole head.
``check_compile.py --checks grads`` writes the same comparison as records;
its tests run it with AOT autograd only, and check that a backend giving
wrong gradients is caught.
"""
import json
import os.path as osp

import pytest
import torch

from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401
from harness.compile_check import eager_and_compiled_gradients, graph_breaks

register_all_modules()

# with the opt-in NaN / Inf checks on: they must not break the graph
HEAD = dict(type='RefineNetHead', in_channels=[8, 16, 32, 64],
            in_index=[0, 1, 2, 3], channels=8, adapt_channels=[8, 8, 8, 16],
            num_classes=3, input_dropout_ratio=0.5,
            input_dropout_index=[2, 3], check_finite=True)
FRRN = dict(type='FRRN', arch=None, encoder=((1, 8), (1, 16)),
            decoder=((1, 8), ), base_channels=8, residual_channels=4,
            num_stem_units=1, check_finite=True)

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
                                      num_classes=3, check_finite=True))

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
    _, eager, compiled = eager_and_compiled_gradients(
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

    _, eager, compiled = eager_and_compiled_gradients(Head(), feats)
    for e, c in zip(eager, compiled):
        torch.testing.assert_close(c, e, rtol=1e-4, atol=1e-4)


CHECK_COMPILE = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
    'benchmarks', 'check_compile.py')


def test_check_compile_gradient_records(run_script_main, render_page,
                                        tmp_path):
    """``check_compile.py --checks grads``, with AOT autograd and no code
    generation (Inductor's would take minutes on 2 cores): one record per
    module, all matching, written as the run goes."""
    out = tmp_path / 'grads.json'
    proc = run_script_main(CHECK_COMPILE, '--checks', 'grads',
                           '--grads-backend', 'aot_eager', '--device', 'cpu',
                           '--out', out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = json.loads(out.read_text())
    assert [(r['model'], r['ours']) for r in records] == [
        ('maxpool-chain', False), ('crp', True), ('crp-conv_pool', True),
        ('head', True)]
    for rec in records:
        assert rec['suite'] == 'compile-grads'
        assert rec['backend'] == 'aot_eager'
        assert rec['status'] == 'ok', rec
        assert rec['max_rel_error'] <= 1e-5 and rec['worst']
    assert 'plain PyTorch' in proc.stdout

    text = render_page(out)
    assert '## Compiled gradients' in text
    assert '| cpu | ' in text and '| crp-conv_pool | yes | aot_eager |' in text
    assert ('compiled gradients (aot_eager): 3 of 3 of our modules match '
            'eager, plain-PyTorch maxpool-chain right') in text


def test_check_compile_gradients_catch_a_wrong_backend(load_script):
    """A backend whose compiled forward doubles the output (so the
    gradients of sum(out ** 2) are 4x): the record says mismatch."""
    script = load_script(CHECK_COMPILE)

    def doubling(gm, example_inputs):
        def run(*args):
            outputs = gm(*args)
            return type(outputs)(2 * o for o in outputs)
        return run

    name, module, inputs, ours = script.gradient_cases('cpu')[1]
    rec = script.check_gradients(name, module, inputs, ours, {}, doubling)
    assert rec['status'] == 'mismatch' and rec['backend'] == 'doubling'
    assert rec['max_rel_error'] == pytest.approx(3, rel=1e-4)
    # the input's gradient, zero where the CRP's leading ReLU cut
    assert rec['worst'] == 'input.0' and rec['wrong_fraction'] > 0.4


def test_check_compile_refuses_an_unknown_backend(run_script_main):
    proc = run_script_main(CHECK_COMPILE, '--checks', 'grads',
                           '--grads-backend', 'fastest')
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --grads-backend: 'fastest'")
