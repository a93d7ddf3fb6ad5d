"""Render the CamVid GPU experiment into docs/results.

Reads the result files of one GPU run of the five CamVid models::

    RUN_DIR/results/<key>.json    one record per model (key: frrn-a,
                                  refinenet-r50, fcn-r50-d8,
                                  deeplabv3-r50-d8, unet-s5-d16)
    RUN_DIR/preds/stems.txt       the test images of the prediction figure
    RUN_DIR/preds/<key>/<stem>.png  8-bit label PNGs (0..10, 255 = void)
    DATA/img_dir/test/<stem>.png  the test images (CamVid in MMSeg layout)
    DATA/ann_dir/test/<stem>.png  their ground truth (0..10, 255 = void)

and writes, in the ``--docs`` folder (default ``docs/results``):

* ``camvid.json``: its ``"kind": "gpu"`` records of the models found in
  RUN_DIR are replaced by the new ones (every field of the result file,
  plus ``kind``, ``command`` = the train command, ``date`` and
  ``peak_memory_gb`` = ``peak_memory_mb / 1024``); the placeholders'
  ``status`` and ``planned_commands`` go. A model absent from RUN_DIR keeps
  its record as it was. GPU records come first, in the order FRRN A,
  RefineNet-R50, FCN, DeepLabV3, UNet, then the CPU pilot's (same order);
  every other record follows, untouched and in its order.
* ``camvid.md``: only the section from the ``## GPU experiment`` heading
  to the next ``## `` heading is rewritten (the rest is kept byte for
  byte): device, commit (the training's; each test's commit, from the
  records' ``test_commits``, where it differs), date, the schedule used,
  the main table, the literature anchors and the goals with a verdict
  computed from the numbers, per-class IoU (single scale and ms+flip),
  the trimap curve, the commands.
* ``camvid_trimap.png``, ``camvid_val_curve.png`` and
  ``camvid_predictions.png`` next to it (matplotlib, Agg).

``--kind cpu_pilot`` renders a scaled-down run of the same five models on
a CPU (``camvid_experiment.py`` with fewer iterations and ``--extra``
config overrides) the same way, into its own places: the
``"kind": "cpu_pilot"`` records, the ``## CPU pilot`` section (added
after the GPU section when camvid.md has none yet) and
``camvid_pilot_*.png``. Its section says what was scaled down and has no
anchors and no goals (a pilot is not comparable with them), only the
order of the models by test mIoU.

Usage::

    python tools/analysis/camvid_report.py RUN_DIR --data data/camvid \\
        [--docs docs/results] [--anchors] [--kind {gpu,cpu_pilot}]

``--anchors`` also adds the literature anchors (SegNet-Basic, ENet,
FC-DenseNet103; test mIoU only) as rows of the main table and as dashed
lines in the validation plot; the anchors line and the goals are always
written.

Nothing is invented: every number comes from a record. A measured field
missing (or null) in a record is rendered as ``-`` and listed in the
"Missing" line. Identity fields (key, model, config, commit, device, the
training command, schedule, iterations) are required (the test commands
are null for a model whose tests never ran): a record without them, a
field of the wrong type or schedules that differ between models (other
than ``concurrent_models``; the comparison needs one identical schedule)
stop the script with a one-line ``error:`` and exit status 2. Re-running on the
same inputs writes identical files. Neither torch nor mmseg is imported:
it runs on any machine with numpy, matplotlib and Pillow.
"""
import argparse
import ast
import datetime
import glob
import json
import os
import os.path as osp
import re
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SECTION = '## GPU experiment'
#: what each ``--kind`` writes: its camvid.md section (from its heading to
#: the next ``## ``), the ``kind`` of its camvid.json records and the names
#: of its figures. ``cpu_pilot``: the same five models and schedule scaled
#: down to a CPU (fewer iterations, config overrides such as a lower input
#: resolution), a check of the set-up on the real splits, not a result of
#: the comparison (no anchors, no goals).
KINDS = {
    'gpu': dict(heading=SECTION, figure_prefix='camvid_'),
    'cpu_pilot': dict(heading='## CPU pilot', figure_prefix='camvid_pilot_'),
}
# key, name of the placeholder, config, group (goal 2 compares the groups)
MODELS = [
    ('frrn-a', 'FRRN A',
     'configs/camvid/frrn-a_1xb8-20k_camvid-360x480.py', 'ours'),
    ('refinenet-r50', 'RefineNet-R50 (4-cascaded)',
     'configs/camvid/refinenet_r50_1xb8-20k_camvid-360x480.py', 'ours'),
    ('fcn-r50-d8', 'FCN-R50-D8',
     'configs/camvid/fcn_r50-d8_1xb8-20k_camvid-360x480.py', 'mmseg'),
    ('deeplabv3-r50-d8', 'DeepLabV3-R50-D8',
     'configs/camvid/deeplabv3_r50-d8_1xb8-20k_camvid-360x480.py', 'mmseg'),
    ('unet-s5-d16', 'UNet-S5-D16 + FCN head',
     'configs/camvid/unet-s5-d16_fcn_1xb8-20k_camvid-360x480.py', 'mmseg'),
]
KEYS = [m[0] for m in MODELS]
# Test mIoU (%) from scratch on the SegNet split of CamVid (literature).
ANCHORS = [('SegNet-Basic', 46.3), ('ENet', 51.3), ('FC-DenseNet103', 66.9)]
FRRN_GOAL = 60.0
REQUIRED_JSON = ('model', 'config', 'command', 'commit', 'device',
                 'iterations', 'test_miou', 'test_miou_ms_flip', 'val_miou',
                 'per_class_iou')
SCHEDULE_KEYS = ('iterations', 'batch_size', 'warmup_iters', 'lr', 'amp',
                 'planned_iterations', 'concurrent_models')
MAX_FIGURE_BYTES = 600 * 1024
LEGEND_IN = 0.5  # height (inches) below the prediction panels
NUMBER = (int, float)


class _ArgumentParser(argparse.ArgumentParser):
    """Reports wrong arguments on one line, with exit status 2."""

    def error(self, message):
        fail(message)


class SchemaError(ValueError):
    pass


def fail(message, status=2):
    sys.stderr.write(f'error: {message}\n')
    sys.exit(status)


# --------------------------------------------------------------------------
# CamVid classes, read from the dataset's source (no mmseg import)
# --------------------------------------------------------------------------
def camvid_metainfo():
    """``CamVidDataset.METAINFO`` of mmseg_refinenet/datasets/camvid.py,
    parsed with ast so that mmseg is not imported."""
    path = osp.join(REPO, 'mmseg_refinenet', 'datasets', 'camvid.py')
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'METAINFO'
                for t in node.targets)):
            continue
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, 'id',
                                                   None) == 'dict':
            info = {kw.arg: ast.literal_eval(kw.value)
                    for kw in value.keywords}
        else:
            info = ast.literal_eval(value)
        return tuple(info['classes']), [tuple(c) for c in info['palette']]
    raise RuntimeError(f'no METAINFO in {path}')


CLASSES, PALETTE = camvid_metainfo()


# --------------------------------------------------------------------------
# reading and checking the records
# --------------------------------------------------------------------------
def is_number(value):
    return isinstance(value, NUMBER) and not isinstance(value, bool)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value):
    return 'null' if value is None else type(value).__name__


def check_record(rec, name):
    """Raises SchemaError naming the first missing or ill-typed field."""
    if not isinstance(rec, dict):
        raise SchemaError(f'{name}: expected a JSON object, got '
                          f'{_type_name(rec)}')

    def need(field, ok, what):
        if field not in rec:
            raise SchemaError(f'{name}: missing field {field!r}')
        if not ok(rec[field]):
            raise SchemaError(f'{name}: field {field!r} must be {what}, got '
                              f'{_type_name(rec[field])}')

    def opt(field, ok, what):
        if rec.get(field) is not None and not ok(rec[field]):
            raise SchemaError(f'{name}: field {field!r} must be {what} or '
                              f'null, got {_type_name(rec[field])}')

    def text(v):
        return isinstance(v, str) and bool(v)

    need('key', text, 'a string')
    need('model', text, 'a string')
    need('config', text, 'a string')
    need('commit', text, 'a string')
    need('device', text, 'a string')
    need('commands', lambda v: isinstance(v, dict), 'an object')
    if not text(rec['commands'].get('train')):
        raise SchemaError(f'{name}: field \'commands.train\' must be a '
                          'string')
    # a model whose tests never ran (its job's time ran out) has no
    # test commands, and no test figures
    for sub in ('test', 'test_ms_flip'):
        value = rec['commands'].get(sub)
        if value is not None and not text(value):
            raise SchemaError(f'{name}: field \'commands.{sub}\' must be a '
                              f'string or null, got {_type_name(value)}')
    need('schedule', lambda v: isinstance(v, dict), 'an object')
    need('iterations', is_int, 'an integer')
    for field in ('iterations', 'batch_size', 'warmup_iters',
                  'planned_iterations', 'concurrent_models'):
        value = rec['schedule'].get(field)
        if value is not None and not is_int(value):
            raise SchemaError(f'{name}: field \'schedule.{field}\' must be '
                              f'an integer, got {_type_name(value)}')
    for field in ('wall_time_s', 'peak_memory_mb', 'val_miou', 'test_miou',
                  'test_aacc', 'test_miou_ms_flip'):
        opt(field, is_number, 'a number')
    opt('val_best_iter', is_int, 'an integer')
    for field in ('torch', 'prediction_dir', 'date'):
        opt(field, text, 'a string')

    def dirty_flag(v):
        # a JSON boolean, or null where it was not recorded; not `in (True,
        # False, None)`, which lets 0 and 1 through (1 == True in Python)
        return v is None or isinstance(v, bool)

    opt('dirty', dirty_flag, 'true or false')

    def test_commit(c):
        return c is None or (isinstance(c, dict) and text(c.get('commit'))
                             and dirty_flag(c.get('dirty')))

    def test_commits(v):
        return isinstance(v, dict) and set(v) <= {'test', 'test_ms_flip'} \
            and all(map(test_commit, v.values()))

    # opt adds the field's own ' or null'
    opt('test_commits', test_commits, 'an object {"test", "test_ms_flip"} '
        'of {"commit": string, "dirty": true, false or null}')

    def curve(v):
        return isinstance(v, list) and all(
            isinstance(p, list) and len(p) == 2 and all(map(is_number, p))
            for p in v)

    opt('val_curve', curve, 'a list of [iteration, value] pairs')
    opt('loss_curve', curve, 'a list of [iteration, value] pairs')
    for field in ('per_class_iou', 'per_class_iou_ms_flip'):
        opt(field, lambda d: isinstance(d, dict) and all(
            v is None or is_number(v) for v in d.values()),
            'an object of class: number')
        unknown = sorted(set(rec.get(field) or {}) - set(CLASSES))
        if unknown:
            raise SchemaError(f'{name}: field {field!r} has unknown '
                              f'class {unknown[0]!r}')
    trimap = rec.get('trimap')
    if trimap is not None:
        ok = (isinstance(trimap, dict)
              and isinstance(trimap.get('radii'), list)
              and isinstance(trimap.get('miou'), list)
              and len(trimap['radii']) == len(trimap['miou'])
              and all(map(is_number, trimap['radii']))
              and all(v is None or is_number(v) for v in trimap['miou']))
        if not ok:
            raise SchemaError(f'{name}: field \'trimap\' must be '
                              '{"radii": [numbers], "miou": [numbers]} of '
                              'equal length or null')
    if rec['key'] not in KEYS:
        raise SchemaError(f'{name}: unknown key {rec["key"]!r} (expected '
                          f'one of {", ".join(KEYS)})')
    stem = osp.splitext(osp.basename(name))[0]
    if stem != rec['key']:
        raise SchemaError(f'{name}: key {rec["key"]!r} differs from the '
                          f'file name {stem!r}')


def check_schedules(records):
    """One schedule for every model: all equal but concurrent_models."""
    def bare(rec):
        return {k: v for k, v in rec['schedule'].items()
                if k != 'concurrent_models'}

    first = records[0]
    for rec in records[1:]:
        a, b = bare(first), bare(rec)
        if a != b:
            field = sorted(k for k in set(a) | set(b)
                           if a.get(k, '<absent>') != b.get(k, '<absent>'))[0]
            raise SchemaError(
                'schedules differ (the comparison needs one identical '
                'schedule'
                f'): {first["key"]}.json has {field}='
                f'{json.dumps(a.get(field, "<absent>"))}, {rec["key"]}.json '
                f'has {field}={json.dumps(b.get(field, "<absent>"))}')


def record_date(rec, path):
    if rec.get('date'):
        return rec['date']
    mtime = os.stat(path).st_mtime
    return datetime.datetime.fromtimestamp(
        mtime, datetime.timezone.utc).strftime('%Y-%m-%d')


def load_run(run_dir):
    """{key: record} of RUN_DIR/results/*.json, checked."""
    paths = sorted(glob.glob(osp.join(run_dir, 'results', '*.json')))
    if not paths:
        raise SchemaError(f'no results/*.json in {run_dir}')
    records = {}
    for path in paths:
        name = osp.join(osp.basename(osp.dirname(path)), osp.basename(path))
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError) as e:
            raise SchemaError(f'{name}: cannot read: {e}'.replace('\n', ' '))
        check_record(rec, name)
        rec = dict(rec)
        rec.setdefault('date', record_date(rec, path))
        records[rec['key']] = rec
    check_schedules([records[k] for k in KEYS if k in records])
    return records


# --------------------------------------------------------------------------
# camvid.json
# --------------------------------------------------------------------------
def record_key(rec):
    """The model key of a GPU record of camvid.json (by key or config)."""
    if rec.get('key') in KEYS:
        return rec['key']
    config = osp.basename(rec.get('config') or '')
    for key, _, cfg, _ in MODELS:
        if osp.basename(cfg) == config:
            return key
    return None


def json_record(rec, kind='gpu'):
    out = {'kind': kind, 'key': rec['key'], 'model': rec['model'],
           'config': rec['config'], 'command': rec['commands']['train']}
    for field, value in rec.items():
        if field not in out:
            out[field] = value
    for field in REQUIRED_JSON:
        out.setdefault(field, None)
    mem = rec.get('peak_memory_mb')
    out['peak_memory_gb'] = None if mem is None else round(mem / 1024, 2)
    return out


def merge_json(old, records, kind='gpu'):
    """``old`` with the records of ``kind`` of the models in ``records``
    replaced: the records of each kind of KINDS (GPU first, then the CPU
    pilot) in model order, then every other record in its order."""
    groups, others = {k: {} for k in KINDS}, []
    for rec in old:
        group = groups.get(rec.get('kind'))
        key = record_key(rec) if group is not None else None
        if key is not None and key not in group:
            group[key] = rec
        else:
            others.append(rec)
    for key, rec in records.items():
        groups[kind][key] = json_record(rec, kind)
    return [groups[k][key] for k in KINDS for key in KEYS
            if key in groups[k]] + others


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------
def fmt(value, digits=2):
    return '-' if value is None else f'{value:.{digits}f}'


def fmt_minutes(seconds):
    return '-' if seconds is None else f'{seconds / 60:.1f} min'


def fmt_gb(mb):
    return '-' if mb is None else f'{mb / 1024:.2f}'


def fmt_value(value):
    if isinstance(value, float):
        return f'{value:g}'
    return str(value)


def config_link(config):
    if config.startswith('configs/'):
        return f'[{osp.basename(config)}](../../{config})'
    return f'`{config}`'


def table(header, align, rows):
    rule = ['---:' if a == 'r' else '---' for a in align]
    lines = ['| ' + ' | '.join(header) + ' |',
             '| ' + ' | '.join(rule) + ' |']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return lines


def missing_fields(rec, stems, pred_status):
    out = []
    for field in ('torch', 'dirty', 'wall_time_s', 'peak_memory_mb',
                  'val_miou', 'val_best_iter', 'val_curve', 'loss_curve',
                  'test_miou', 'test_aacc', 'test_miou_ms_flip', 'trimap',
                  'prediction_dir'):
        if rec.get(field) is None:
            out.append(field)
    for field in SCHEDULE_KEYS:
        if rec['schedule'].get(field) is None:
            out.append(f'schedule.{field}')
    for field in ('per_class_iou', 'per_class_iou_ms_flip'):
        if rec.get(field) is None:
            out.append(field)
        else:
            out += [f'{field}[{c}]' for c in CLASSES
                    if rec[field].get(c) is None]
    if rec.get('trimap') is not None:
        out += [f'trimap.miou[r={fmt_value(r)}]' for r, v in
                zip(rec['trimap']['radii'], rec['trimap']['miou'])
                if v is None]
    if rec.get('prediction_dir') is not None:
        out += [f'prediction {stem}' for stem in stems
                if pred_status.get((rec['key'], stem)) is not None]
    return out


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------
def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, dpi=80):
    """Write ``fig`` (no software tag, for stable bytes) and close it."""
    fig.savefig(path, dpi=dpi, metadata={'Software': None})
    _pyplot().close(fig)


def model_color(key):
    return f'C{KEYS.index(key)}'


def plot_trimap(runs, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    radii = set()
    for rec in runs:
        trimap = rec.get('trimap')
        if not trimap:
            continue
        points = [(r, v) for r, v in zip(trimap['radii'], trimap['miou'])
                  if v is not None]
        if not points:
            continue
        radii.update(r for r, _ in points)
        ax.plot([p[0] for p in points], [p[1] for p in points], 'o-',
                color=model_color(rec['key']), label=rec['model'])
    ax.set_xscale('log', base=2)
    ax.set_xticks(sorted(radii))
    ax.set_xticklabels([fmt_value(r) for r in sorted(radii)])
    ax.minorticks_off()
    ax.set_xlabel('trimap band radius around label boundaries (px)')
    ax.set_ylabel('test mIoU in the band (%)')
    ax.set_title('CamVid test, single scale')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_curves(runs, path, anchors=False):
    plt = _pyplot()
    with_loss = any(rec.get('loss_curve') for rec in runs)
    fig, axes = plt.subplots(1, 2 if with_loss else 1,
                             figsize=(11 if with_loss else 6.4, 4.0),
                             squeeze=False)
    ax = axes[0][0]
    for rec in runs:
        curve = rec.get('val_curve')
        if curve:
            ax.plot([p[0] for p in curve], [p[1] for p in curve], 'o-',
                    ms=3, color=model_color(rec['key']), label=rec['model'])
    if anchors:
        for i, (name, value) in enumerate(ANCHORS):
            ax.axhline(value, ls='--', lw=0.8, color=f'C{7 + i}',
                       label=f'{name} {value} (test, literature)')
    ax.set_xlabel('iteration')
    ax.set_ylabel('val mIoU (%)')
    ax.set_title('CamVid val mIoU during training')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if with_loss:
        ax = axes[0][1]
        for rec in runs:
            curve = rec.get('loss_curve')
            if curve:
                ax.plot([p[0] for p in curve], [p[1] for p in curve], '-',
                        lw=1, color=model_color(rec['key']),
                        label=rec['model'])
        ax.set_yscale('log')
        from matplotlib.ticker import FuncFormatter
        plain = FuncFormatter(lambda v, _: f'{v:g}')
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis='y', which='minor', labelsize=7)
        ax.set_xlabel('iteration')
        ax.set_ylabel('training loss (log scale)')
        ax.set_title('training loss (as logged)')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def colorize(label):
    import numpy as np
    lut = np.zeros((256, 3), np.uint8)  # void (255) and unknown: black
    lut[:len(PALETTE)] = PALETTE
    return lut[label]


def read_label(path):
    """(array, None) of an 8-bit label PNG, or (None, reason)."""
    import numpy as np
    from PIL import Image
    if not osp.isfile(path):
        return None, 'missing'
    with Image.open(path) as img:
        if img.mode not in ('L', 'P'):
            return None, f'not an 8-bit label PNG ({img.mode})'
        return np.array(img), None


def read_stems(run_dir):
    path = osp.join(run_dir, 'preds', 'stems.txt')
    if not osp.isfile(path):
        return []
    with open(path) as f:
        stems = [line.strip() for line in f if line.strip()]
    return stems[:4]


def prediction_status(runs, run_dir, stems):
    """{(key, stem): reason} of the unusable prediction PNGs."""
    status = {}
    for rec in runs:
        if rec.get('prediction_dir') is None:
            continue
        for stem in stems:
            _, reason = read_label(osp.join(run_dir, rec['prediction_dir'],
                                            stem + '.png'))
            if reason is not None:
                status[(rec['key'], stem)] = reason
    return status


def plot_predictions(runs, run_dir, data, stems, path):
    import numpy as np
    from matplotlib.patches import Patch
    from PIL import Image
    plt = _pyplot()
    columns = ['image', 'ground truth'] + [rec['model'] for rec in runs]
    for dpi in (80, 64, 48):
        fig, axes = plt.subplots(len(stems), len(columns), squeeze=False,
                                 figsize=(2.4 * len(columns),
                                          1.9 * len(stems) + LEGEND_IN))
        for i, stem in enumerate(stems):
            gt, reason = read_label(
                osp.join(data, 'ann_dir', 'test', stem + '.png'))
            img_path = osp.join(data, 'img_dir', 'test', stem + '.png')
            size = None
            if gt is not None:
                h, w = gt.shape
                scale = min(1.0, 240 / w)
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
            panels = []
            if osp.isfile(img_path):
                with Image.open(img_path) as im:
                    im = im.convert('RGB')
                    size = size or im.size
                    panels.append(np.array(im.resize(size, Image.BILINEAR)))
            else:
                panels.append('image missing')
            panels.append(colorize(np.array(Image.fromarray(gt).resize(
                size, Image.NEAREST))) if gt is not None else
                f'ground truth {reason}')
            for rec in runs:
                pred, reason = (None, 'missing') \
                    if rec.get('prediction_dir') is None else read_label(
                        osp.join(run_dir, rec['prediction_dir'],
                                 stem + '.png'))
                if pred is None:
                    panels.append(f'prediction {reason}')
                else:
                    if size is not None:
                        pred = np.array(Image.fromarray(pred).resize(
                            size, Image.NEAREST))
                    panels.append(colorize(pred))
            for j, (ax, panel) in enumerate(zip(axes[i], panels)):
                if isinstance(panel, str):
                    ax.text(0.5, 0.5, panel, ha='center', va='center',
                            fontsize=7, transform=ax.transAxes)
                else:
                    ax.imshow(panel, interpolation='nearest')
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(columns[j], fontsize=8)
                if j == 0:
                    ax.set_ylabel(stem, fontsize=7)
        handles = [Patch(color=np.array(c) / 255, label=name)
                   for name, c in zip(CLASSES, PALETTE)]
        handles.append(Patch(color='black', label='void'))
        fig.legend(handles=handles, loc='lower center', ncol=6, fontsize=7,
                   frameon=False)
        fig.tight_layout(
            rect=(0, LEGEND_IN / (1.9 * len(stems) + LEGEND_IN), 1, 1))
        _save(fig, path, dpi)
        if os.path.getsize(path) <= MAX_FIGURE_BYTES:
            break


# --------------------------------------------------------------------------
# camvid.md
# --------------------------------------------------------------------------
def one_or_list(values):
    values = sorted(set(values))
    return values[0] if len(values) == 1 else None


def same_commit(a, b):
    """Commits as recorded, full or abbreviated: the same if one is a
    prefix of the other."""
    return a.startswith(b) or b.startswith(a)


def tree_state(rec):
    """What a record (or a test's {"commit", "dirty"}) says of its tree."""
    return {True: 'dirty tree: uncommitted changes', False: 'clean tree',
            None: 'dirty: not recorded'}[rec.get('dirty')]


def tested_elsewhere(runs):
    """'MODEL: single scale `c` (tree)' for every test that ran at another
    commit than its model's training (a later job can run later code)."""
    out = []
    for r in runs:
        parts = []
        for field, label in (('test', 'single scale'),
                             ('test_ms_flip', 'ms+flip')):
            c = (r.get('test_commits') or {}).get(field)
            if c and not same_commit(c['commit'], r['commit']):
                parts.append(f'{label} `{c["commit"][:10]}` '
                             f'({tree_state(c)})')
        if parts:
            out.append(f'{r["model"]}: ' + ', '.join(parts))
    return out


def provenance(runs):
    lines = []
    device = one_or_list(r['device'] for r in runs)
    torch = one_or_list(r.get('torch') or '-' for r in runs)
    if device is not None:
        lines.append(f'- Device: {device}' + (
            f' (torch {torch})' if torch not in (None, '-') else '') + '.')
    else:
        lines.append('- Devices (they differ between the models): ' +
                     '; '.join(f'{r["model"]}: {r["device"]} (torch '
                               f'{r.get("torch") or "-"})' for r in runs)
                     + '.')

    commit = one_or_list((r['commit'], tree_state(r)) for r in runs)
    if commit is not None:
        lines.append(f'- Commit: `{commit[0]}` ({commit[1]}).')
    else:
        lines.append('- Commits (they differ between the models): ' +
                     '; '.join(f'{r["model"]}: `{r["commit"]}` '
                               f'({tree_state(r)})' for r in runs) + '.')
    later = tested_elsewhere(runs)
    if later:
        lines.append('- Tests at another commit than the training (the '
                     'records\' `test_commits`): ' + '; '.join(later) + '.')
    dates = sorted({r['date'] for r in runs})
    lines.append('- Date: ' + (dates[0] if len(dates) == 1 else
                               f'{dates[0]} to {dates[-1]}') +
                 ' (the records\' `date` field, else the modification time '
                 'of their file, UTC).')
    return lines


def schedule_lines(runs):
    sched = runs[0]['schedule']
    parts = []
    names = {'iterations': '{} iterations', 'batch_size': 'batch {}',
             'warmup_iters': '{} warm-up iterations', 'lr': 'lr {}',
             'amp': 'AMP {}'}
    for field, text in names.items():
        value = sched.get(field)
        parts.append(text.format('-' if value is None else fmt_value(value)))
    extra = sorted(k for k in sched
                   if k not in SCHEDULE_KEYS and k != 'extra_options')
    parts += [f'{k} {json.dumps(sched[k], sort_keys=True)}' for k in extra]
    lines = [f'- Schedule, identical for the {len(runs)} model'
             f'{"s" if len(runs) != 1 else ""} run (from the records): '
             + ', '.join(parts) + '.']
    overrides = sched.get('extra_options')
    if overrides:
        lines.append('- Config overrides of the run, on top of the '
                     'schedule (`--cfg-options`; the commands below carry '
                     'them): ' + ', '.join(f'`{o}`' for o in overrides)
                     + '.')
    iters, planned = sched.get('iterations'), sched.get('planned_iterations')
    if iters is None or planned is None:
        lines.append('- Planned iterations of the configs: not recorded, '
                     'so the schedule cannot be compared with them.')
    elif iters < planned:
        lines.append(f'- **Shorter than planned: {iters} of the configs\' '
                     f'{planned} iterations ({100 * iters / planned:.1f} %).'
                     ' These are not the numbers of the full schedule** '
                     '(the commands below show how it was set).')
    elif iters == planned:
        lines.append(f'- The configs\' full schedule ({planned} '
                     'iterations).')
    else:
        lines.append(f'- Longer than the configs\' {planned} iterations: '
                     f'{iters}.')
    conc = sorted({r['schedule'].get('concurrent_models') for r in runs},
                  key=lambda v: (v is None, v))
    if len(conc) > 1:
        lines.append('- Concurrency differs between the models '
                     '(`concurrent_models`): ' + '; '.join(
                         f'{r["model"]}: '
                         f'{r["schedule"].get("concurrent_models", "-")}'
                         for r in runs) + '. Their wall times are not '
                     'comparable.')
    elif conc[0] is None:
        lines.append('- Concurrency: not recorded.')
    elif conc[0] == 1:
        lines.append('- Concurrency: one model at a time on the device.')
    else:
        who = ('all five models were' if conc[0] == 5 else
               f'{conc[0]} models were')
        lines.append(f'- Concurrency: {who} trained at the same time on '
                     'one device, so each wall time includes the contention '
                     'with the other runs (it is not the time of a model '
                     'trained alone); peak memory is that of each run.')
    odd = [r for r in runs if r['iterations'] != sched.get('iterations')]
    for rec in odd:
        lines.append(f'- {rec["model"]} ran {rec["iterations"]} iterations, '
                     f'not the schedule\'s {sched.get("iterations")}.')
    return lines


def main_table(runs_by_key, placeholders, anchors):
    rows = []
    for key, name, config, _ in MODELS:
        rec = runs_by_key.get(key)
        if rec is None:
            old = placeholders.get(key, {})
            rows.append([old.get('model', name),
                         config_link(old.get('config', config)), 'not run']
                        + ['-'] * 5)
            continue
        best = rec.get('val_best_iter')
        val = fmt(rec.get('val_miou')) + (
            f' ({best})' if best is not None else '')
        rows.append([rec['model'], config_link(rec['config']),
                     str(rec['iterations']),
                     fmt_minutes(rec.get('wall_time_s')),
                     fmt_gb(rec.get('peak_memory_mb')), val,
                     fmt(rec.get('test_miou')),
                     fmt(rec.get('test_miou_ms_flip'))])
    if anchors:
        for name, value in ANCHORS:
            rows.append([f'{name} (literature, not run here)', '-', '-', '-',
                         '-', '-', fmt(value, 1), '-'])
    return table(['model', 'config', 'iterations', 'train wall time',
                  'peak memory (GB)', 'val mIoU (best iter)', 'test mIoU',
                  'test mIoU ms+flip'],
                 'llrrrrrr', rows)


def goals(runs_by_key):
    def miou(key):
        rec = runs_by_key.get(key)
        return None if rec is None else rec.get('test_miou')

    def name(key):
        rec = runs_by_key.get(key)
        return rec['model'] if rec else dict(
            (m[0], m[1]) for m in MODELS)[key]

    rows = []
    frrn = miou('frrn-a')
    rows.append([f'{name("frrn-a")} test mIoU above {FRRN_GOAL:.0f}',
                 fmt(frrn),
                 'not measured' if frrn is None else
                 ('met' if frrn > FRRN_GOAL else 'not met')])
    mmseg = [k for k, _, _, group in MODELS if group == 'mmseg']
    unmeasured = [name(k) for k in mmseg if miou(k) is None]
    best = None if unmeasured else max(mmseg, key=lambda k: (miou(k), k))
    for key in ('refinenet-r50', 'frrn-a'):
        ours = miou(key)
        goal = (f'{name(key)} ahead of the MMSeg models (test mIoU)')
        if ours is None:
            rows.append([goal, '-', f'not measured: {name(key)}'])
        elif best is None:
            rows.append([goal, fmt(ours), 'not decidable: not measured: '
                         + ', '.join(unmeasured)])
        else:
            rows.append([goal, f'{fmt(ours)} vs {fmt(miou(best))} '
                         f'(best MMSeg: {name(best)})',
                         'met' if ours > miou(best) else 'not met'])
    return table(['goal', 'measured', 'verdict'], 'lll', rows)


def per_class_table(runs, field):
    rows = []
    total = 'test_miou' if field == 'per_class_iou' else 'test_miou_ms_flip'
    for rec in runs:
        ious = rec.get(field) or {}
        rows.append([rec['model']] + [fmt(ious.get(c)) for c in CLASSES]
                    + [fmt(rec.get(total))])
    return table(['model'] + list(CLASSES) + ['mIoU'],
                 'l' + 'r' * (len(CLASSES) + 1), rows)


def trimap_table(runs):
    radii = sorted({r for rec in runs if rec.get('trimap')
                    for r in rec['trimap']['radii']})
    if not radii:
        return []
    rows = []
    for rec in runs:
        values = dict(zip(rec['trimap']['radii'], rec['trimap']['miou'])) \
            if rec.get('trimap') else {}
        rows.append([rec['model']] + [fmt(values.get(r)) for r in radii])
    return table(['model'] + [f'r={fmt_value(r)}' for r in radii],
                 'l' + 'r' * len(radii), rows)


def ranking(runs):
    """The models by single-scale test mIoU, best first (the CPU pilot's
    summary in place of the goals)."""
    measured = sorted((r for r in runs if r.get('test_miou') is not None),
                      key=lambda r: (-r['test_miou'], KEYS.index(r['key'])))
    line = ' > '.join(f'{r["model"]} {fmt(r["test_miou"])}'
                      for r in measured) or 'no test mIoU measured'
    unmeasured = [r['model'] for r in runs if r.get('test_miou') is None]
    if unmeasured:
        line += ' (not measured: ' + ', '.join(unmeasured) + ')'
    return line + '.'


def results_section(runs_by_key, placeholders, stems, pred_status, figures,
                    anchors, kind='gpu'):
    """The camvid.md section of ``kind`` (see KINDS)."""
    pilot = kind == 'cpu_pilot'
    runs = [runs_by_key[k] for k in KEYS if k in runs_by_key]
    not_run = [(k, placeholders.get(k, {}).get('model', n))
               for k, n, _, _ in MODELS if k not in runs_by_key]
    L = [f'{KINDS[kind]["heading"]}: {len(runs)} of {len(MODELS)} models '
         'run', '']
    if pilot:
        L += ['**A scaled-down rehearsal of the GPU experiment above, on a '
              'CPU: not the experiment itself.** The same five configs, '
              'data pipeline and optimiser, with far fewer iterations and '
              'the config overrides listed below (a lower input '
              'resolution); its figures check that the models and the '
              'schedule train and test on the real splits. They are not '
              'comparable with the literature anchors or the goals, and an '
              'order of the models this early in training '
              'need not hold at the end of the full schedule.', '']
    L += ['Written by `tools/analysis/camvid_report.py'
          + (' --kind cpu_pilot' if pilot else '') + '` from the run\'s '
          'result files; every number below is copied from them (nothing '
          'estimated). mIoU and IoU in %, 11 classes, void ignored; model '
          'selection on val, results on the 233 test images.', '']
    L += provenance(runs) + schedule_lines(runs) + ['']
    L += main_table(runs_by_key, placeholders, anchors) + ['']
    L.append('Train wall time: the training command, validations '
             'included. Peak memory: `peak_memory_mb` / 1024. val mIoU: '
             'the best validation, at the iteration in brackets. ms+flip: '
             'multi-scale and flipped testing (`tools/test.py --tta`).')
    L.append('')
    if not_run:
        L.append('Not run: ' + '; '.join(
            f'{name} (no `results/{key}.json` in the run folder; its '
            'record in `camvid.json` is kept as it was)'
            for key, name in not_run) + '.')
        L.append('')
    missing = []
    for rec in runs:
        fields = missing_fields(rec, stems, pred_status)
        if fields:
            missing.append(f'{rec["model"]}: {", ".join(fields)}')
    if not stems:
        missing.append('preds/stems.txt')
    L.append('Missing (shown as -): ' + ('; '.join(missing) if missing
                                         else 'none') + '.')
    if pilot:
        L += ['', '### Order at this budget', '',
              'Single-scale test mIoU, best first: ' + ranking(runs), '']
    else:
        L += ['', '### Goals', '',
              'Anchors, test mIoU from scratch on this split (literature): '
              + ', '.join(f'{n} {v}' for n, v in ANCHORS) + '. Goals: FRRN '
              f'A above {FRRN_GOAL:.0f}, RefineNet and FRRN ahead of the '
              'MMSeg models. Verdicts on the single-scale test mIoU of the '
              'table above, computed by the script (strictly above).', '']
        L += goals(runs_by_key) + ['']
    for field, title in (('per_class_iou', 'single scale'),
                         ('per_class_iou_ms_flip', 'multi-scale + flip')):
        L += [f'### Per-class IoU (test, {title})', '']
        L += per_class_table(runs, field) + ['']
    L += ['### Trimap', '',
          'Test mIoU (single scale) counted only within a band of the '
          'given radius (pixels) around the ground-truth label boundaries, '
          'as computed by the run.', '']
    trimap = trimap_table(runs)
    if trimap and figures.get('trimap'):
        L += trimap + ['', f'![trimap]({figures["trimap"]})']
    else:
        L.append('No trimap in the records.')
    L += ['', '### Validation curve', '']
    L += ([f'![val mIoU]({figures["val_curve"]})']
          if figures.get('val_curve') else ['No validation curve in the '
                                            'records.'])
    L += ['', '### Predictions', '']
    if figures.get('predictions'):
        L += [f'Test images {", ".join(f"`{s}`" for s in stems)}: the image, '
              'the ground truth (void black), then each model\'s prediction '
              '(`preds/<key>/`).', '',
              f'![predictions]({figures["predictions"]})']
    else:
        L.append('No prediction figure: no `preds/stems.txt` in the run.')
    L += ['', '### Commands', '', '```shell']
    for i, rec in enumerate(runs):
        if i:
            L.append('')
        L.append(f'# {rec["model"]}')
        L += [rec['commands'][k] if rec['commands'].get(k) is not None else
              f'# ({k.replace("_", " ")}: not run)'
              for k in ('train', 'test', 'test_ms_flip')]
    L += ['```', '']
    if pilot:
        L.append('How to rerun: `benchmarks/camvid_experiment.py` '
                 '`train`, `wait`, `test --device cpu` and `collect` with '
                 'the iterations and the `--extra` options of the schedule '
                 'above (the commands it ran are listed); then `python '
                 'tools/analysis/camvid_report.py RUN_DIR --data DATA '
                 '--kind cpu_pilot` rewrites this section, the '
                 '`"kind": "cpu_pilot"` records of `camvid.json` and the '
                 '`camvid_pilot_*.png` figures.')
    else:
        L.append('How to rerun: `benchmarks/camvid_experiment.py` '
                 '`calibrate`, `train`, `wait`, `test` and `collect` (one '
                 'or more phases per job where jobs have a time limit); '
                 'then `python tools/analysis/camvid_report.py RUN_DIR '
                 '--data data/camvid` rewrites this section, `camvid.json` '
                 'and the figures.')
    return '\n'.join(L + ['']) + '\n'


def _section_end(text, start):
    """Where the ``## `` section that starts at ``start`` ends."""
    end = re.search(r'^## ', text[start:], re.M)
    return start + end.start() if end else len(text)


def replace_section(text, section, kind='gpu'):
    """Replaces the section of ``kind`` (its heading to the next '## ').

    The GPU section must be there (the placeholder of camvid.md); a CPU
    pilot section that is not there yet goes right after it."""
    def find(heading):
        return re.search(r'^' + re.escape(heading) + r'\b.*$', text, re.M)

    gpu = find(SECTION)
    if gpu is None:
        raise SchemaError(f'no "{SECTION}" heading in camvid.md')
    match = find(KINDS[kind]['heading'])
    if match is not None:
        return (text[:match.start()] + section
                + text[_section_end(text, match.end()):])
    at = _section_end(text, gpu.end())
    return text[:at] + section + text[at:]


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def parse_args(argv=None):
    parser = _ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('run_dir', metavar='RUN_DIR',
                        help='folder with results/<key>.json and preds/')
    parser.add_argument('--data', required=True, metavar='DATA',
                        help='CamVid in MMSeg layout (img_dir/test, '
                        'ann_dir/test)')
    parser.add_argument('--docs', default=osp.join(REPO, 'docs', 'results'),
                        help='folder of camvid.md and camvid.json')
    parser.add_argument('--anchors', action='store_true',
                        help='add the literature anchors to the main table '
                        'and the validation plot')
    parser.add_argument('--kind', choices=sorted(KINDS), default='gpu',
                        help='gpu (default): the GPU experiment; '
                        'cpu_pilot: a scaled-down run on a CPU, written to '
                        'its own section, records and figures')
    args = parser.parse_args(argv)
    if args.anchors and args.kind != 'gpu':
        parser.error(f'--anchors compares with the literature, which a '
                     f'{args.kind} run is not comparable with: drop '
                     '--anchors')
    return args


def main(argv=None):
    args = parse_args(argv)
    md_path = osp.join(args.docs, 'camvid.md')
    json_path = osp.join(args.docs, 'camvid.json')
    try:
        if not osp.isdir(osp.join(args.data, 'img_dir', 'test')):
            raise SchemaError(f'--data: no img_dir/test in {args.data}')
        runs_by_key = load_run(args.run_dir)
        with open(json_path) as f:
            old = json.load(f)
        if not isinstance(old, list):
            raise SchemaError(f'{json_path}: expected a list of records')
        with open(md_path) as f:
            md = f.read()
        replace_section(md, '', args.kind)  # checks before writing
    except SchemaError as e:
        fail(str(e))
    except (OSError, ValueError) as e:
        fail(str(e).replace('\n', ' '))
    placeholders = {record_key(r): r for r in old
                    if r.get('kind') == args.kind}
    runs = [runs_by_key[k] for k in KEYS if k in runs_by_key]
    stems = read_stems(args.run_dir)
    pred_status = prediction_status(runs, args.run_dir, stems)

    figures = {}
    prefix = KINDS[args.kind]['figure_prefix']
    targets = {name: f'{prefix}{name}.png'
               for name in ('trimap', 'val_curve', 'predictions')}
    wanted = {'trimap': any(r.get('trimap') and any(
                  v is not None for v in r['trimap']['miou']) for r in runs),
              'val_curve': any(r.get('val_curve') or r.get('loss_curve')
                               for r in runs),
              'predictions': bool(stems)}
    for name, filename in targets.items():
        path = osp.join(args.docs, filename)
        if not wanted[name]:
            if osp.isfile(path):  # no stale figure of an earlier run
                os.remove(path)
            continue
        if name == 'trimap':
            plot_trimap(runs, path)
        elif name == 'val_curve':
            plot_curves(runs, path, args.anchors)
        else:
            plot_predictions(runs, args.run_dir, args.data, stems, path)
        figures[name] = filename

    section = results_section(runs_by_key, placeholders, stems,
                              pred_status, figures, args.anchors, args.kind)
    with open(md_path, 'w') as f:
        f.write(replace_section(md, section, args.kind))
    with open(json_path, 'w') as f:
        f.write(json.dumps(merge_json(old, runs_by_key, args.kind),
                           indent=2) + '\n')
    sys.stdout.write(f'wrote {md_path}, {json_path} and '
                     f'{len(figures)} figure(s) from {len(runs)} record(s)\n')


if __name__ == '__main__':
    main()
