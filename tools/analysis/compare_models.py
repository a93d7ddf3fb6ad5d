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
measurements: the model gets a ready NCHW tensor.
"""
import argparse
import ctypes
import gc
import json
import logging
import os
import os.path as osp
import statistics
import sys
import threading
import time
import warnings

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

# Library notices that say nothing about the comparison.
for _message in ('pkg_resources is deprecated', '``build_loss`` would be',
                 'Default ``avg_non_ignore``'):
    warnings.filterwarnings('ignore', message=_message)

METRICS = [
    # key, label, unit, higher is better
    ('params_m', 'Params', 'M', False),
    ('gflops', 'FLOPs', 'G', False),
    ('latency_ms', 'Latency', 'ms', False),
    ('throughput_img_s', 'Throughput', 'img/s', True),
    ('train_step_ms', 'Train step', 'ms', False),
    ('peak_train_mem_mb', 'Peak train mem', 'MB', False),
]


class _ArgumentParser(argparse.ArgumentParser):
    """Reports wrong arguments on one line, with exit status 2."""

    def error(self, message):
        fail(message)


def fail(message, status=2):
    sys.stderr.write(f'error: {message}\n')
    sys.exit(status)


def progress(message):
    sys.stderr.write(message + '\n')
    sys.stderr.flush()


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not an integer: {text!r}')
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be positive: {text!r}')
    return value


def parse_args(argv=None):
    parser = _ArgumentParser(description=__doc__.split('\n')[0])
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


def resolve_config(path):
    """Returns the file of ``path``, resolving ``package::rel/path.py``."""
    if '::' in path:
        from mmengine.config.utils import _get_package_and_cfg_path
        from mmengine.utils import get_installed_path, is_installed
        try:
            package, rel = _get_package_and_cfg_path(path)
        except Exception as e:  # malformed scope
            fail(f'bad config {path!r}: {e}')
        if not is_installed(package):
            fail(f'config {path!r}: package {package!r} is not installed')
        cfg_file = osp.join(get_installed_path(package), '.mim', 'configs',
                            rel)
        if not osp.isfile(cfg_file):
            fail(f'config {path!r} not found (looked for {cfg_file})')
        return cfg_file
    if not osp.isfile(path):
        fail(f'config file not found: {path}')
    return path


def strip_pretrained(node):
    """Removes pretrained weights and Pretrained init_cfgs in place."""
    if isinstance(node, dict):
        if 'pretrained' in node:
            node['pretrained'] = None
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            node['init_cfg'] = None
        elif isinstance(init, list):
            node['init_cfg'] = [
                c for c in init
                if not (isinstance(c, dict) and c.get('type') == 'Pretrained')
            ] or None
        for value in node.values():
            strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            strip_pretrained(value)


def load_config(path):
    from mmengine.config import Config
    try:
        cfg = Config.fromfile(resolve_config(path))
    except SystemExit:
        raise
    except Exception as e:
        fail(f'cannot read config {path}: {type(e).__name__}: {e}')
    if 'model' not in cfg:
        fail(f'config {path} has no model')
    return cfg


def build_model(cfg, path, device):
    import torch
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS

    model_cfg = cfg.model
    strip_pretrained(model_cfg)
    try:
        model = MODELS.build(model_cfg)
    except Exception as e:
        fail(f'cannot build the model of {path}: {type(e).__name__}: {e}')
    model = revert_sync_batchnorm(model)
    return model.to(torch.device(device))


def model_name(model):
    parts = [type(model).__name__]
    inner = [type(getattr(model, n)).__name__
             for n in ('backbone', 'decode_head')
             if getattr(model, n, None) is not None]
    if inner:
        parts.append('(' + ', '.join(inner) + ')')
    return ''.join(parts)


def num_classes(model):
    head = getattr(model, 'decode_head', None)
    if isinstance(head, (list, tuple)) or type(head).__name__ in (
            'ModuleList', ):
        head = head[-1]
    return int(getattr(head, 'num_classes', 2) or 2)


def sync(device):
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def timed(fn, warmup, repeats, device):
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def spread(times):
    return dict(median=statistics.median(times), min=min(times),
                max=max(times))


def count_flops(model, shape, device):
    import torch
    from mmengine.analysis import get_model_complexity_info
    model.eval()
    x = torch.rand(1, 3, *shape, device=device)
    # mmengine logs every op it cannot count; the summary is enough here.
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            info = get_model_complexity_info(
                model, inputs=(x, ), show_table=False, show_arch=False)
    finally:
        logger.setLevel(level)
    return info['flops'] / 1e9


def measure_inference(model, shape, batch, warmup, repeats, device):
    import torch
    model.eval()
    x = torch.rand(batch, 3, *shape, device=device)

    def run():
        with torch.no_grad():
            model(x, mode='tensor')

    return timed(run, warmup, repeats, device)


def _trim_cpu_memory():
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class RSSPeak:
    """Samples the process' RSS in a background thread; keeps the peak."""

    def __init__(self, interval=0.002):
        import psutil
        self.process = psutil.Process(os.getpid())
        self.interval = interval
        self.peak = self.baseline = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def increase_mb(self):
        return (self.peak - self.baseline) / 2**20


def measure_training(model, shape, batch, warmup, repeats, device):
    """Returns (step times in ms, peak memory in MB, memory method)."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    h, w = shape
    classes = num_classes(model)
    x = torch.rand(batch, 3, h, w, device=device)
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                                 pad_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, classes, (1, h, w), device=device))
        samples.append(sample)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        losses = model.loss(x, samples)
        loss, _ = model.parse_losses(losses)
        loss.backward()
        optimizer.step()

    if device == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        times = timed(step, warmup, repeats, device)
        peak = torch.cuda.max_memory_allocated() / 2**20
        method = 'torch.cuda.max_memory_allocated (absolute)'
    else:
        _trim_cpu_memory()
        with RSSPeak() as rss:
            times = timed(step, warmup, repeats, device)
        peak = rss.increase_mb
        method = 'peak RSS increase over pre-training RSS (psutil, 2 ms)'
    optimizer.zero_grad(set_to_none=True)  # frees the gradients
    return times, peak, method


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

    cfgs = [load_config(path) for path in args.configs]
    device = args.device
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif device == 'cuda' and not torch.cuda.is_available():
        fail('--device cuda: CUDA is not available')
    if args.out:
        os.makedirs(args.out, exist_ok=True)

    shape = tuple(args.shape)
    records = []
    n = len(cfgs)
    for i, (path, cfg) in enumerate(zip(args.configs, cfgs), 1):
        tag = f'[{i}/{n}] {osp.basename(path)}'
        progress(f'{tag}: building the model')
        model = build_model(cfg, path, device)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        progress(f'{tag}: {params:.2f} M parameters; timing inference '
                 f'(batch {args.batch})')
        lat = spread(measure_inference(model, shape, args.batch,
                                       args.warmup, args.repeats, device))
        progress(f"{tag}: latency {lat['median']:.1f} ms; timing training "
                 f'steps (batch {args.train_batch})')
        times, mem, method = measure_training(model, shape,
                                              args.train_batch, args.warmup,
                                              args.repeats, device)
        step = spread(times)
        progress(f"{tag}: train step {step['median']:.1f} ms, peak train "
                 f'memory {mem:.0f} MB; counting FLOPs')
        # Last: the FLOP count traces the model with torch.jit.
        gflops = count_flops(model, shape, device)
        progress(f'{tag}: {gflops:.2f} GFLOPs')
        records.append(dict(
            config=path, name=osp.splitext(osp.basename(path))[0],
            model=model_name(model), device=device,
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
