"""tools/analysis/camvid_report.py, run as a user would.

A synthetic GPU run (five result files with made-up numbers, 36x48
prediction PNGs, a synthetic CamVid test folder) is rendered into copies
of the real docs/results/camvid.md and camvid.json in tmp_path.
"""
import copy
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis', 'camvid_report.py')
DOCS = osp.join(REPO, 'docs', 'results')
CLASSES = ('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree',
           'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist')
MODELS = [
    ('frrn-a', 'FRRN A', 'frrn-a_1xb8-20k_camvid-360x480.py'),
    ('refinenet-r50', 'RefineNet-R50 (4-cascaded)',
     'refinenet_r50_1xb8-20k_camvid-360x480.py'),
    ('fcn-r50-d8', 'FCN-R50-D8', 'fcn_r50-d8_1xb8-20k_camvid-360x480.py'),
    ('deeplabv3-r50-d8', 'DeepLabV3-R50-D8',
     'deeplabv3_r50-d8_1xb8-20k_camvid-360x480.py'),
    ('unet-s5-d16', 'UNet-S5-D16 + FCN head',
     'unet-s5-d16_fcn_1xb8-20k_camvid-360x480.py'),
]
STEMS = ['0001TP_008550', 'Seq05VD_f02370']
REQUIRED = ('model', 'config', 'command', 'commit', 'device', 'iterations',
            'test_miou', 'test_miou_ms_flip', 'val_miou', 'per_class_iou')


def record(i, key, model, config, test_miou):
    cfg = f'configs/camvid/{config}'
    work = f'work_dirs/{config[:-3]}'
    return {
        'key': key, 'model': model, 'config': cfg, 'commit': 'abc1234',
        'dirty': False, 'device': 'NVIDIA H100 80GB HBM3',
        'torch': '2.11.0+cu130', 'date': '2025-01-02',
        'commands': {
            'train': f'python tools/train.py {cfg} --cfg-options '
                     'train_cfg.max_iters=3000',
            'test': f'python tools/test.py {cfg} {work}/iter_3000.pth',
            'test_ms_flip': f'python tools/test.py {cfg} '
                            f'{work}/iter_3000.pth --tta'},
        'schedule': {'iterations': 3000, 'batch_size': 8,
                     'warmup_iters': 300, 'amp': 'bfloat16', 'lr': 0.001,
                     'planned_iterations': 20000, 'concurrent_models': 5},
        'iterations': 3000,
        'wall_time_s': 800.0 + 10 * i, 'peak_memory_mb': 10240.0 + 1024 * i,
        'val_miou': test_miou + 1.5, 'val_best_iter': 3000,
        'val_curve': [[1500, test_miou - 10], [3000, test_miou + 1.5]],
        'loss_curve': [[50, 2.3], [100, 1.9 - 0.1 * i]],
        'test_miou': test_miou, 'test_aacc': 85.0,
        'test_miou_ms_flip': test_miou + 0.75,
        'per_class_iou': {c: 40.0 + j + i / 4 for j, c in enumerate(CLASSES)},
        'per_class_iou_ms_flip': {c: 41.0 + j for j, c in enumerate(CLASSES)},
        'trimap': {'radii': [1, 2, 4, 8],
                   'miou': [20.0 + i, 30.0, 40.0, test_miou - 1]},
        'prediction_dir': f'preds/{key}',
    }


def make_run(tmp_path, mious=(61.0, 62.5, 50.0, 55.25, 45.0), skip=(),
             edit=None, docs=None):
    """RUN_DIR, DATA and a copy of docs/results (or ``docs``) under
    tmp_path."""
    run, data = tmp_path / 'run', tmp_path / 'data'
    docs = docs or tmp_path / 'docs'
    for sub in ('results', 'preds'):
        (run / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    (run / 'preds' / 'stems.txt').write_text('\n'.join(STEMS) + '\n')
    for i, ((key, model, config), miou) in enumerate(zip(MODELS, mious)):
        if key in skip:
            continue
        rec = record(i, key, model, config, miou)
        if edit:
            edit(rec)
        (run / 'results' / f'{key}.json').write_text(json.dumps(rec))
        (run / 'preds' / key).mkdir(exist_ok=True)
        for stem in STEMS:
            label = rng.randint(0, 11, (36, 48)).astype(np.uint8)
            label[:3] = 255
            Image.fromarray(label).save(run / 'preds' / key / f'{stem}.png')
    for sub in ('img_dir', 'ann_dir'):
        (data / sub / 'test').mkdir(parents=True, exist_ok=True)
    for stem in STEMS:
        Image.fromarray(rng.randint(0, 256, (36, 48, 3)).astype(
            np.uint8)).save(data / 'img_dir' / 'test' / f'{stem}.png')
        label = np.repeat(np.arange(12, dtype=np.uint8) % 11, 4)[None]
        label = np.repeat(label, 36, 0)
        label[-2:] = 255
        Image.fromarray(label).save(data / 'ann_dir' / 'test' / f'{stem}.png')
    if not docs.exists():
        shutil.copytree(DOCS, docs)
    return run, data, docs


def report(run, data, docs, *extra):
    return subprocess.run(
        [sys.executable, SCRIPT, str(run), '--data', str(data), '--docs',
         str(docs), *extra], capture_output=True, text=True, timeout=120)


def original_parts():
    with open(osp.join(DOCS, 'camvid.md')) as f:
        text = f.read()
    start = text.index('\n## GPU experiment') + 1
    end = text.index('\n## ', start) + 1
    return text[:start], text[end:]


def goal_verdicts(md):
    rows = [line for line in md.splitlines()
            if line.startswith('| ') and (' above 60 ' in line
                                          or 'ahead of the MMSeg' in line)]
    return [row.strip('| ').split(' | ')[-1] for row in rows]


def test_report(tmp_path):
    run, data, docs = make_run(tmp_path)
    with open(docs / 'camvid.json') as f:
        old = json.load(f)
    proc = report(run, data, docs, '--anchors')
    assert proc.returncode == 0, proc.stderr

    # camvid.json: five measured GPU records first, the rest untouched.
    with open(docs / 'camvid.json') as f:
        new = json.load(f)
    gpu = [r for r in new if r.get('kind') == 'gpu']
    assert [r['key'] for r in new[:5]] == [m[0] for m in MODELS]
    assert len(gpu) == 5
    for rec in gpu:
        assert all(field in rec for field in REQUIRED)
        assert 'status' not in rec and 'planned_commands' not in rec
        assert rec['command'].startswith('python tools/train.py')
        assert set(rec['commands']) == {'train', 'test', 'test_ms_flip'}
        assert rec['trimap']['radii'] == [1, 2, 4, 8]
    assert gpu[0]['test_miou'] == 61.0 and gpu[0]['peak_memory_gb'] == 10.0
    assert new[5:] == [r for r in old if r.get('kind') != 'gpu']

    # camvid.md: only the GPU section changes.
    md = (docs / 'camvid.md').read_text()
    head, tail = original_parts()
    assert md.startswith(head + '## GPU experiment: 5 of 5 models run\n')
    assert md.endswith(tail)
    section = md[len(head):len(md) - len(tail)]
    assert '## ' not in section.replace('\n### ', '\n')[3:]
    for text in ('NVIDIA H100 80GB HBM3', '`abc1234` (clean tree)',
                 '2025-01-02', '3000 of the configs\' 20000 iterations',
                 'AMP bfloat16', 'all five models were trained at the same '
                 'time on one device', '| 61.00 |', '| 62.50 |', '| 55.25 |',
                 '| 61.75 |', '62.50 (3000)', '13.3 min', '| 10.00 |',
                 'SegNet-Basic 46.3, ENet 51.3, FC-DenseNet103 66.9',
                 'ENet (literature, not run here)', 'Missing (shown as -): '
                 'none.', 'r=8', '![trimap](camvid_trimap.png)',
                 '![val mIoU](camvid_val_curve.png)',
                 '![predictions](camvid_predictions.png)',
                 'How to rerun: `benchmarks/camvid_experiment.py`',
                 'iter_3000.pth --tta',
                 '| Sky | Building |'):
        assert text in section, text
    assert '(../../configs/camvid/frrn-a_1xb8-20k_camvid-360x480.py)' \
        in section
    assert goal_verdicts(section) == ['met', 'met', 'met']
    assert 'Not run' not in section
    for name in ('trimap', 'val_curve', 'predictions'):
        path = docs / f'camvid_{name}.png'
        assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
        assert path.stat().st_size < 600 * 1024
    with Image.open(docs / 'camvid_predictions.png') as im:
        assert im.size[0] > im.size[1]  # 7 columns, 2 rows

    # Re-running on the same inputs writes identical files.
    before = {p: (docs / p).read_bytes() for p in os.listdir(docs)}
    proc = report(run, data, docs, '--anchors')
    assert proc.returncode == 0, proc.stderr
    assert {p: (docs / p).read_bytes() for p in os.listdir(docs)} == before


def test_goals_not_met_and_missing_model(tmp_path):
    # FRRN A 58.0: below 60 and behind DeepLabV3 (59.0); RefineNet ahead.
    # UNet not run: its placeholder stays, the md says so.
    # No model's ms+flip test ran (the job's time ran out): no figure
    # and no command.
    def no_ms_flip(rec):
        rec.pop('test_miou_ms_flip')
        rec['commands']['test_ms_flip'] = None

    run, data, docs = make_run(tmp_path, mious=(58.0, 60.5, 50.0, 59.0, 0),
                               skip=('unet-s5-d16', ), edit=no_ms_flip)
    with open(docs / 'camvid.json') as f:
        old = json.load(f)
    proc = report(run, data, docs)
    assert proc.returncode == 0, proc.stderr
    md = (docs / 'camvid.md').read_text()
    assert '## GPU experiment: 4 of 5 models run' in md
    assert 'Not run: UNet-S5-D16 + FCN head (no `results/unet-s5-d16.json`' \
        in md
    assert '| UNet-S5-D16 + FCN head | [unet-s5-d16_fcn_1xb8-20k_camvid-' \
        '360x480.py](../../configs/camvid/unet-s5-d16_fcn_1xb8-20k_camvid-' \
        '360x480.py) | not run |' in md
    # Goal 2 cannot be decided without UNet.
    verdicts = goal_verdicts(md)
    assert verdicts[0] == 'not met'
    assert all(v.startswith('not decidable') for v in verdicts[1:])
    assert 'FRRN A: test_miou_ms_flip' in md
    gpu = md[md.index('## GPU experiment'):]
    gpu = gpu[:gpu.index('\n## ')]
    assert gpu.count('# (test ms flip: not run)') == 4
    assert '(literature, not run here)' not in md
    with open(docs / 'camvid.json') as f:
        new = json.load(f)
    assert new[4] == old[4]  # UNet placeholder, as it was
    assert new[0]['test_miou_ms_flip'] is None
    assert new[5:] == old[5:]

    # With UNet at 45: FRRN behind DeepLabV3, RefineNet ahead.
    run, data, docs = make_run(tmp_path / 'b', mious=(58.0, 60.5, 50.0,
                                                      59.0, 45.0))
    proc = report(run, data, docs)
    assert proc.returncode == 0, proc.stderr
    md = (docs / 'camvid.md').read_text()
    assert goal_verdicts(md) == ['not met', 'met', 'not met']
    assert '58.00 vs 59.00 (best MMSeg: DeepLabV3-R50-D8)' in md


def test_errors(tmp_path, assert_one_line_error):
    run, data, docs = make_run(tmp_path)
    before = (docs / 'camvid.md').read_bytes()
    path = run / 'results' / 'frrn-a.json'
    good = json.loads(path.read_text())

    bad = copy.deepcopy(good)
    del bad['commit']
    path.write_text(json.dumps(bad))
    assert_one_line_error(report(run, data, docs), 'frrn-a.json', "'commit'")

    bad = copy.deepcopy(good)
    bad['test_miou'] = 'high'
    path.write_text(json.dumps(bad))
    assert_one_line_error(report(run, data, docs), 'frrn-a.json',
                          "'test_miou'", 'number')

    bad = copy.deepcopy(good)
    bad['commands']['test'] = 5
    path.write_text(json.dumps(bad))
    assert_one_line_error(report(run, data, docs), 'frrn-a.json',
                          "'commands.test'", 'string or null')

    bad = copy.deepcopy(good)
    bad['commands']['train'] = None
    path.write_text(json.dumps(bad))
    assert_one_line_error(report(run, data, docs), 'frrn-a.json',
                          "'commands.train'", 'must be a string')

    # `dirty` is a JSON boolean: a string or a number (1 == True in Python)
    # is refused, at the top level and in test_commits alike
    for dirty in ('no', 1, 0):
        bad = copy.deepcopy(good)
        bad['test_commits'] = {'test': {'commit': 'abc1234', 'dirty': dirty}}
        path.write_text(json.dumps(bad))
        assert_one_line_error(report(run, data, docs), 'frrn-a.json',
                              "'test_commits'",
                              'true, false or null} or null, got dict')

        bad = copy.deepcopy(good)
        bad['dirty'] = dirty
        path.write_text(json.dumps(bad))
        assert_one_line_error(report(run, data, docs), 'frrn-a.json',
                              "'dirty'", 'true or false')

    bad = copy.deepcopy(good)
    bad['schedule']['lr'] = 0.002
    path.write_text(json.dumps(bad))
    assert_one_line_error(report(run, data, docs), 'schedules differ',
                          'lr=')

    # concurrent_models alone may differ.
    bad = copy.deepcopy(good)
    bad['schedule']['concurrent_models'] = 1
    path.write_text(json.dumps(bad))
    assert (docs / 'camvid.md').read_bytes() == before
    proc = report(run, data, docs)
    assert proc.returncode == 0, proc.stderr
    assert 'Concurrency differs' in (docs / 'camvid.md').read_text()


def test_tests_at_another_commit_are_named(tmp_path):
    """A test that ran at another commit than its model's training is named
    with that commit in the provenance lines; one at the same commit (full
    or abbreviated) or with none recorded is not."""
    def edit(rec):
        same = {'commit': 'abc1234' + 'f' * 33, 'dirty': False}
        rec['test_commits'] = {'test': same, 'test_ms_flip': None}
        if rec['key'] == 'fcn-r50-d8':
            rec['test_commits']['test_ms_flip'] = {
                'commit': '280f96e7e8299991f86e', 'dirty': True}

    run, data, docs = make_run(tmp_path, edit=edit)
    proc = report(run, data, docs)
    assert proc.returncode == 0, proc.stderr
    md = (docs / 'camvid.md').read_text()
    assert ('- Tests at another commit than the training (the records\' '
            '`test_commits`): FCN-R50-D8: ms+flip `280f96e7e8` (dirty tree: '
            'uncommitted changes).\n') in md
    records = json.loads((docs / 'camvid.json').read_text())
    fcn = [r for r in records if r.get('key') == 'fcn-r50-d8'][0]
    assert fcn['test_commits']['test_ms_flip']['commit'].startswith('280f')


def test_md_section_is_the_only_change(tmp_path):
    """The real camvid.md has one GPU section followed by the CPU one."""
    head, tail = original_parts()
    assert tail.startswith(('## CPU pilot', '## CPU smoke training'))
    assert re.search(r'^## GPU experiment', head + tail, re.M) is None


def drop_pilot(docs):
    """docs/results as before any CPU pilot: no pilot section, records or
    figures."""
    md = (docs / 'camvid.md').read_text()
    match = re.search(r'^## CPU pilot.*?(?=^## )', md, re.M | re.S)
    if match:
        (docs / 'camvid.md').write_text(md[:match.start()]
                                        + md[match.end():])
    records = json.loads((docs / 'camvid.json').read_text())
    (docs / 'camvid.json').write_text(json.dumps(
        [r for r in records if r.get('kind') != 'cpu_pilot'], indent=2))
    for path in docs.glob('camvid_pilot_*.png'):
        path.unlink()


def pilot_record(rec):
    """A record of the CPU pilot: a CPU, fewer iterations, overrides."""
    rec['device'] = 'cpu (2 cores, AMD EPYC 7B13)'
    rec['peak_memory_mb'] = None  # MMEngine logs no memory on a CPU
    rec['schedule'].update(iterations=250, warmup_iters=25, amp='none')
    rec['schedule']['extra_options'] = [
        'train_dataloader.dataset.pipeline.2.scale=(160,120)',
        'test_dataloader.dataset.pipeline.1.scale=(160,120)']
    rec['iterations'] = 250


def test_cpu_pilot_kind(tmp_path):
    """--kind cpu_pilot writes its own section, records and figures, and
    leaves the GPU experiment's as they were."""
    run, data, docs = make_run(tmp_path / 'gpu')
    drop_pilot(docs)
    assert report(run, data, docs).returncode == 0
    gpu_md = (docs / 'camvid.md').read_text()
    gpu_json = json.loads((docs / 'camvid.json').read_text())
    gpu_figures = {p: (docs / p).read_bytes() for p in os.listdir(docs)
                   if p.endswith('.png')}

    pilot, _, _ = make_run(tmp_path / 'pilot', docs=docs, edit=pilot_record,
                           mious=(30.0, 25.5, 28.25, 27.0, 31.0))
    proc = report(pilot, data, docs, '--kind', 'cpu_pilot')
    assert proc.returncode == 0, proc.stderr
    md = (docs / 'camvid.md').read_text()
    # The pilot section goes right after the GPU section, which is kept.
    gpu_end = gpu_md.index('\n## ', gpu_md.index('## GPU experiment')) + 1
    assert md.startswith(gpu_md[:gpu_end] + '## CPU pilot: 5 of 5 models '
                         'run\n')
    assert md.endswith(gpu_md[gpu_end:])
    section = md[gpu_end:len(md) - len(gpu_md) + gpu_end]
    for text in ('not the experiment itself',
                 '`tools/analysis/camvid_report.py --kind cpu_pilot`',
                 'cpu (2 cores, AMD EPYC 7B13)',
                 '250 of the configs\' 20000 iterations',
                 '`train_dataloader.dataset.pipeline.2.scale=(160,120)`, '
                 '`test_dataloader.dataset.pipeline.1.scale=(160,120)`',
                 'Single-scale test mIoU, best first: UNet-S5-D16 + FCN '
                 'head 31.00 > FRRN A 30.00 > FCN-R50-D8 28.25 > '
                 'DeepLabV3-R50-D8 27.00 > RefineNet-R50 (4-cascaded) '
                 '25.50.', '![trimap](camvid_pilot_trimap.png)',
                 '![predictions](camvid_pilot_predictions.png)',
                 'FRRN A: peak_memory_mb'):
        assert text in section, text
    for text in ('### Goals', 'literature, not run here',
                 'extra_options ['):
        assert text not in section, text
    # camvid.json: the GPU records as they were, then the pilot's, then
    # the rest; the GPU figures untouched, the pilot's beside them.
    new = json.loads((docs / 'camvid.json').read_text())
    assert new[:5] == gpu_json[:5]
    assert [(r['kind'], r['key']) for r in new[5:10]] == [
        ('cpu_pilot', m[0]) for m in MODELS]
    assert new[5]['iterations'] == 250 and new[5]['peak_memory_gb'] is None
    assert new[10:] == gpu_json[5:]
    for name, data_ in gpu_figures.items():
        assert (docs / name).read_bytes() == data_, name
    for name in ('trimap', 'val_curve', 'predictions'):
        assert (docs / f'camvid_pilot_{name}.png').is_file()

    # Rerun: identical files; a new GPU report keeps the pilot's section
    # and records.
    before = {p: (docs / p).read_bytes() for p in os.listdir(docs)}
    assert report(pilot, data, docs, '--kind', 'cpu_pilot').returncode == 0
    assert {p: (docs / p).read_bytes() for p in os.listdir(docs)} == before
    assert report(run, data, docs).returncode == 0
    assert {p: (docs / p).read_bytes() for p in os.listdir(docs)} == before


def test_cpu_pilot_refuses_anchors(tmp_path, assert_one_line_error):
    run, data, docs = make_run(tmp_path, edit=pilot_record)
    before = (docs / 'camvid.md').read_bytes()
    assert_one_line_error(
        report(run, data, docs, '--kind', 'cpu_pilot', '--anchors'),
        '--anchors', 'drop --anchors')
    assert (docs / 'camvid.md').read_bytes() == before
