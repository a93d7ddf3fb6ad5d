"""Estimate the peak training memory of the benchmark's models, anywhere.

The memory goals of ``docs/benchmarks.md`` are GPU figures at sizes a CPU
cannot train at (512x1024, batch 2; FRRN B at 1024x2048). This script
estimates them on any machine in seconds per model: it runs two training
steps of each model on fake tensors (shapes, no data, no arithmetic)
under PyTorch's ``MemTracker`` and records the peak, what it is made of
(weights, gradients, optimiser state, activations) and which modules keep
the activations (:func:`harness.memory.estimate_training_memory` says
what the estimate leaves out). The GPU run of
``benchmark_models.py`` measures the same figure with
``torch.cuda.max_memory_allocated``::

    python benchmarks/estimate_memory.py [--models KEY ...] [--shape H W]
        [--batch N] [--out FILE]

It estimates every model at ``--shape`` and ``--batch`` with ``with_cp``
off; RefineNet-R101 and the FRRNs also with ``with_cp`` on; FRRN A also
at its paper size, and FRRN B at 1024x2048, batch 1 (the with_cp goal).
The records (suite ``memory-estimate``, fp32, NCHW) go to
``benchmarks/results/memory-estimate.json``, which
``python benchmarks/render.py`` turns into a section of
``docs/benchmarks.md`` and into the memory rows of its goals table.
"""
import datetime
import json
import os
import os.path as osp
import shlex
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from benchmark_models import (FRRN_B_FULL, MODEL_TABLE, REFERENCE,  # noqa
                              config_path, error_text,
                              models_parser, progress, resolve_models)

from harness.cli import fail, positive_int  # noqa: E402

SCHEMA_VERSION = 1
SUITE = 'memory-estimate'
# models also estimated with with_cp on, at --shape and --batch
WITH_CP_KEYS = ('refinenet_r101', 'frrn_a', 'frrn_b')
METHOD = ('FakeTensorMode + MemTracker over two training steps (fp32, '
          'NCHW, SGD with momentum): an estimate without cuDNN workspaces')


def parse_args(argv=None):
    parser = models_parser(__doc__.split('\n')[0])
    parser.add_argument('--shape', type=positive_int, nargs=2,
                        default=[512, 1024], metavar=('H', 'W'))
    parser.add_argument('--batch', type=positive_int, default=2,
                        help='training batch (default 2, as the goal)')
    parser.add_argument('--reference',
                        help='model key or label of the ratios (default: '
                        f'{REFERENCE} when selected, else the first model)')
    parser.add_argument('--no-paper-sizes', action='store_true',
                        help='only --shape: not FRRN A at 256x512 nor '
                        'FRRN B at 1024x2048')
    parser.add_argument('--out', default=osp.join(
        REPO, 'benchmarks', 'results', 'memory-estimate.json'))
    parser.add_argument('--no-git-status', action='store_true',
                        help='do not run git status for the dirty flag')
    args = parser.parse_args(argv)
    if args.batch < 2:
        # BatchNorm in training mode needs more than one value per channel
        parser.error('--batch must be 2 or more (training BatchNorm)')
    args.models = resolve_models(args.models or list(MODEL_TABLE))
    return args


def plan(args):
    """(model, shape, batch, with_cp) for every estimate, in order."""
    shape = tuple(args.shape)
    runs = [(model, shape, args.batch, False) for model in args.models]
    for model in args.models:
        if model['key'] in WITH_CP_KEYS:
            runs.append((model, shape, args.batch, True))
    if not args.no_paper_sizes:
        # FRRN A at its paper size (FRRN B's, 512x1024, is the default
        # --shape) and FRRN B at full resolution, batch 1 (the with_cp goal)
        extra = dict(frrn_a=(MODEL_TABLE['frrn_a'][2], args.batch),
                     frrn_b=(FRRN_B_FULL, 1))
        for model in args.models:
            size, batch = extra.get(model['key'], (None, None))
            if size and tuple(size) != shape:
                runs += [(model, tuple(size), batch, flag)
                         for flag in (False, True)]
    return runs


def add_ratios(records, reference):
    """Each record's peak over the reference's at the same size."""
    refs = {(tuple(r['shape']), r['batch']): r['est_peak_train_mem_mb']
            for r in records if r['model'] == reference['label']
            and not r['with_cp'] and r['status'] == 'ok'}
    for rec in records:
        ref = refs.get((tuple(rec['shape']), rec['batch']))
        rec['reference'] = reference['label']
        rec['ratio'] = None
        if ref and rec['status'] == 'ok':
            rec['ratio'] = round(rec['est_peak_train_mem_mb'] / ref, 4)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.registry import init_default_scope
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope('mmseg')
    import mmseg_refinenet  # noqa: F401  (registers our modules)
    from harness import machine, memory, segmentors
    wanted = args.reference or REFERENCE
    reference = next((m for m in args.models
                      if wanted in (m['key'], m['label'])), None)
    if reference is None and args.reference:
        fail(f'--reference {args.reference!r} is not among --models')
    reference = reference or args.models[0]
    for model in args.models:
        try:
            segmentors.resolve_config(config_path(model['config']))
        except segmentors.BenchmarkError as e:
            fail(str(e))
    env = machine.environment('cpu', REPO, check_dirty=not args.no_git_status)
    env.update(command=shlex.join(['python'] + sys.argv),
               date=datetime.datetime.now().isoformat(timespec='seconds'))
    runs = plan(args)
    progress(f'{len(runs)} estimates, torch {env["torch"]}, commit '
             f'{env["commit"]}{" (dirty)" if env.get("dirty") else ""}'
             f' -> {args.out}')
    records = []
    for i, (model, shape, batch, with_cp) in enumerate(runs, 1):
        what = (f'{model["label"]} {shape[0]}x{shape[1]} batch {batch}'
                f'{" with_cp" if with_cp else ""}')
        start = time.monotonic()
        rec = dict(env, schema_version=SCHEMA_VERSION, suite=SUITE,
                   model=model['label'], model_key=model['key'],
                   config=model['config'], num_classes=19,
                   shape=list(shape), batch=batch, train_batch=batch,
                   dtype='fp32', channels_last=False, with_cp=with_cp,
                   method=METHOD, status='ok', reason=None)
        try:
            cfg = segmentors.load_config(config_path(model['config']), 19)
            est = memory.estimate_training_memory(
                cfg, model['config'], shape, batch, with_cp=with_cp)
            rec.update(est_peak_train_mem_mb=round(est['peak_mb'], 1),
                       est_by_kind_mb=est['by_kind_mb'],
                       est_modules_mb=est['modules_mb'])
            result = f'{est["peak_mb"]:,.0f} MB'
        except Exception as e:  # recorded; the other models go on
            rec.update(status='failed', reason=error_text(e),
                       est_peak_train_mem_mb=None, est_by_kind_mb=None,
                       est_modules_mb=None)
            result = f'failed: {rec["reason"]}'
        rec['elapsed_s'] = round(time.monotonic() - start, 1)
        records.append(rec)
        progress(f'[{i}/{len(runs)}] {what}: {result} '
                 f'({rec["elapsed_s"]:.0f} s)')
    add_ratios(records, reference)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(records, f, indent=1)
        f.write('\n')
    sys.stdout.write(args.out + '\n')
    if any(r['status'] != 'ok' for r in records):
        sys.exit(1)


if __name__ == '__main__':
    main()
