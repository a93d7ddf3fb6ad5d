"""Plot training curves (loss, mIoU, ...) of MMEngine work dirs.

Reads the JSON scalar log that MMEngine's ``LocalVisBackend`` writes,
``<work_dir>/<timestamp>/vis_data/scalars.json``: one JSON object per line,
``{"lr": ..., "loss": ..., "iter": 25, "step": 25}`` for a training log
interval and ``{"aAcc": ..., "mIoU": ..., "step": 300}`` after a
validation. Each key gets one subplot (x: ``step``), each work dir one
line::

    python tools/analysis/plot_curves.py work_dirs/a work_dirs/b \\
        --out curves.png [--keys loss mIoU]

A work dir with several runs (timestamp folders) is plotted from its latest
run that has a scalar log. A run folder or a ``scalars.json`` file can be
given instead of a work dir.
"""
import argparse
import glob
import json
import os.path as osp
import sys


class _ArgumentParser(argparse.ArgumentParser):
    """Reports wrong arguments on one line, with exit status 2."""

    def error(self, message):
        fail(message)


def fail(message, status=2):
    sys.stderr.write(f'error: {message}\n')
    sys.exit(status)


def parse_args(argv=None):
    parser = _ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                        help='work dirs, run folders or scalars.json files')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--keys', nargs='+', default=['loss', 'mIoU'],
                        help='scalars to plot, one subplot each')
    parser.add_argument('--labels', nargs='+',
                        help='legend names (default: the work-dir names)')
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.work_dirs):
        parser.error(f'--labels: {len(args.labels)} names for '
                     f'{len(args.work_dirs)} work dirs')
    return args


def find_log(path):
    """Returns the scalars.json of a work dir, run folder or file."""
    if osp.isfile(path):
        return path
    if not osp.isdir(path):
        fail(f'work dir not found: {path}')
    direct = osp.join(path, 'vis_data', 'scalars.json')
    if osp.isfile(direct):
        return direct
    runs = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not runs:
        fail(f'no MMEngine scalar log in {path} (looked for '
             f'{osp.join(path, "<timestamp>", "vis_data", "scalars.json")})')
    return runs[-1]  # timestamp folders sort by time


def read_log(path):
    """Returns the records of a scalars.json, one dict per line."""
    records = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f'{path}:{lineno}: not a JSON object ({e.msg})')
            if not isinstance(record, dict) or 'step' not in record:
                fail(f'{path}:{lineno}: not an MMEngine scalar record '
                     '(no "step")')
            records.append(record)
    if not records:
        fail(f'{path} is empty')
    return records


def curve(records, key):
    points = [(r['step'], r[key]) for r in records
              if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def main(argv=None):
    args = parse_args(argv)
    out_dir = osp.dirname(osp.abspath(args.out))
    if not osp.isdir(out_dir):
        fail(f'output folder does not exist: {out_dir}')
    logs = [(path, find_log(path)) for path in args.work_dirs]
    labels = args.labels or [
        osp.basename(osp.normpath(path)) for path in args.work_dirs
    ]
    if len(set(labels)) < len(labels):  # same folder names: full paths
        labels = [osp.normpath(path) for path in args.work_dirs]
    data = [read_log(log) for _, log in logs]
    found = [k for k in args.keys if any(curve(d, k)[0] for d in data)]
    missing = [k for k in args.keys if k not in found]
    if not found:
        fail(f'none of the keys {args.keys} is in the logs '
             f'({", ".join(log for _, log in logs)})')
    if missing:
        print(f'warning: no values of {missing} in any log', file=sys.stderr)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(found), figsize=(6 * len(found), 4.5),
                             squeeze=False)
    for ax, key in zip(axes[0], found):
        for label, records in zip(labels, data):
            steps, values = curve(records, key)
            if steps:
                ax.plot(steps, values, marker='o' if len(steps) < 20 else
                        None, markersize=3, label=label)
        ax.set_title(key)
        ax.set_xlabel('iteration (step)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    for (path, log), label in zip(logs, labels):
        print(f'{label}: {log}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
