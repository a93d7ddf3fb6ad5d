"""Where the time and memory of one model go: a torch.profiler table.

For a goal of ``docs/benchmarks.md`` that is missed, profiles the eval
forward (or a training step) of one model of ``benchmark_models.py`` and
writes the ops sorted by their self time on the GPU (CPU time on a CPU),
with memory, to a text file and, with ``--trace``, a Chrome trace::

    python benchmarks/profile_model.py frrn_b --shape 512 1024 --dtype bf16
    python benchmarks/profile_model.py refinenet_r101 --train --out prof.txt
"""
import argparse
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.join(REPO, 'benchmarks') not in sys.path:
    sys.path.insert(0, osp.join(REPO, 'benchmarks'))

import benchmark_models as bench  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model', help='key of the model table, or LABEL='
                        'CONFIG / a config file')
    parser.add_argument('--shape', type=bench.positive_int, nargs=2,
                        default=[512, 1024], metavar=('H', 'W'))
    parser.add_argument('--batch', type=bench.positive_int, default=1)
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'],
                        default='fp32')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--train', action='store_true',
                        help='profile a training step instead of a forward')
    parser.add_argument('--with-cp', action='store_true')
    parser.add_argument('--steps', type=bench.positive_int, default=3,
                        help='profiled runs (after 2 warm-up runs)')
    parser.add_argument('--rows', type=bench.positive_int, default=30)
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'],
                        default='auto')
    parser.add_argument('--out', help='text file of the table (default: '
                        'work_dirs/profile/<model>-<shape>-<dtype>.txt)')
    parser.add_argument('--trace', action='store_true',
                        help='also write a Chrome trace next to --out')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    model_info = bench.resolve_models([args.model])[0]
    from mmengine.registry import init_default_scope
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope('mmseg')
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    import mmseg_refinenet  # noqa: F401
    from harness import machine, measure, segmentors

    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    cuda = device == 'cuda'
    try:
        cfg = segmentors.load_config(bench.config_path(model_info['config']),
                                     19)
        model = segmentors.build_model(cfg, model_info['config'], device)
    except segmentors.BenchmarkError as e:
        bench.fail(str(e))
    segmentors.set_with_cp(model, args.with_cp)
    measure.prepare(model, args.channels_last)
    shape = tuple(args.shape)
    x = measure.make_input(args.batch, shape, device, args.channels_last)
    if args.train:
        model.train()
        samples = measure.make_seg_samples(args.batch, shape,
                                           segmentors.num_classes(model),
                                           device)
        optimizer = measure.step_optimizer(model.parameters())

        def step():
            optimizer.zero_grad(set_to_none=True)
            with measure.autocast(device, args.dtype):
                loss, _ = model.parse_losses(model.loss(x, samples))
            loss.backward()
            optimizer.step()
    else:
        model.eval()

        def step():
            with torch.no_grad(), measure.autocast(device, args.dtype):
                model(x, mode='tensor')

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if cuda else [])
    with profile(activities=activities, profile_memory=True,
                 record_shapes=True,
                 schedule=schedule(wait=0, warmup=2, active=args.steps,
                                   repeat=1)) as p:
        for _ in range(2 + args.steps):
            step()
            measure.sync(device)
            p.step()
    sort = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    table = p.key_averages().table(sort_by=sort, row_limit=args.rows)
    h, w = shape
    what = 'train' if args.train else 'forward'
    out = args.out or osp.join(
        'work_dirs', 'profile', f'{bench.slug(model_info["label"])}-'
        f'{h}x{w}-b{args.batch}-{args.dtype}-{what}.txt')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    header = (f'{model_info["label"]} {what}, {h}x{w}, batch {args.batch}, '
              f'{args.dtype}, channels_last {args.channels_last}, with_cp '
              f'{args.with_cp}, {machine.device_name(device)}, {args.steps} '
              'profiled runs\n')
    if cuda:
        header += (f'peak memory allocated: '
                   f'{torch.cuda.max_memory_allocated() / 2**20:.0f} MB\n')
    with open(out, 'w') as f:
        f.write(header + table + '\n')
    if args.trace:
        p.export_chrome_trace(osp.splitext(out)[0] + '.trace.json')
    sys.stdout.write(header + table + '\n')
    sys.stderr.write(f'wrote {out}\n')


if __name__ == '__main__':
    main()
