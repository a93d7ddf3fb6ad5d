"""torch.compile check: graph breaks of the RefineNet head and FRRN.

Runs ``torch._dynamo.explain`` on

* ``head``: RefineNetHead (4-cascaded) on backbone-like features,
* ``frrn``: the FRRN backbone followed by FRRNHead,
* ``refinenet-model`` / ``frrn-model``: the whole segmentor of a config
  (``model(x, mode='tensor')``; MMSeg's ResNet and data flow included),
* ``frrn-loss``: FRRN's forward and the bootstrapped cross-entropy loss,

in train and eval mode, fp32 and bf16 / fp16 autocast, NCHW and
channels_last, with_cp off and on, and counts the graphs and graph breaks,
and the breaks whose innermost frame is in ``mmseg_refinenet`` ("our
code"). With ``--speed`` it also times ``torch.compile``'d eval forwards
against eager ones.

``--checks grads`` compares the gradients of one training step compiled
by Inductor (or ``--grads-backend``) with eager ones (fp32, TF32 off), on

* ``maxpool-chain``: ``s1 + s2`` with ``s1 = conv(maxpool(x))`` and
  ``s2 = conv(maxpool(s1))``, stride-1 5x5 poolings, in plain PyTorch (no
  code of this project): the smallest case whose gradients Inductor's CPU
  backend (PyTorch 2.13) gets wrong, which tells whether the device's
  backend has that fault,
* ``crp`` / ``crp-conv_pool``: ChainedResidualPooling in both orders,
* ``head``: the narrow RefineNetHead (4 blocks),

the last three being what this project ships: they pool through
``recomputing_max_pool2d`` under ``torch.compile`` and must match (the
exit code is 1 otherwise). Writes records for ``benchmarks/render.py``,
after every case (a run cut short keeps what it did)::

    python benchmarks/check_compile.py --out benchmarks/results/compile.json
    python benchmarks/check_compile.py --size full --speed   # on a GPU
    python benchmarks/check_compile.py --checks grads --out grads.json

``--size small`` (the default) uses narrow modules on 64x64 inputs, the
same structure as the configs; ``--size full`` the configs' widths (FRRN A
at 256x512, the RefineNet-R101 head on the features of a 512x1024 image).
"""
import os.path as osp
import statistics
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
for path in (REPO, HERE):  # the plugin and the harness, without install
    if path not in sys.path:
        sys.path.insert(0, path)
from benchmark_models import Results  # noqa: E402

from harness.cli import (  # noqa: E402
    OneLineArgumentParser, fail, silence_library_notices)

silence_library_notices()


OURS = 'mmseg_refinenet'
SMALL_HEAD = dict(
    type='RefineNetHead', in_channels=[8, 16, 32, 64], in_index=[0, 1, 2, 3],
    channels=8, adapt_channels=[8, 8, 8, 16], num_classes=3,
    input_dropout_ratio=0.5, input_dropout_index=[2, 3])
SMALL_FRRN = dict(type='FRRN', arch=None, encoder=((1, 8), (1, 16)),
                  decoder=((1, 8), ), base_channels=8, residual_channels=4,
                  num_stem_units=1)
FRRN_A_CONFIG = 'configs/frrn/frrn-a_1xb3-45k_cityscapes-256x512.py'
# (mode, dtype, channels_last, with_cp): every pair of mode, dtype and
# memory format appears once, with_cp in one of the training cases
CASES = [('train', 'fp32', False, False), ('train', 'bf16', True, True),
         ('eval', 'fp32', True, False), ('eval', 'bf16', False, False)]
# compiled gradients further from eager than this (relative to the largest
# magnitude of the gradient) are wrong; the fault this looks for is off by
# 26-100 % (PyTorch 2.13, CPU)
GRAD_TOLERANCE = 1e-3


def _tensor_mode(model):
    """The segmentor as a module of the image: ``model(x, 'tensor')``."""
    import torch

    class TensorMode(torch.nn.Module):

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x, mode='tensor')

    return TensorMode(model)


def build_cases(size, device):
    """(name, module, inputs builder, shape) of every module to check."""
    import torch
    from mmseg.registry import MODELS
    from harness import measure, segmentors

    if size == 'small':
        head = MODELS.build(SMALL_HEAD)
        widths, image = [8, 16, 32, 64], (64, 64)
        frrn_cfg = SMALL_FRRN
        frrn_head = dict(type='FRRNHead', in_channels=8, channels=8,
                         num_classes=3)
        models = [
            ('refinenet-model', 'configs/quickstart/'
             'refinenet_r18_1xb8-300it_synthetic-64x64.py', (64, 64), None),
            ('frrn-model', FRRN_A_CONFIG,
             (64, 64), SMALL_FRRN),
        ]
    else:
        head = MODELS.build(dict(
            type='RefineNetHead', in_channels=[256, 512, 1024, 2048],
            in_index=[0, 1, 2, 3], channels=256,
            adapt_channels=[256, 256, 256, 512], num_classes=19,
            input_dropout_ratio=0.5, input_dropout_index=[2, 3]))
        widths, image = [256, 512, 1024, 2048], (512, 1024)
        frrn_cfg = dict(type='FRRN', arch='A')
        frrn_head = dict(type='FRRNHead', in_channels=48, num_classes=19)
        models = [
            ('refinenet-model', 'configs/refinenet/'
             'refinenet_r101_4xb2-80k_cityscapes-512x1024.py', (512, 1024),
             None),
            ('frrn-model', FRRN_A_CONFIG,
             (256, 512), None),
        ]
    frrn_image = (64, 64) if size == 'small' else (256, 512)

    class FRRNThenHead(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone = MODELS.build(frrn_cfg)
            self.head = MODELS.build(frrn_head)

        def forward(self, x):
            return self.head(self.backbone(x))

    def features(channels_last):
        h, w = image
        feats = [torch.rand(2, c, h // 4 // 2**i, w // 4 // 2**i,
                            device=device) for i, c in enumerate(widths)]
        return ([
            f.contiguous(memory_format=measure.memory_format(channels_last))
            for f in feats
        ], )

    def images(shape):
        def make(channels_last):
            return (measure.make_input(2, shape, device, channels_last), )
        return make

    cases = [('head', head, features, image),
             ('frrn', FRRNThenHead(), images(frrn_image), frrn_image)]
    for name, config, shape, backbone in models:
        cfg = segmentors.load_config(osp.join(REPO, config), 19)
        if backbone is not None:  # a narrow FRRN of the same structure
            cfg.model.backbone = backbone
            cfg.model.decode_head.update(in_channels=8, channels=8)
        # with the value checks of a user's model: whether they break the
        # graph is one of the questions
        model = segmentors.build_model(cfg, config, device, value_checks=True)
        cases.append((name, _tensor_mode(model), images(shape), shape))
    return [(n, m.to(device), f, s) for n, m, f, s in cases]


def loss_case(device):
    """FRRN (small) + FRRNHead + bootstrapped cross-entropy, as ``loss``."""
    import torch
    from mmseg.registry import MODELS

    from harness import measure
    backbone = MODELS.build(SMALL_FRRN).to(device)
    head = MODELS.build(dict(
        type='FRRNHead', in_channels=8, channels=8, num_classes=3,
        loss_decode=dict(type='BootstrappedCrossEntropyLoss',
                         k=512))).to(device)
    samples = measure.make_seg_samples(2, (64, 64), 3, device)

    class Loss(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.backbone, self.head = backbone, head

        def forward(self, x):
            losses = self.head.loss(self.backbone(x), samples, dict())
            return sum(v for k, v in losses.items() if 'loss' in k)

    def make(channels_last):
        return (measure.make_input(2, (64, 64), device, channels_last), )

    return ('frrn-loss', Loss(), make, (64, 64))


def gradient_cases(device):
    """(name, module, inputs, ours) of the compiled-gradient check."""
    import torch
    from mmseg.registry import MODELS

    class MaxPoolChain(torch.nn.Module):
        """``s1 + s2``, ``s1 = conv(maxpool(x))``, ``s2 = conv(maxpool(s1))``
        (stride-1 5x5 poolings, 3x3 convolutions): plain PyTorch."""

        def __init__(self, channels):
            super().__init__()
            self.pool = torch.nn.MaxPool2d(5, stride=1, padding=2)
            self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=1,
                                         bias=False)
            self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1,
                                         bias=False)

        def forward(self, x):
            s1 = self.conv1(self.pool(x))
            return s1 + self.conv2(self.pool(s1))

    class Head(torch.nn.Module):  # the features as separate arguments

        def __init__(self):
            super().__init__()
            self.head = MODELS.build(dict(SMALL_HEAD, input_dropout_ratio=0.,
                                          dropout_ratio=0.))

        def forward(self, *feats):
            return self.head(list(feats))

    def crp(order):
        return MODELS.build(dict(type='ChainedResidualPooling', channels=8,
                                 order=order))

    torch.manual_seed(0)
    feats = [torch.rand(2, c, 16 // 2**i, 24 // 2**i)
             for i, c in enumerate(SMALL_HEAD['in_channels'])]
    cases = [('maxpool-chain', MaxPoolChain(4), [torch.randn(2, 4, 8, 8)],
              False),
             ('crp', crp('pool_conv'), [torch.randn(2, 8, 8, 8)], True),
             ('crp-conv_pool', crp('conv_pool'), [torch.randn(2, 8, 8, 8)],
              True),
             ('head', Head(), feats, True)]
    return [(name, module.to(device), [t.to(device) for t in inputs], ours)
            for name, module, inputs, ours in cases]


def check_gradients(name, module, inputs, ours, env, backend='inductor'):
    """The record of one compiled-gradient comparison."""
    from harness import compile_check
    record = dict(env, suite='compile-grads', model=name, mode='train',
                  dtype='fp32', channels_last=False, with_cp=False,
                  shape=list(inputs[0].shape[-2:]),
                  backend=getattr(backend, '__name__', str(backend)),
                  ours=ours, tolerance=GRAD_TOLERANCE)
    try:
        result = compile_check.compiled_gradient_error(module, inputs, backend)
    except Exception as e:  # e.g. no C++ compiler for Inductor
        return dict(record, status='error',
                    reason=f'{type(e).__name__}: {e}'[:300])
    matches = result['max_rel_error'] <= GRAD_TOLERANCE
    return dict(record, **result, status='ok' if matches else 'mismatch',
                reason=None)


def our_breaks(reasons):
    return sum(1 for r in reasons if f'/{OURS}/' in r)


def check(name, module, make_inputs, shape, mode, dtype, channels_last,
          with_cp, device, speed, env):
    import torch

    from harness import compile_check, measure, segmentors
    module.train(mode == 'train')
    segmentors.set_with_cp(module, with_cp)
    measure.prepare(module, channels_last)
    inputs = make_inputs(channels_last)
    with measure.autocast(device,
                          dtype), torch.set_grad_enabled(mode == 'train'):
        result = compile_check.graph_breaks(module, *inputs)
    record = dict(env, suite='compile', status='ok', reason=None,
                  model=name, mode=mode, dtype=dtype,
                  channels_last=channels_last, with_cp=with_cp,
                  shape=list(shape), graphs=result['graphs'],
                  breaks=result['breaks'],
                  breaks_in_our_code=our_breaks(result['reasons']),
                  reasons=result['reasons'], compiled_over_eager=None)
    if speed and mode == 'eval':
        record.update(compile_speed(module, inputs, device, dtype))
    return record


def compile_speed(module, inputs, device, dtype, repeats=10):
    """Median eval latency of torch.compile'd / eager module."""
    import torch
    import torch._dynamo as dynamo

    from harness import measure

    def timer(fn):
        def run():
            with torch.no_grad(), measure.autocast(device, dtype):
                fn(*inputs)
        return statistics.median(measure.timed(run, 3, repeats, device))

    eager = timer(module)
    dynamo.reset()
    compiled = torch.compile(module)
    try:
        fast = timer(compiled)
    except Exception as e:  # e.g. no C++ compiler for inductor
        return dict(compile_error=f'{type(e).__name__}: {e}'[:300])
    return dict(eager_ms=eager, compiled_ms=fast,
                compiled_over_eager=fast / eager)


def parse_args(argv=None):
    parser = OneLineArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checks', nargs='+', choices=['breaks', 'grads'],
                        default=['breaks'],
                        help='graph breaks (torch._dynamo.explain) and / or '
                        'compiled against eager gradients (Inductor)')
    parser.add_argument('--grads-backend', default='inductor',
                        help='torch.compile backend of the gradient check '
                        '(aot_eager: AOT autograd without code generation)')
    parser.add_argument('--size', choices=['small', 'full'], default='small',
                        help='of the graph-break check')
    parser.add_argument('--dtypes', nargs='+', choices=['bf16', 'fp16'],
                        default=['bf16'],
                        help='low-precision dtypes to check besides fp32')
    parser.add_argument('--all-cases', action='store_true',
                        help='every combination of mode, dtype, memory '
                        'format and with_cp (default: a covering set)')
    parser.add_argument('--speed', action='store_true',
                        help='also time torch.compile against eager (eval)')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'],
                        default='auto')
    parser.add_argument('--out', help='JSON file for benchmarks/render.py')
    return parser.parse_args(argv)


def cases_for(args):
    if args.all_cases:
        return [(mode, dtype, cl, cp)
                for mode in ('train', 'eval')
                for dtype in ['fp32'] + args.dtypes for cl in (False, True)
                for cp in ((False, True) if mode == 'train' else (False, ))]
    cases = []
    for mode, dtype, cl, cp in CASES:
        if dtype == 'bf16':
            cases += [(mode, d, cl, cp) for d in args.dtypes]
        else:
            cases.append((mode, dtype, cl, cp))
    return cases


def main(argv=None):
    args = parse_args(argv)
    from mmseg.utils import register_all_modules
    register_all_modules()
    import torch

    import mmseg_refinenet  # noqa: F401
    from harness import machine
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if 'grads' in args.checks:
        import torch._dynamo as dynamo
        if args.grads_backend not in dynamo.list_backends(exclude_tags=()):
            fail(f'--grads-backend: {args.grads_backend!r} is not a '
                 'torch.compile backend (for instance: '
                 f'{", ".join(dynamo.list_backends())})')
    env = machine.environment(device, REPO, check_dirty=False)
    env['command'] = ' '.join(['python'] + sys.argv)
    results = Results(args.out)  # written after every case

    def add(record, line):
        results.add(record)
        print(line, flush=True)

    if 'breaks' in args.checks:
        cases = build_cases(args.size, device) + [loss_case(device)]
    else:
        cases = []
    for name, module, make_inputs, shape in cases:
        for mode, dtype, cl, cp in cases_for(args):
            if name == 'frrn-loss' and mode == 'eval':
                continue
            rec = check(name, module, make_inputs, shape, mode, dtype, cl,
                        cp, device, args.speed, env)
            line = (f'{name:16s} {mode:5s} {dtype:4s} '
                    f'{"channels_last" if cl else "NCHW":13s} '
                    f'with_cp {"on " if cp else "off"}: {rec["graphs"]} '
                    f'graph(s), {rec["breaks"]} break(s), '
                    f'{rec["breaks_in_our_code"]} in our code')
            if rec.get('compiled_over_eager') is not None:
                line += (f'; compiled {rec["compiled_ms"]:.2f} ms vs eager '
                         f'{rec["eager_ms"]:.2f} ms')
            add(rec, '\n'.join([line] + [f'    {r}' for r in rec['reasons']]))
    status = 0
    breaks = [r for r in results.records if r['suite'] == 'compile']
    if breaks:
        ours = sum(r['breaks_in_our_code'] for r in breaks)
        total = sum(r['breaks'] for r in breaks)
        print(f'{len(breaks)} cases: {total} graph break(s), {ours} in our '
              'code', flush=True)
        status = 1 if ours else 0

    if 'grads' in args.checks:
        for name, module, inputs, ours in gradient_cases(device):
            t0 = time.perf_counter()
            rec = check_gradients(name, module, inputs, ours, env,
                                  args.grads_backend)
            rec['seconds'] = round(time.perf_counter() - t0, 1)
            if rec['status'] == 'error':
                line = f'{name:16s} compiled gradients: {rec["reason"]}'
            else:
                line = (f'{name:16s} compiled gradients {rec["status"]}: '
                        f'max error {rec["max_rel_error"]:.2e} of the '
                        f'largest magnitude ({rec["worst"]}, '
                        f'{100 * rec["wrong_fraction"]:.0f} % of its '
                        f'elements off); {rec["seconds"]} s')
            if not ours:
                line += ' [plain PyTorch: a fault of the backend]'
            add(rec, line)
        wrong = [r['model'] for r in results.records
                 if r['suite'] == 'compile-grads' and r['ours']
                 and r['status'] != 'ok']
        if wrong:
            print('compiled gradients wrong or not computed for: '
                  + ', '.join(wrong), flush=True)
            status = 1
    return status


if __name__ == '__main__':
    sys.exit(main())
