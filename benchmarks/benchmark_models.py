"""Benchmark: RefineNet and FRRN against MMSeg's models.

Runs, in one process and on the same random inputs, RefineNet-R101
(4-cascaded), RefineNet-R50, Light-Weight RefineNet-R101, FRRN A, FRRN B
and MMSeg's DeepLabV3-R101-D8, PSPNet-R101-D8, UPerNet-R101 and UNet-S5-D16,
all with 19 classes (Cityscapes), and measures for every model, dtype and
memory format:

* params (M) and GFLOPs (MMSeg's convention: one multiply-add is one FLOP);
* inference latency at batch 1 and throughput at the best batch (batches
  1, 2, 4, ... up to ``--max-batch``, until memory or time runs out or the
  throughput stops growing);
* training step time and peak training memory at ``--train-batch`` (2);
* with ``--roofline``: FLOPs and memory traffic of one forward, the
  achieved TFLOP/s and GB/s and, on a GPU whose peaks are known, the
  roofline bound;

in fp32 and with bf16 / fp16 autocast (``--dtypes``), with channels_last
off and on (``--channels-last``). ``--frrn-paper-sizes`` adds FRRN A at
256x512 and FRRN B at 512x1024 (the paper's inputs) and the training memory
of both with gradient checkpointing (``with_cp``) off and on, including
FRRN B at 1024x2048, batch 1 (``--paper-scale`` scales these sizes down
for CPU runs). ``--compile MODE`` adds the batch-1 latency (and the
roofline figures) of the ``torch.compile``'d forward, e.g.
``reduce-overhead`` (CUDA graphs) for launch-bound models, in the suite
``compiled-MODE``, at the FRRN paper sizes with ``--frrn-paper-sizes`` and
at ``--shape`` otherwise, next to the eager latency measured just before
(``--only-compiled``: nothing else). Medians, min and max over
``--repeats`` runs after ``--warmup`` runs; ratios to DeepLabV3-R101-D8 at
the same shape, dtype and memory format.

Every record is appended to the JSON file (``--out``, default
``benchmarks/results/<device>-<date>.json``) as soon as it is measured, so
that an interrupted run keeps what it measured. A measurement that fails
(out of memory, an error, its time budget ``--budget``) is recorded with
the reason; the run goes on. ``benchmarks/render.py`` turns result files
into ``docs/benchmarks.md``.

Examples::

    # the full GPU run
    python benchmarks/benchmark_models.py --frrn-paper-sizes --roofline all
    # the FRRNs compiled, with CUDA graphs
    python benchmarks/benchmark_models.py --models frrn_a frrn_b \\
        --frrn-paper-sizes --compile reduce-overhead --dtypes bf16
    # a CPU run at a smaller size
    python benchmarks/benchmark_models.py --shape 256 512 --repeats 3 \\
        --warmup 1 --dtypes fp32 bf16
    # a smoke test of the whole list at 64x128
    python benchmarks/benchmark_models.py --quick

Measurement details: ``benchmarks/harness/`` (``measure.py``, ``roofline.py``).
"""
import argparse
import datetime
import json
import math
import os
import os.path as osp
import re
import shlex
import statistics
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
for path in (REPO, HERE):  # the plugin and the harness, without install
    if path not in sys.path:
        sys.path.insert(0, path)

from harness.cli import (  # noqa: E402
    OneLineArgumentParser, fail, positive_float, positive_int, resolve_device,
    silence_library_notices)

silence_library_notices()


SCHEMA_VERSION = 1
REFINENET = 'configs/refinenet/'
# key: (label, config, paper input size (H, W) or None)
MODEL_TABLE = {
    'deeplabv3_r101': (
        'DeepLabV3-R101-D8',
        'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        None),
    'refinenet_r101': (
        'RefineNet-R101',
        REFINENET + 'refinenet_r101_4xb2-80k_cityscapes-512x1024.py', None),
    'refinenet_r50': (
        'RefineNet-R50',
        REFINENET + 'refinenet_r50_4xb2-80k_cityscapes-512x1024.py', None),
    'lw_refinenet_r101': (
        'LW-RefineNet-R101',
        REFINENET + 'lw-refinenet_r101_4xb4-40k_voc12aug-512x512.py', None),
    'lw_refinenet_mobilenet_v2': (
        'LW-RefineNet-MobileNetV2', REFINENET +
        'lw-refinenet_mobilenet-v2_4xb2-80k_cityscapes-512x1024.py', None),
    'frrn_a': ('FRRN A', 'configs/frrn/frrn-a_1xb3-45k_cityscapes-256x512.py',
               (256, 512)),
    'frrn_b': ('FRRN B',
               'configs/frrn/frrn-b_1xb3-45k_cityscapes-512x1024.py',
               (512, 1024)),
    'pspnet_r101': (
        'PSPNet-R101-D8',
        'mmseg::pspnet/pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py', None),
    'upernet_r101': (
        'UPerNet-R101',
        'mmseg::upernet/upernet_r101_4xb2-80k_cityscapes-512x1024.py', None),
    'unet_s5': (
        'UNet-S5-D16',
        'mmseg::unet/unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py', None),
}
REFERENCE = 'deeplabv3_r101'
# FRRN B trains at 1024x2048 with batch 1 (the with_cp goal)
FRRN_B_FULL = (1024, 2048)

COMPILE_MODES = ['default', 'reduce-overhead', 'max-autotune',
                 'max-autotune-no-cudagraphs']
# compiling, then (CUDA graphs) recording, then replaying: untimed runs
COMPILE_WARMUP = 3

QUICK = dict(shape=[64, 128], repeats=2, warmup=1, max_batch=2, budget=30.0)
DEFAULTS = dict(shape=[512, 1024], repeats=10, warmup=3, max_batch=None,
                budget=None)

# every record has these keys (None where not measured)
RECORD_FIELDS = [
    'schema_version', 'suite', 'status', 'reason', 'errors', 'device', 'cpu',
    'torch', 'cuda', 'mmseg', 'mmcv', 'mmengine', 'python', 'threads',
    'cpu_count', 'commit', 'dirty', 'command', 'date', 'model', 'model_key',
    'model_arch', 'config', 'num_classes', 'shape', 'batch', 'train_batch',
    'dtype', 'channels_last', 'with_cp', 'compile', 'warmup', 'repeats',
    'budget_s', 'params_m', 'gflops', 'latency_ms', 'latency_ms_min',
    'latency_ms_max', 'latency_runs', 'eager_latency_ms', 'throughput_img_s',
    'throughput_img_s_min', 'throughput_img_s_max', 'throughput_batch',
    'throughput_by_batch', 'throughput_note', 'train_step_ms',
    'train_step_ms_min', 'train_step_ms_max', 'train_runs',
    'peak_train_mem_mb', 'mem_method', 'fwd_flops', 'fwd_bytes',
    'achieved_tflops', 'achieved_gbs', 'peak_tflops', 'peak_gbs', 'bound_ms',
    'bound_ratio', 'reference', 'ratios', 'value_checks'
]
# why a record or measurement was skipped once --time-limit had passed
TIME_LIMIT_REACHED = 'run time limit (--time-limit) reached'
RATIO_KEYS = ['params_m', 'gflops', 'latency_ms', 'throughput_img_s',
              'train_step_ms', 'peak_train_mem_mb']


def progress(message):
    stamp = time.strftime('%H:%M:%S')
    sys.stderr.write(f'{stamp} {message}\n')
    sys.stderr.flush()


def models_parser(description):
    """An argument parser with ``--models`` (no default: all models) and
    the keys of the model table in its epilog."""
    parser = OneLineArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='models: ' + ', '.join(
            f'{k} ({v[0]})' for k, v in MODEL_TABLE.items()))
    parser.add_argument(
        '--models', nargs='+', metavar='MODEL',
        help='keys of the model table (default: all), config files, or '
        'LABEL=CONFIG; configs may be mmseg::path/to/config.py')
    return parser


def parse_args(argv=None):
    parser = models_parser(__doc__.split('\n')[0])
    parser.add_argument('--shape', type=positive_int, nargs=2,
                        metavar=('H', 'W'),
                        help='input height and width (default 512 1024; '
                        '64 128 with --quick)')
    parser.add_argument('--frrn-paper-sizes', action='store_true',
                        help='also FRRN A at 256x512 and FRRN B at 512x1024, '
                        'and their training memory with with_cp off/on '
                        '(FRRN B also at 1024x2048, batch 1)')
    parser.add_argument('--paper-scale', type=positive_float, default=1.0,
                        help='scale of the FRRN paper sizes (rounded to '
                        'multiples of 32), e.g. 0.25 on a CPU')
    parser.add_argument('--with-cp', action='store_true',
                        help='training with with_cp off and on for every '
                        'model at --shape')
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'],
                        choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--channels-last', nargs='+', default=['off', 'on'],
                        choices=['off', 'on'])
    parser.add_argument('--channels-last-models', nargs='+', metavar='MODEL',
                        help='measure channels_last "on" only for these '
                        '(default: all)')
    parser.add_argument('--repeats', type=positive_int,
                        help='timed runs per measurement (default 10; 2 '
                        'with --quick)')
    parser.add_argument('--warmup', type=int,
                        help='untimed runs before each measurement (default '
                        '3; 1 with --quick)')
    parser.add_argument('--train-batch', type=positive_int, default=2)
    parser.add_argument('--max-batch', type=positive_int,
                        help='largest batch of the throughput sweep '
                        '(default 64 on a GPU, 4 on the CPU, 2 with --quick)')
    parser.add_argument('--budget', type=positive_float,
                        help='seconds per measurement (default 120 on a GPU, '
                        '300 on the CPU, 30 with --quick); a run that goes '
                        'past twice the budget is interrupted')
    parser.add_argument('--time-limit', type=positive_float,
                        help='seconds for the whole run; what is left then '
                        'is recorded as skipped')
    parser.add_argument('--compile', nargs='+', default=[],
                        metavar='MODE', choices=COMPILE_MODES,
                        help='also the latency of the torch.compile\'d '
                        'forward in these modes ('
                        + ', '.join(COMPILE_MODES) + ')')
    parser.add_argument('--compile-models', nargs='+', metavar='MODEL',
                        help='compile only these (default: all)')
    parser.add_argument('--compile-dtypes', nargs='+',
                        choices=['fp32', 'bf16', 'fp16'],
                        help='dtypes of the compiled forwards (default: '
                        '--dtypes)')
    parser.add_argument('--compile-backend', default='inductor',
                        help='torch.compile backend (default inductor; '
                        'aot_eager compiles without code generation and '
                        'ignores the mode)')
    parser.add_argument('--only-compiled', action='store_true',
                        help='measure only the compiled forwards (each '
                        'record also holds the eager latency measured just '
                        'before)')
    parser.add_argument('--compile-budget', type=positive_float,
                        default=300.0,
                        help='seconds per compiled measurement, compiling '
                        'included (default 300)')
    parser.add_argument('--roofline', choices=['none', 'frrn', 'all'],
                        default='frrn',
                        help='FLOPs, memory traffic and roofline bound of '
                        'one forward (default: the FRRNs)')
    parser.add_argument('--no-train', action='store_true',
                        help='inference only (also no with_cp training '
                        'runs of --frrn-paper-sizes)')
    parser.add_argument('--num-classes', type=positive_int, default=19)
    parser.add_argument(
        '--value-checks', action='store_true',
        help='keep the plugin\'s NaN / Inf checks of inputs and features '
        '(check_finite, on by default in the configs; one host-device '
        'synchronisation each, which MMSeg\'s models do not make): '
        'measured without them by default')
    parser.add_argument('--reference', default=REFERENCE,
                        help='model (key or label) the ratios refer to')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'],
                        default='auto')
    parser.add_argument('--threads', type=positive_int,
                        help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--force-lowp', action='store_true',
                        help='measure bf16 / fp16 on a CPU even where a '
                        'probe shows them much slower than fp32')
    parser.add_argument('--lowp-max-slowdown', type=positive_float,
                        default=4.0,
                        help='CPU low-precision probe: skip a dtype that '
                        'runs a 3x3 conv this many times slower than fp32')
    parser.add_argument('--no-memory-cap', action='store_true',
                        help='CPU: do not cap the address space (the cap '
                        'turns an allocation beyond free memory into a '
                        'recorded error instead of the OOM killer)')
    parser.add_argument('--no-git-status', action='store_true',
                        help='do not run git status to record whether the '
                        'tree is dirty')
    parser.add_argument('--quick', action='store_true',
                        help='smoke run: 64x128, 2 repeats, 1 warm-up, '
                        'batches up to 2, 30 s budget')
    parser.add_argument('--out', help='result JSON (default benchmarks/'
                        'results/<device>-<date>.json; work_dirs/benchmarks/ '
                        'with --quick)')
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.warmup < 0:
        parser.error(f'--warmup must not be negative: {args.warmup}')
    if args.no_train and args.with_cp:
        parser.error('--with-cp measures training: it contradicts --no-train')
    args.models = resolve_models(args.models or list(MODEL_TABLE))
    labels = [m['label'] for m in args.models]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        parser.error(f'--models: duplicate labels {duplicates}')
    args.reference = find_model(args.reference, args.models, '--reference',
                                required=False)
    args.compile_only = None
    if (args.compile_models or args.compile_dtypes
            or args.only_compiled) and not args.compile:
        parser.error('--compile-models, --compile-dtypes and '
                     '--only-compiled need --compile')
    if args.compile_models:
        args.compile_only = {
            find_model(m, args.models, '--compile-models')['label']
            for m in args.compile_models
        }
    args.cl_models = None
    if args.channels_last_models:
        args.cl_models = {
            find_model(m, args.models, '--channels-last-models')['label']
            for m in args.channels_last_models
        }
    return args


def resolve_models(items):
    models = []
    for item in items:
        if item in MODEL_TABLE:
            label, config, paper = MODEL_TABLE[item]
            models.append(dict(key=item, label=label,
                               config=config, paper_shape=paper))
            continue
        label, sep, config = item.partition('=')
        if not sep:
            label, config = osp.splitext(osp.basename(item))[0], item
        if not config.endswith('.py') and '::' not in config:
            fail(f'--models: {item!r} is neither a model of the table '
                 f'({", ".join(MODEL_TABLE)}) nor a config file')
        if '::' not in config and not osp.isfile(config):
            fail(f'--models: config file not found: {config}')
        models.append(dict(key=None, label=label, config=config,
                           paper_shape=None))
    return models


def find_model(name, models, option, required=True):
    for model in models:
        if name in (model['key'], model['label']):
            return model
    if required:
        fail(f'{option}: {name!r} is not among the selected models')
    if name in MODEL_TABLE:  # a table model that is not selected
        return dict(key=name, label=MODEL_TABLE[name][0])
    return dict(key=None, label=name)


def set_up_run(args):
    """Registers MMSeg's modules and ours (default scope ``mmseg``), checks
    every config of ``args.models`` before any work (one ``error:`` line
    and exit 2 otherwise), and sets up the device of ``args.device``:
    torch's threads (``args.threads``) and cuDNN's autotuner. Returns the
    device."""
    import torch
    from mmengine.registry import init_default_scope
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope('mmseg')

    import mmseg_refinenet  # noqa: F401  (registers our modules)
    from harness import segmentors
    for model in args.models:
        try:
            segmentors.resolve_config(config_path(model['config']))
        except segmentors.BenchmarkError as e:
            fail(str(e))
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device == 'cuda':
        torch.backends.cudnn.benchmark = True
    return device


def config_path(config):
    if '::' in config or osp.isabs(config) or osp.isfile(config):
        return config
    return osp.join(REPO, config)


def slug(text):
    return re.sub(r'[^A-Za-z0-9]+', '-', text).strip('-').lower()


def scaled(shape, scale, multiple=32):
    return [max(multiple, int(round(s * scale / multiple)) * multiple)
            for s in shape]


# --------------------------------------------------------------------------
# the work list
# --------------------------------------------------------------------------
def plan(args):
    """Groups of measurements, one group per model build.

    Returns:
        list[dict]: ``suite``, ``model``, ``shape``, ``train_batch`` and
        ``variants`` (list of ``(dtype, channels_last, with_cp)``; with_cp
        None means inference and training as they are configured).
    """
    if args.only_compiled:
        return compiled_groups(args)
    main_variants = []
    for dtype in args.dtypes:
        for cl in args.channels_last:
            main_variants.append((dtype, cl == 'on', None))
    cp_variants = [(dtype, False, flag) for dtype in args.dtypes
                   for flag in (False, True)]
    groups = []
    shape = list(args.shape)
    # the reference first: a record gets its ratios from the reference's
    # record measured before it, and a run cut short by --time-limit
    # should not leave the models before the reference without ratios
    ref_label = args.reference['label'] if args.reference else None
    for model in sorted(args.models, key=lambda m: m['label'] != ref_label):
        variants = [v for v in main_variants
                    if not v[1] or args.cl_models is None
                    or model['label'] in args.cl_models]
        groups.append(dict(suite='main', model=model, shape=shape,
                           train_batch=args.train_batch, variants=variants))
    if args.frrn_paper_sizes:
        for model in args.models:
            paper = model['paper_shape']
            if paper is None:
                continue
            paper_shape = scaled(paper, args.paper_scale)
            if paper_shape != shape:
                groups.append(dict(suite='frrn-paper', model=model,
                                   shape=paper_shape,
                                   train_batch=args.train_batch,
                                   variants=[v for v in main_variants
                                             if not v[1]]))
            if args.no_train:
                continue
            groups.append(dict(suite='with_cp', model=model,
                               shape=paper_shape,
                               train_batch=args.train_batch,
                               variants=cp_variants))
            if model['key'] == 'frrn_b':
                groups.append(dict(suite='with_cp', model=model,
                                   shape=scaled(FRRN_B_FULL,
                                                args.paper_scale),
                                   train_batch=1, variants=cp_variants))
    if args.with_cp:
        for model in args.models:
            groups.append(dict(suite='with_cp', model=model, shape=shape,
                               train_batch=args.train_batch,
                               variants=cp_variants))
    return groups + compiled_groups(args)


def compiled_groups(args):
    """The groups of ``--compile``: one per mode and model."""
    groups = []
    compiled_variants = [(dtype, cl == 'on', None)
                         for dtype in args.compile_dtypes or args.dtypes
                         for cl in args.channels_last]
    for mode in args.compile:
        for model in args.models:
            if (args.compile_only is not None
                    and model['label'] not in args.compile_only):
                continue
            paper = model['paper_shape']
            groups.append(dict(
                suite=f'compiled-{mode}', compile=mode, model=model,
                shape=(scaled(paper, args.paper_scale)
                       if args.frrn_paper_sizes and paper
                       else list(args.shape)),
                train_batch=args.train_batch,
                variants=[v for v in compiled_variants
                          if not v[1] or args.cl_models is None
                          or model['label'] in args.cl_models]))
    return groups


# --------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------
class Results:
    """The result file: the list of records, rewritten (atomically) after
    each change, so that a run cut short keeps what it did. Without a path
    the records are only kept in memory."""

    def __init__(self, path):
        self.path = path
        self.records = []
        if path is not None:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)

    def add(self, record):
        self.records.append(record)
        self._write()

    def replace(self, records):
        """All the records at once, e.g. figures updated by a new round."""
        self.records = list(records)
        self._write()

    def _write(self):
        if self.path is None:
            return
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.records, f, indent=1, default=str)
            f.write('\n')
        os.replace(tmp, self.path)


def new_record(args, env, group, dtype, channels_last, with_cp):
    model = group['model']
    record = dict.fromkeys(RECORD_FIELDS)
    record.update(env)
    record.update(
        schema_version=SCHEMA_VERSION,
        suite=group['suite'],
        status='ok',
        errors={},
        model=model['label'],
        model_key=model['key'],
        config=model['config'],
        num_classes=args.num_classes,
        shape=list(group['shape']),
        batch=1,
        train_batch=group['train_batch'],
        dtype=dtype,
        channels_last=channels_last,
        with_cp=with_cp,
        compile=group.get('compile'),
        warmup=(max(args.warmup, COMPILE_WARMUP) if group.get('compile')
                else args.warmup),
        repeats=args.repeats,
        budget_s=(args.compile_budget if group.get('compile')
                  else args.budget),
        date=datetime.datetime.now().isoformat(timespec='seconds'),
    )
    return record


def skip(record, reason):
    record['status'] = 'skipped'
    record['reason'] = reason
    return record


def add_spread(record, key, times):
    record[key] = statistics.median(times)
    record[key + '_min'] = min(times)
    record[key + '_max'] = max(times)


def add_ratios(record, reference):
    if reference is None or record['status'] == 'skipped':
        return
    record['reference'] = reference['model']
    record['ratios'] = {}
    for key in RATIO_KEYS:
        value, ref = record.get(key), reference.get(key)
        record['ratios'][key] = (value / ref if value is not None and ref
                                 else None)


def find_reference(results, record, label):
    for rec in results.records:
        if (rec['model'] == label and rec['suite'] == record['suite']
                and rec['shape'] == record['shape']
                and rec['dtype'] == record['dtype']
                and rec['channels_last'] == record['channels_last']
                and rec['with_cp'] == record['with_cp']
                and rec.get('compile') == record.get('compile')
                and rec['status'] != 'skipped'):
            return rec
    return None


def error_text(error):
    from harness import measure
    if isinstance(error, measure.BudgetExceeded):
        return f'time budget exceeded ({error})'
    if measure.is_oom(error):
        return f'out of memory: {str(error).strip().splitlines()[0][:200]}'
    text = str(error).strip().splitlines()
    return f'{type(error).__name__}: {text[0][:300] if text else ""}'


# --------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------
class Runner:

    def __init__(self, args, env, results, device):
        self.args = args
        self.env = env
        self.results = results
        self.device = device
        self.cuda = device.startswith('cuda')
        self.start = time.monotonic()
        self.lowp_slowdown = {}

    def time_left(self):
        if self.args.time_limit is None:
            return math.inf
        return self.args.time_limit - (time.monotonic() - self.start)

    def measure(self, what, fn, record, budget=None):
        """Runs ``fn(deadline)`` within the budget (``--budget``);
        errors go to record."""
        from harness import measure
        left = self.time_left()
        if left <= 0:
            record['errors'][what] = TIME_LIMIT_REACHED
            progress(f'    {what}: {TIME_LIMIT_REACHED}')
            return None
        budget = min(budget or self.args.budget, left)
        deadline = time.monotonic() + budget
        # the hard stop (what fn cannot stop itself, e.g. a compilation)
        # leaves twice the budget, but never runs 10 s past --time-limit
        hard_stop = min(2 * budget, left) + 10
        try:
            with measure.time_limit(hard_stop):
                return fn(deadline)
        except (Exception, measure.BudgetExceeded) as e:
            reason = error_text(e)
        record['errors'][what] = reason
        progress(f'    {what}: {reason}')
        measure.free_memory(self.device)
        return None

    def lowp_skip_reason(self, dtype, channels_last):
        """Why a bf16 / fp16 measurement on the CPU is skipped, or None."""
        from harness import measure
        if self.cuda or dtype == 'fp32' or self.args.force_lowp:
            return None
        key = (dtype, channels_last)
        if key not in self.lowp_slowdown:
            try:
                self.lowp_slowdown[key] = measure.cpu_lowp_slowdown(
                    dtype, channels_last)
            except Exception as e:
                return f'{dtype} autocast fails on this CPU: {error_text(e)}'
        slowdown = self.lowp_slowdown[key]
        if slowdown > self.args.lowp_max_slowdown:
            fmt = 'channels_last' if channels_last else 'NCHW'
            return (f'{dtype} autocast runs a 3x3 conv ({fmt}) '
                    f'{slowdown:.0f}x slower than fp32 on this CPU '
                    f'({self.env["cpu"]}: no '
                    f'native {dtype} kernels); --force-lowp measures it '
                    'anyway')
        return None

    def run_group(self, index, total, group):
        from harness import measure, segmentors
        args = self.args
        model_info = group['model']
        h, w = group['shape']
        tag = (f'[{index}/{total}] {model_info["label"]} {h}x{w} '
               f'({group["suite"]})')
        records = [new_record(args, self.env, group, *v)
                   for v in group['variants']]
        if self.time_left() <= 0:
            for rec in records:
                self.finish(skip(rec, TIME_LIMIT_REACHED), tag)
            return
        progress(f'{tag}: building the model')
        try:
            cfg = segmentors.load_config(config_path(model_info['config']),
                                         args.num_classes)
            model = segmentors.build_model(cfg,
                                           model_info['config'],
                                           self.device,
                                           value_checks=args.value_checks)
        except Exception as e:
            for rec in records:
                self.finish(skip(rec, f'cannot build: {error_text(e)}'), tag)
            return
        initial = segmentors.snapshot_state(model)
        common = dict(model_arch=segmentors.model_name(model),
                      params_m=segmentors.count_params(model))
        progress(f'{tag}: {common["params_m"]:.2f} M parameters')
        if group['suite'] != 'with_cp':
            flops_rec = dict(errors={})
            gflops = self.measure(
                'flops', lambda d: measure.count_flops(model,
                                                       (h, w), self.device),
                flops_rec)
            common['gflops'] = gflops
            if gflops is not None:
                progress(f'{tag}: {gflops:.2f} GFLOPs')
            common_errors = flops_rec['errors']
        else:
            common_errors = {}
        costs = {}
        for rec in records:
            rec.update(common)
            rec['errors'].update(common_errors)
            variant = (f'{rec["dtype"]}, channels_last '
                       f'{"on" if rec["channels_last"] else "off"}')
            if rec['with_cp'] is not None:
                variant += f', with_cp {"on" if rec["with_cp"] else "off"}'
            vtag = f'{tag} {variant}'
            if self.time_left() <= 0:
                self.finish(skip(rec, TIME_LIMIT_REACHED), vtag)
                continue
            reason = self.lowp_skip_reason(rec['dtype'],
                                           rec['channels_last'])
            if reason:
                self.finish(skip(rec, reason), vtag)
                continue
            model.load_state_dict(initial)
            if rec['compile'] is not None:
                self.run_compiled(model, rec, vtag, costs)
            elif rec['with_cp'] is None:
                self.run_main(model, rec, vtag, costs)
            else:
                segmentors.set_with_cp(model, rec['with_cp'])
                self.run_train(model, rec, vtag)
            self.finish(rec, vtag)

    def run_main(self, model, rec, tag, costs):
        from harness import measure
        args = self.args
        shape = tuple(rec['shape'])
        dtype, cl = rec['dtype'], rec['channels_last']
        progress(f'{tag}: latency (batch 1)')
        times = self.measure(
            'latency', lambda d: measure.measure_inference(
                model, shape, 1, args.warmup, args.repeats, self.device,
                dtype, cl, d), rec)
        if times:
            add_spread(rec, 'latency_ms', times)
            rec['latency_runs'] = len(times)
            progress(f'{tag}: latency {rec["latency_ms"]:.1f} ms '
                     f'({rec["latency_ms_min"]:.1f}..'
                     f'{rec["latency_ms_max"]:.1f}); throughput sweep up to '
                     f'batch {args.max_batch}')
            batches = [b for b in (2**i for i in range(1, 16))
                       if b <= args.max_batch]
            sweep = None
            if batches:
                sweep = self.measure(
                    'throughput', lambda d: measure.best_throughput(
                        model, shape, batches, args.warmup, args.repeats,
                        self.device, dtype, cl, d), rec)
            one = 1000.0 / rec['latency_ms']
            best = dict(throughput_img_s=one, batch=1, times=times,
                        by_batch={}, stopped=None)
            if sweep is not None and sweep['throughput_img_s'] > one:
                best = sweep
            by_batch = {'1': one}
            if sweep is not None:
                by_batch.update({str(b): v
                                 for b, v in sweep['by_batch'].items()})
                best['stopped'] = sweep['stopped']
            b = best['batch']
            rec.update(
                throughput_img_s=best['throughput_img_s'],
                throughput_img_s_min=b / (max(best['times']) / 1000.0),
                throughput_img_s_max=b / (min(best['times']) / 1000.0),
                throughput_batch=b, throughput_by_batch=by_batch,
                throughput_note=best['stopped'])
            progress(f'{tag}: throughput {rec["throughput_img_s"]:.2f} img/s '
                     f'at batch {b}')
        if not args.no_train:
            self.run_train(model, rec, tag)
        key = rec['model_key'] or ''
        if args.roofline == 'all' or (args.roofline == 'frrn'
                                      and key.startswith('frrn')):
            self.run_roofline(model, rec, tag, costs)

    def run_compiled(self, model, rec, tag, costs):
        """Latency of the eager, then of the compiled forward at batch 1,
        and the compiled one's roofline figures from the eager forward's
        FLOPs and memory traffic (those of the operators; fusion moves
        fewer bytes, so the bound is that of the unfused graph)."""
        from harness import measure
        args = self.args
        shape = tuple(rec['shape'])
        eager = self.measure(
            'eager latency', lambda d: measure.measure_inference(
                model, shape, 1, args.warmup, args.repeats, self.device,
                rec['dtype'], rec['channels_last'], d), rec)
        if eager:
            rec['eager_latency_ms'] = statistics.median(eager)
            progress(f'{tag}: eager latency {rec["eager_latency_ms"]:.2f} '
                     'ms')
        progress(f'{tag}: compiling ({args.compile_backend}, '
                 f'{rec["compile"]}), latency (batch 1)')
        times = self.measure(
            'latency', lambda d: measure.measure_inference(
                model, shape, 1, rec['warmup'], args.repeats, self.device,
                rec['dtype'], rec['channels_last'], d,
                compile_mode=rec['compile'],
                compile_backend=args.compile_backend), rec,
            budget=args.compile_budget)
        if not times:
            return
        add_spread(rec, 'latency_ms', times)
        rec['latency_runs'] = len(times)
        progress(f'{tag}: latency {rec["latency_ms"]:.2f} ms '
                 f'({rec["latency_ms_min"]:.2f}..'
                 f'{rec["latency_ms_max"]:.2f})')
        self.run_roofline(model, rec, tag, costs)

    def run_roofline(self, model, rec, tag, costs):
        """The roofline figures of ``rec`` from the FLOPs and memory
        traffic of one eager forward, counted once per dtype of the group
        (``costs``)."""
        from harness import roofline
        dtype = rec['dtype']
        cost = costs.get(dtype)
        if cost is None:
            progress(f'{tag}: FLOPs and memory traffic of one forward')
            cost = self.measure(
                'roofline', lambda d: roofline.forward_cost(
                    model, tuple(rec['shape']), self.device, dtype,
                    rec['channels_last']), rec)
            costs[dtype] = cost
        if cost is not None:
            self.add_roofline(rec, cost)

    def run_train(self, model, rec, tag):
        from harness import measure
        args = self.args
        progress(f'{tag}: training steps (batch {rec["train_batch"]})')
        result = self.measure(
            'train', lambda d: measure.measure_training(
                model, tuple(rec['shape']), rec['train_batch'], args.warmup,
                args.repeats, self.device, rec['dtype'],
                rec['channels_last'], d), rec)
        if result is not None:
            times, mem, method = result
            add_spread(rec, 'train_step_ms', times)
            rec.update(train_runs=len(times), peak_train_mem_mb=mem,
                       mem_method=method)
            progress(f'{tag}: train step {rec["train_step_ms"]:.1f} ms, '
                     f'peak memory {mem:.0f} MB')

    def add_roofline(self, rec, cost):
        from harness import roofline
        rec['fwd_flops'] = cost['flops']
        rec['fwd_bytes'] = cost['bytes']
        if rec['latency_ms'] is None:
            return
        seconds = rec['latency_ms'] / 1000.0
        rec['achieved_tflops'] = cost['flops'] / seconds / 1e12
        rec['achieved_gbs'] = cost['bytes'] / seconds / 1e9
        peaks = roofline.device_peaks(rec['device'] if self.cuda else None,
                                      rec['dtype'])
        if peaks is not None:
            rec['peak_tflops'], rec['peak_gbs'] = peaks
            rec['bound_ms'] = 1000.0 * max(cost['flops'] / (peaks[0] * 1e12),
                                           cost['bytes'] / (peaks[1] * 1e9))
            rec['bound_ratio'] = rec['latency_ms'] / rec['bound_ms']

    def finish(self, rec, tag):
        if rec['status'] != 'skipped' and rec['errors']:
            measured = any(rec[k] is not None for k in
                           ('latency_ms', 'train_step_ms'))
            if measured:
                rec['status'] = 'partial'
                rec['reason'] = '; '.join(
                    f'{k}: {v}' for k, v in rec['errors'].items())
            else:
                skip(rec, '; '.join(f'{k}: {v}'
                                    for k, v in rec['errors'].items()))
        reference = self.args.reference
        if reference is not None:
            ref = rec if rec['model'] == reference['label'] else \
                find_reference(self.results, rec, reference['label'])
            add_ratios(rec, ref)
        self.results.add(rec)
        if rec['status'] == 'skipped':
            progress(f'{tag}: skipped: {rec["reason"]}')
        else:
            progress(f'{tag}: recorded ({rec["status"]})')


def default_out(device_label, quick):
    date = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    folder = (osp.join('work_dirs', 'benchmarks') if quick else osp.join(
        REPO, 'benchmarks', 'results'))
    return osp.join(folder, f'{slug(device_label)}-{date}.json')


def main(argv=None):
    args = parse_args(argv)
    from harness import machine, measure
    device = set_up_run(args)
    if args.max_batch is None:
        args.max_batch = 64 if device == 'cuda' else 4
    if args.budget is None:
        args.budget = 120.0 if device == 'cuda' else 300.0

    env = machine.environment(device, REPO, check_dirty=not args.no_git_status)
    env['command'] = shlex.join(['python'] + sys.argv)
    env['value_checks'] = args.value_checks
    if device == 'cpu' and not args.no_memory_cap:
        cap = measure.limit_cpu_memory()
        if cap:
            progress(f'address space capped at {cap / 2**30:.1f} GiB')
    out = args.out or default_out(
        'cpu' if device == 'cpu' else env['device'], args.quick)
    results = Results(out)
    groups = plan(args)
    progress(f'{env["device"]} ({env["cpu"]}, {env["threads"]} threads), '
             f'torch {env["torch"]}, commit {env["commit"]}'
             f'{" (dirty)" if env.get("dirty") else ""}; '
             f'{sum(len(g["variants"]) for g in groups)} records in '
             f'{len(groups)} model builds -> {out}')
    runner = Runner(args, env, results, device)
    for i, group in enumerate(groups, 1):
        runner.run_group(i, len(groups), group)
        measure.free_memory(device)  # the group's model is gone now
    counts = {}
    for rec in results.records:
        counts[rec['status']] = counts.get(rec['status'], 0) + 1
    progress(f'done in {time.monotonic() - runner.start:.0f} s: '
             + ', '.join(f'{n} {s}' for s, n in sorted(counts.items()))
             + f'; wrote {out}')
    sys.stdout.write(out + '\n')


if __name__ == '__main__':
    main()
