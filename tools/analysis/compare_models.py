"""Compare segmentors: parameters, FLOPs, speed and training memory.

Builds every config's model in one process and measures it on random
inputs of one shape::

    python tools/analysis/compare_models.py \\
        configs/refinenet/refinenet_r50_4xb4-40k_voc12aug-512x512.py \\
        mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py \\
        --shape 512 512 --out work_dirs/compare

Configs are files, or MMSeg's own configs through MMEngine's scope prefix
(``mmseg::path/inside/mmseg/configs.py``). Nothing is downloaded: pretrained
weights and ``Pretrained`` init_cfgs are removed and the models keep their
random initialisation, which does not change any of the figures.

Measurements (the first config is the reference of the ratios):

* params (M): all parameters of the model, auxiliary heads included.
* GFLOPs: ``mmengine.analysis.get_model_complexity_info`` on
  ``model(x, mode='tensor')`` for one image of 3xHxW, as
  ``tools/analysis_tools/get_flops.py`` of MMSeg does (fvcore's counting:
  one multiply-add is one FLOP; ops it does not know count 0).
* latency (ms): ``model(x, mode='tensor')`` in eval mode under
  ``torch.no_grad`` for a batch of ``--batch``, after ``--warmup`` runs,
  over ``--repeats`` runs: median, min and max. Throughput = batch / median.
* train step (ms): ``model.loss`` on random labels + backward + SGD step in
  train mode for a batch of ``--train-batch``; median, min and max.
* peak train memory (MB): on CUDA, ``torch.cuda.max_memory_allocated``
  over the training steps (absolute: weights, gradients, optimiser state
  and activations). On the CPU, the peak increase of the process' resident
  set size (psutil, sampled every 2 ms in a background thread) over the
  training steps (warm-up included) above the RSS measured just before
  them, after ``gc.collect()`` and glibc's ``malloc_trim(0)`` have returned
  freed memory to the system; it counts gradients, optimiser state and
  activations but not the weights already resident.

The data preprocessor (normalisation, padding) is not part of the
measurements: the model gets a ready NCHW tensor. The measurements are
those of the benchmark harness (``benchmarks/harness/``), shared with
``benchmarks/benchmark_models.py`` (which adds mixed precision,
channels_last, best-batch throughput and the models of
``docs/benchmarks.md``). This script therefore runs from a clone of the
repository, not from an installed package's ``.mim`` folder.
"""
import gc
import json
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HARNESS = osp.join(REPO, 'benchmarks')
if not osp.isdir(osp.join(HARNESS, 'harness')):
    sys.stderr.write('error: tools/analysis/compare_models.py runs from a '
                     'clone of the mmseg-refinenet repository: it needs '
                     f'benchmarks/harness/, which {REPO} lacks\n')
    sys.exit(2)
for path in (REPO, HARNESS):  # the plugin and the harness, without install
    if path not in sys.path:
        sys.path.insert(0, path)

from harness.cli import (  # noqa: E402
    OneLineArgumentParser, fail, positive_int, resolve_device,
    silence_library_notices)

METRICS = [
    # key, label, unit, higher is better
    ('params_m', 'Params', 'M', False),
    ('gflops', 'FLOPs', 'G', False),
    ('latency_ms', 'Latency', 'ms', False),
    ('throughput_img_s', 'Throughput', 'img/s', True),
    ('train_step_ms', 'Train step', 'ms', False),
    ('peak_train_mem_mb', 'Peak train mem', 'MB', False),
]

silence_library_notices()


def progress(message):
    sys.stderr.write(message + '\n')
    sys.stderr.flush()


def parse_args(argv=None):
    parser = OneLineArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', metavar='CONFIG',
                        help='config files or mmseg::path/to/config.py')
    parser.add_argument('--shape', type=positive_int, nargs=2,
                        required=True, metavar=('H', 'W'),
                        help='input height and width')
    parser.add_argument('--batch', type=positive_int, default=1,
                        help='inference batch size')
    parser.add_argument('--train-batch', type=positive_int, default=2,
                        help='training batch size')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed runs before each measurement')
    parser.add_argument('--repeats', type=positive_int, default=5,
                        help='timed runs of each measurement')
    parser.add_argument('--out', help='folder for compare.{md,json,png}')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'],
                        default='auto')
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error(f'--warmup must not be negative: {args.warmup}')
    return args


def load_config(path):
    from harness import segmentors
    try:
        return segmentors.load_config(path)
    except segmentors.BenchmarkError as e:
        fail(str(e))


def build_model(cfg, path, device):
    from harness import segmentors
    try:
        return segmentors.build_model(cfg, path, device)
    except segmentors.BenchmarkError as e:
        fail(str(e))


def ratio(value, reference):
    if value is None or not reference:
        return None
    return value / reference


def add_ratios(records):
    first = records[0]
    for rec in records:
        rec['ratios'] = {
            key: ratio(_value(rec, key), _value(first, key))
            for key, *_ in METRICS
        }


def _value(rec, key):
    value = rec[key]
    return value['median'] if isinstance(value, dict) else value


def markdown_table(records):
    header = ['Config', 'Model', 'Params (M)', 'GFLOPs',
              'Latency ms (min..max)', 'img/s',
              'Train step ms (min..max)', 'Peak train mem MB']
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join(['---'] + ['---'] + ['---:'] * 6) + '|']

    def with_ratio(rec, key, text):
        r = rec['ratios'][key]
        return text if r is None else f'{text} (x{r:.2f})'

    for rec in records:
        lat, step = rec['latency_ms'], rec['train_step_ms']
        cells = [
            rec['name'], rec['model'],
            with_ratio(rec, 'params_m', f"{rec['params_m']:.2f}"),
            with_ratio(rec, 'gflops', f"{rec['gflops']:.2f}"),
            with_ratio(rec, 'latency_ms',
                       f"{lat['median']:.1f} ({lat['min']:.1f}.."
                       f"{lat['max']:.1f})"),
            with_ratio(rec, 'throughput_img_s',
                       f"{rec['throughput_img_s']:.2f}"),
            with_ratio(rec, 'train_step_ms',
                       f"{step['median']:.1f} ({step['min']:.1f}.."
                       f"{step['max']:.1f})"),
            with_ratio(rec, 'peak_train_mem_mb',
                       f"{rec['peak_train_mem_mb']:.0f}"),
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    first = records[0]
    lines += [
        '',
        f"Input 3x{first['shape'][0]}x{first['shape'][1]}, inference batch "
        f"{first['batch']}, training batch {first['train_batch']}, device "
        f"{first['device']}, torch {first['torch']}; medians over "
        f"{first['repeats']} runs after {first['warmup']} warm-up runs; "
        f"(xN): ratio to {first['name']}. Peak train mem: "
        f"{first['mem_method']}.",
    ]
    return '\n'.join(lines) + '\n'


def plot(records, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [rec['name'] for rec in records]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    colors = [f'C{i % 10}' for i in range(len(records))]
    for ax, (key, label, unit, higher) in zip(axes.flat, METRICS):
        values = [_value(rec, key) for rec in records]
        errors = None
        if isinstance(records[0][key], dict):
            errors = [[v - rec[key]['min'] for v, rec in zip(values, records)],
                      [rec[key]['max'] - v for v, rec in zip(values, records)]]
        x = range(len(records))
        ax.bar(x, values, yerr=errors, color=colors, capsize=4)
        ax.set_xticks(list(x))
        ax.set_xticklabels(range(1, len(records) + 1))
        better = 'higher' if higher else 'lower'
        ax.set_title(f'{label} ({unit}), {better} is better')
        for i, v in enumerate(values):
            ax.annotate(f'{v:.3g}', (i, v), ha='center', va='bottom',
                        fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors]
    fig.legend(handles, [f'{i + 1}: {n}' for i, n in enumerate(names)],
               loc='lower center', ncol=1, fontsize=8)
    first = records[0]
    fig.suptitle(f"3x{first['shape'][0]}x{first['shape'][1]}, "
                 f"{first['device']}, batch {first['batch']} / train batch "
                 f"{first['train_batch']}")
    fig.tight_layout(rect=(0, 0.06 + 0.03 * len(records), 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    # Read all configs first, so that a wrong one fails before any work.
    from mmengine.registry import init_default_scope
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope('mmseg')
    import mmseg_refinenet  # noqa: F401  (registers our modules)
    import torch
    from harness import measure, segmentors

    cfgs = [load_config(path) for path in args.configs]
    device = resolve_device(args.device)
    if args.out:
        os.makedirs(args.out, exist_ok=True)

    shape = tuple(args.shape)
    records = []
    n = len(cfgs)
    for i, (path, cfg) in enumerate(zip(args.configs, cfgs), 1):
        tag = f'[{i}/{n}] {osp.basename(path)}'
        progress(f'{tag}: building the model')
        model = build_model(cfg, path, device)
        params = segmentors.count_params(model)
        progress(f'{tag}: {params:.2f} M parameters; timing inference '
                 f'(batch {args.batch})')
        lat = measure.spread(
            measure.measure_inference(model, shape, args.batch, args.warmup,
                                      args.repeats, device))
        progress(f"{tag}: latency {lat['median']:.1f} ms; timing training "
                 f'steps (batch {args.train_batch})')
        times, mem, method = measure.measure_training(model, shape,
                                                      args.train_batch,
                                                      args.warmup,
                                                      args.repeats, device)
        step = measure.spread(times)
        progress(f"{tag}: train step {step['median']:.1f} ms, peak train "
                 f'memory {mem:.0f} MB; counting FLOPs')
        # Last: the FLOP count traces the model with torch.jit.
        gflops = measure.count_flops(model, shape, device)
        progress(f'{tag}: {gflops:.2f} GFLOPs')
        records.append(dict(
            config=path, name=osp.splitext(osp.basename(path))[0],
            model=segmentors.model_name(model), device=device,
            torch=torch.__version__, shape=list(shape), batch=args.batch,
            train_batch=args.train_batch, warmup=args.warmup,
            repeats=args.repeats, params_m=params, gflops=gflops,
            latency_ms=lat,
            throughput_img_s=args.batch / (lat['median'] / 1000.0),
            train_step_ms=step, peak_train_mem_mb=mem, mem_method=method))
        del model
        gc.collect()
        if device == 'cuda':
            torch.cuda.empty_cache()

    add_ratios(records)
    table = markdown_table(records)
    sys.stdout.write(table)
    sys.stdout.flush()
    if args.out:
        with open(osp.join(args.out, 'compare.md'), 'w') as f:
            f.write(table)
        with open(osp.join(args.out, 'compare.json'), 'w') as f:
            json.dump(records, f, indent=2)
        plot(records, osp.join(args.out, 'compare.png'))
        progress(f'wrote compare.md, compare.json and compare.png to '
                 f'{args.out}')


if __name__ == '__main__':
    main()
