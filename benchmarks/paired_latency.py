"""Latency ratios to DeepLabV3-R101-D8 from interleaved rounds.

``benchmark_models.py`` measures the models one after another, minutes
apart. Where the machine's speed drifts (a shared VM, a GPU warming up), a
ratio of two medians taken minutes apart carries the drift. On the 2-core
development VM two runs of ``benchmark_models.py`` ten hours apart, with
the same inference code, gave latencies 0.70x to 1.27x the earlier ones,
and RefineNet-R101's throughput ratio x1.46 in one and x1.26 in the other.

This script builds every model first, then runs rounds. In each round
every model runs one eval forward (``model(x, mode='tensor')``, the same
random input of batch ``--batch``), in an order rotated by one model per
round. A model's ratio in a round is its time over the reference's time in
that round, seconds apart. A record holds the median of those ratios and
their quartiles, and the model's median latency::

    python benchmarks/paired_latency.py [--models KEY ...] [--shape H W]
        [--rounds N] [--dtype fp32|bf16|fp16] [--channels-last]
        [--time-limit S] [--out FILE]

Records (suite ``paired``) go to ``benchmarks/results/`` after every round,
so a run cut short keeps the rounds it finished; ``python
benchmarks/render.py`` shows them in ``docs/benchmarks.md``.
"""
import datetime
import os.path as osp
import shlex
import statistics
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from benchmark_models import (REFERENCE, Results,  # noqa
                              set_up_run, config_path, error_text,
                              models_parser, progress, resolve_models)

from harness.cli import fail, positive_float, positive_int  # noqa: E402

SUITE = 'paired'
# the models of the inference goals and the reference
DEFAULT_MODELS = ('deeplabv3_r101', 'refinenet_r101', 'lw_refinenet_r101',
                  'frrn_a', 'frrn_b')


def parse_args(argv=None):
    parser = models_parser(__doc__.split('\n')[0])
    parser.add_argument('--shape', type=positive_int, nargs=2,
                        default=[512, 1024], metavar=('H', 'W'))
    parser.add_argument('--batch', type=positive_int, default=1)
    parser.add_argument('--rounds', type=positive_int, default=20,
                        help='timed rounds (default 20)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed rounds first (default 2)')
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'],
                        default='fp32', help='autocast dtype')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--reference',
                        help='model key or label of the ratios (default: '
                        f'{REFERENCE} when selected, else the first model)')
    parser.add_argument('--num-classes', type=positive_int, default=19)
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'],
                        default='auto')
    parser.add_argument('--threads', type=positive_int,
                        help='torch intra-op threads (CPU)')
    parser.add_argument('--time-limit', type=positive_float,
                        help='seconds: no round starts after them (at least '
                        'one timed round runs)')
    parser.add_argument('--out', help='result file (default: '
                        'benchmarks/results/paired-DEVICE-DATE.json)')
    parser.add_argument('--no-git-status', action='store_true',
                        help='do not run git status for the dirty flag')
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error(f'--warmup must be 0 or more, not {args.warmup}')
    args.models = resolve_models(args.models or list(DEFAULT_MODELS))
    labels = [m['label'] for m in args.models]
    if len(set(labels)) != len(labels):
        parser.error('--models: a model is named twice')
    wanted = args.reference or REFERENCE
    reference = next((m for m in args.models
                      if wanted in (m['key'], m['label'])), None)
    if reference is None and args.reference:
        parser.error(f'--reference {args.reference!r} is not among --models')
    args.reference = reference or args.models[0]
    return args


def round_order(num_models, round_index):
    """The model indices of a round: ``0 .. n-1`` rotated by the round, so
    that every model runs at every place of a round equally often."""
    return [(round_index + i) % num_models for i in range(num_models)]


def paired_stats(times, reference):
    """Per model: median latency and the quartiles of its per-round ratio.

    Args:
        times (dict): label -> list of ms, one per round, the rounds in the
            same order for every model.
        reference (str): the label the ratios refer to.

    Returns:
        dict: label -> ``latency_ms`` (median), ``latency_ms_min``,
        ``latency_ms_max``, ``ratio`` (median of ``time / reference time``
        over the rounds), ``ratio_q1``, ``ratio_q3``, ``ratio_min``,
        ``ratio_max`` and ``rounds``.
    """
    ref = times[reference]
    stats = {}
    for label, ms in times.items():
        if len(ms) != len(ref):
            raise ValueError(f'{label}: {len(ms)} rounds, the reference '
                             f'{len(ref)}')
        ratios = [t / r for t, r in zip(ms, ref)]
        if len(ratios) > 1:
            q1, _, q3 = statistics.quantiles(ratios, n=4,
                                             method='inclusive')
        else:
            q1 = q3 = ratios[0]
        stats[label] = dict(
            latency_ms=statistics.median(ms), latency_ms_min=min(ms),
            latency_ms_max=max(ms), ratio=statistics.median(ratios),
            ratio_q1=q1, ratio_q3=q3, ratio_min=min(ratios),
            ratio_max=max(ratios), rounds=len(ms))
    return stats


def build(args, device):
    """label -> model in eval mode, and the labels that failed (reason)."""
    from harness import measure, segmentors
    models, failed = {}, {}
    for info in args.models:
        label = info['label']
        try:
            cfg = segmentors.load_config(config_path(info['config']),
                                         args.num_classes)
            model = segmentors.build_model(cfg, info['config'], device)
        except Exception as e:
            failed[label] = f'cannot build: {error_text(e)}'
            progress(f'{label}: {failed[label]}')
            continue
        model.eval()
        measure.prepare(model, args.channels_last)
        models[label] = model
        progress(f'{label}: built ({segmentors.count_params(model):.2f} M '
                 'parameters)')
    return models, failed


def make_record(env, args, info, stats=None, reason=None):
    record = dict(env)
    record.update(
        suite=SUITE, status='ok' if stats else 'skipped', reason=reason,
        model=info['label'], model_key=info['key'], config=info['config'],
        num_classes=args.num_classes, shape=list(args.shape),
        batch=args.batch, dtype=args.dtype,
        channels_last=args.channels_last, warmup=args.warmup,
        reference=args.reference['label'],
        date=datetime.datetime.now().isoformat(timespec='seconds'))
    record.update(stats or {})
    return record


def main(argv=None):
    args = parse_args(argv)
    import torch
    from harness import machine, measure
    device = set_up_run(args)
    env = machine.environment(device, REPO, check_dirty=not args.no_git_status)
    env['command'] = shlex.join(['python'] + sys.argv)
    out = args.out or osp.join(
        REPO, 'benchmarks', 'results',
        f'paired-{"cpu" if device == "cpu" else "gpu"}-'
        f'{datetime.datetime.now():%Y%m%d-%H%M%S}.json')
    deadline = (time.monotonic() + args.time_limit
                if args.time_limit else None)

    models, failed = build(args, device)
    reference = args.reference['label']
    if reference not in models:
        fail(f'the reference {reference} could not be built: '
             f'{failed[reference]}')
    labels = list(models)
    x = measure.make_input(args.batch, args.shape, device, args.channels_last)

    def forward(label):
        """One eval forward of the model, in ms."""
        def run():
            with torch.no_grad(), measure.autocast(device, args.dtype):
                models[label](x, mode='tensor')
        (ms, ) = measure.timed(run, 0, 1, device)
        return ms

    progress(f'{env["device"]} ({env["threads"]} threads), {len(labels)} '
             f'models at {args.shape[0]}x{args.shape[1]}, batch '
             f'{args.batch}, {args.dtype}'
             f'{", channels_last" if args.channels_last else ""}; '
             f'{args.warmup} warm-up and {args.rounds} timed rounds -> {out}')
    for r in range(args.warmup):
        for i in round_order(len(labels), r):
            forward(labels[i])
    times = {label: [] for label in labels}
    results = Results(out)  # the file holds the rounds done so far
    for r in range(args.rounds):
        if r and deadline is not None and time.monotonic() > deadline:
            progress(f'time limit: {r} of {args.rounds} rounds')
            break
        for i in round_order(len(labels), r):
            times[labels[i]].append(forward(labels[i]))
        stats = paired_stats(times, reference)
        results.replace(
            make_record(env, args, info, stats.get(info['label']),
                        failed.get(info['label'])) for info in args.models)
        progress(f'round {r + 1}: ' + ', '.join(
            f'{label} x{stats[label]["ratio"]:.2f}' for label in labels
            if label != reference))
    for label in labels:
        s = stats[label]
        progress(f'{label:20s} {s["latency_ms"]:9.1f} ms  x{s["ratio"]:.3f} '
                 f'({s["ratio_q1"]:.3f}..{s["ratio_q3"]:.3f}) of {reference}')
    sys.stdout.write(out + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
