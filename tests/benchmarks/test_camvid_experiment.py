"""benchmarks/camvid_experiment.py: the schedule it passes to the five
CamVid configs, its background runs (start, interruption, resume) and the
records it collects. The fast tests use stand-in commands and written
logs; one slow test runs the whole sequence on a tiny generated CamVid on
the CPU."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'benchmarks', 'camvid_experiment.py')


def load_tool():
    # as when run as a script: its folder first on sys.path (harness)
    if osp.dirname(TOOL) not in sys.path:
        sys.path.insert(0, osp.dirname(TOOL))
    spec = importlib.util.spec_from_file_location('camvid_experiment', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


@pytest.mark.parametrize('key', tool.MODEL_KEYS)
def test_schedule_options_apply_to_every_config(key):
    """The --cfg-options give every config the same shortened schedule."""
    config = dict((m[0], m[2]) for m in tool.MODELS)[key]
    sched = tool.schedule_for(3000, 'bf16', 3, 5)
    assert sched['warmup_iters'] == 300 and sched['val_interval'] == 750
    cfg = Config.fromfile(osp.join(REPO, config))
    planned = cfg.train_cfg.max_iters
    assert planned == tool.PLANNED_ITERS
    from mmengine.config import DictAction
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    opts = parser.parse_args(
        ['--o'] + tool.schedule_options(sched, '/data/cv')).o
    cfg.merge_from_dict(opts)
    assert cfg.train_cfg.max_iters == 3000
    assert cfg.train_cfg.val_interval == 750
    warm, poly = cfg.param_scheduler
    assert (warm.type, warm.begin, warm.end) == ('LinearLR', 0, 300)
    assert (poly.type, poly.begin, poly.end) == ('PolyLR', 300, 3000)
    assert cfg.default_hooks.checkpoint.interval == 750
    assert cfg.default_hooks.checkpoint.save_best == 'mIoU'
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == tool.LR
    assert cfg.train_dataloader.batch_size == tool.BATCH_SIZE
    for loader in ('train', 'val', 'test'):
        assert cfg[f'{loader}_dataloader'].dataset.data_root == '/data/cv'
    # the configs' own data folder needs no option
    assert tool.data_root_options('data/camvid') == []
    # testing reports the trimap curve and whole-image per-class IoUs
    trimap = cfg.test_evaluator[1]
    assert trimap.type == 'TrimapIoUMetric' and trimap.per_class
    assert max(trimap.radii) >= (360**2 + 480**2)**0.5


def test_schedule_refuses_too_few_iterations():
    with pytest.raises(ValueError, match='at least 8'):
        tool.schedule_for(4, 'bf16', 3, 5)
    # warm-up never degenerates into a single step (LinearLR needs 2)
    assert tool.schedule_for(8, 'none', 1, 1)['warmup_iters'] == 2


def test_propose_iterations():
    """The most whole rounds of iterations that fit after the start-up
    minute with 10 % slack; a budget that fits none is refused."""
    # (400 - 60) / (0.5 * 1.1) = 618.2 -> 600
    assert tool.propose_iterations(0.5, 400, 100) == 600
    assert tool.propose_iterations(0.5, 400, 8) == 616
    with pytest.raises(ValueError, match='fewer than one round of 100'):
        tool.propose_iterations(0.5, 110, 100)
    with pytest.raises(ValueError, match='fewer than one round'):
        tool.propose_iterations(0.5, -20, 100)  # the deadline has passed


def test_calibrate_takes_one_budget():
    """--budget-min or --ends-in, exactly one of them."""
    args = tool.parse_args(['calibrate', '--ends-in', '420'])
    assert args.ends_in == 420 and args.budget_min is None
    for argv in (['calibrate'],
                 ['calibrate', '--ends-in', '420', '--budget-min', '6']):
        proc = subprocess.run([sys.executable, TOOL, *argv],
                              capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stderr.startswith('error: ') and (
            '--budget-min' in proc.stderr and '--ends-in' in proc.stderr)


def trained_run(tmp_path, keys):
    """A run whose ``keys`` finished training, with a best checkpoint."""
    run = tool.Run(str(tmp_path / 'run'))
    run.makedirs()
    data = tmp_path / 'data'
    os.makedirs(data / 'img_dir' / 'test')
    sched = tool.schedule_for(100, 'bf16', 3, len(keys))
    sched.update(models=list(keys), data_root=str(data))
    tool._write_json(run.path('schedule.json'), sched)
    for key in keys:
        fake_work_dir(run.work_dir(key))
        tool._write_json(run.state_file(key), dict(segments=[
            dict(pid=1, start=0, end=1, rc=0, command='python x')]))
    return run


def test_test_jobs_single_scale_first(tmp_path):
    """All single-scale tests come before the multi-scale ones, and what
    was tested already is not run again."""
    keys = ['frrn-a', 'refinenet-r50', 'fcn-r50-d8']
    run = trained_run(tmp_path, keys)
    sched = json.loads(open(run.path('schedule.json')).read())
    names = [name for name, _ in tool.test_jobs(run, sched)]
    assert names == [f'ss-{k}' for k in keys] + [f'ms_flip-{k}'
                                                 for k in keys]
    args = dict(tool.test_jobs(run, sched))
    assert '--tta' in args['ms_flip-fcn-r50-d8']
    assert '--tta' not in args['ss-fcn-r50-d8']
    assert args['ss-frrn-a'][2].endswith('best_mIoU_iter_100.pth')
    tool._write_json(run.state_file('ss-refinenet-r50', 'test'), dict(
        segments=[dict(pid=1, start=0, end=1, rc=0, command='x')]))
    names = [name for name, _ in tool.test_jobs(run, sched)]
    assert 'ss-refinenet-r50' not in names and len(names) == 5


def test_test_stops_at_its_deadline(tmp_path, monkeypatch):
    """Tests still running at --max-s are stopped (their whole session)
    and reported with exit status 3; the figure's predictions are written
    all the same, and a second `test` runs only what is missing."""
    keys = ['frrn-a', 'unet-s5-d16']
    run = trained_run(tmp_path, keys)
    real_launch = tool.launch
    launched, predicted = [], []

    def stand_in(run_, name, phase, args, env=None):
        # single scale: done at once; ms+flip: hangs, with a child process
        # of its own, as tools/test.py's loader workers
        launched.append(name)
        code = ('print("ok")' if name.startswith('ss-') else
                'import subprocess, sys, time; subprocess.Popen([sys.'
                'executable, "-c", "import time; time.sleep(120)"]); '
                'time.sleep(120)')
        return real_launch(run_, name, phase, ['-c', code], env=env)

    monkeypatch.setattr(tool, 'launch', stand_in)
    monkeypatch.setattr(tool, 'write_predictions',
                        lambda *a: predicted.append(a[0].root))
    code = tool.main(['test', '--run', run.root, '--max-s', '4',
                      '--jobs', '4'])
    assert code == 3
    assert predicted == [run.root]
    for key in keys:
        assert tool.status_of(run, f'ss-{key}', 'test') == 'finished'
        state = run.state(f'ms_flip-{key}', 'test')['segments'][-1]
        # stopped: a test left to run to its end (the stand-in's 120 s)
        # would have exited with status 0
        assert state['rc'] is not None and state['rc'] != 0
    # nothing of the stopped tests is left running
    out = subprocess.run(['ps', '-eo', 'args'], capture_output=True,
                         text=True).stdout
    assert 'time.sleep(120)' not in out
    launched.clear()
    code = tool.main(['test', '--run', run.root, '--max-s', '2',
                      '--jobs', '4'])
    assert launched == [f'ms_flip-{k}' for k in keys] and code == 3


def test_background_runs_interrupted_and_finished(tmp_path, head_commit):
    run = tool.Run(str(tmp_path / 'run'))
    run.makedirs()
    assert tool.status_of(run, 'a') == 'new'
    ok = tool.launch(run, 'a', 'train', ['-c', 'print("done")'])
    slow = tool.launch(run, 'b', 'train',
                       ['-c', 'import time; time.sleep(60)'])
    bad = tool.launch(run, 'c', 'train', ['-c', 'raise SystemExit(3)'])
    assert tool.status_of(run, 'b') == 'running'
    states = tool.wait_for(run, ['a', 'c'], 'train', time.monotonic() + 30)
    assert states == dict(a='finished', c='failed')
    ok.wait(60)
    bad.wait(60)
    # killing the supervisor's session (as a job's time limit would) leaves
    # the run 'interrupted', to be resumed by the next `train`
    os.killpg(slow.pid, 9)
    slow.wait(60)
    assert tool.status_of(run, 'b') == 'interrupted'
    segment = run.state('b')['segments'][0]
    assert segment['rc'] is None and 'time.sleep(60)' in segment['command']
    assert run.state('a')['segments'][0]['rc'] == 0
    assert run.state('c')['segments'][0]['rc'] == 3
    # each segment records the code it ran
    assert segment['commit'] == head_commit
    # a JSON boolean, or None where git could not tell; not `in (True,
    # False, None)`, which lets 0 and 1 through (1 == True in Python)
    assert segment['dirty'] is None or isinstance(segment['dirty'], bool)


def test_record_names_the_commit_that_trained():
    """collect records the commit of the training segments, not the one
    checked out when it runs; segments of two commits, or a segment that
    recorded none, are an error asking for --commit."""
    seg = dict(pid=1, start=0, end=1, rc=0, command='x')
    with pytest.raises(ValueError, match='recorded no commit.*--commit'):
        tool.trained_commit('k', [dict(seg)])  # a run from before they did
    one = [dict(seg, commit='a' * 40, dirty=False),
           dict(seg, commit='a' * 40, dirty=True)]
    assert tool.trained_commit('k', one) == ('a' * 40, True)
    assert tool.trained_commit('k', one[:1]) == ('a' * 40, False)
    two = one + [dict(seg, commit='b' * 40, dirty=False)]
    with pytest.raises(ValueError, match='different commits.*--commit'):
        tool.trained_commit('k', two)


def fake_work_dir(work_dir, steps=(50, 100), val=((50, 30.0), (100, 41.5)),
                  best=100):
    os.makedirs(osp.join(work_dir, '20260101_000000', 'vis_data'))
    lines = []
    for step in steps:
        lines.append(dict(lr=1e-3, loss=2.0 - step / 100, time=0.2,
                          memory=9000 + step, step=step))
    for step, miou in val:
        lines.append(dict(aAcc=80.0, mIoU=miou, mAcc=50.0, step=step))
    with open(osp.join(work_dir, '20260101_000000', 'vis_data',
                       'scalars.json'), 'w') as f:
        f.write(''.join(json.dumps(x) + '\n' for x in lines))
    open(osp.join(work_dir, f'best_mIoU_iter_{best}.pth'), 'w').close()
    open(osp.join(work_dir, 'last_checkpoint'), 'w').write('iter_100.pth')


def test_train_launches_resumes_and_keeps_the_schedule(tmp_path, monkeypatch):
    run_dir = tmp_path / 'run'
    data = tmp_path / 'data'
    for split in ('train', 'val'):
        os.makedirs(data / 'img_dir' / split)
    launched = []

    def fake_launch(run, key, phase, args, env=None):
        launched.append((key, args))

    monkeypatch.setattr(tool, 'launch', fake_launch)
    fake_work_dir(str(run_dir / 'train' / 'fcn-r50-d8'))
    code = tool.main(['train', '--run', str(run_dir), '--data', str(data),
                      '--iters', '200', '--models', 'frrn-a', 'fcn-r50-d8'])
    assert code == 0
    assert [k for k, _ in launched] == ['frrn-a', 'fcn-r50-d8']
    frrn, fcn = (args for _, args in launched)
    assert '--resume' not in frrn and '--resume' in fcn
    assert 'train_cfg.max_iters=200' in frrn
    assert f'train_dataloader.dataset.data_root={data}' in frrn
    sched = json.loads((run_dir / 'schedule.json').read_text())
    assert sched['iterations'] == 200 and sched['amp'] == 'bf16'
    # a run is fixed to its schedule
    proc = subprocess.run([sys.executable, TOOL, 'train', '--run',
                           str(run_dir), '--data', str(data), '--iters',
                           '300'], capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'fixed at 200 iterations' in proc.stderr
    # without data: a clear error naming the converter
    proc = subprocess.run([sys.executable, TOOL, 'train', '--run',
                           str(tmp_path / 'other'), '--data',
                           str(tmp_path / 'nodata'), '--iters', '300'],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'dataset_converters/camvid.py' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_collect_record(tmp_path):
    run = tool.Run(str(tmp_path / 'run'))
    run.makedirs()
    fake_work_dir(run.work_dir('frrn-a'))
    sched = tool.schedule_for(100, 'bf16', 3, 5)
    sched.update(models=['frrn-a'], data_root='data/camvid',
                 extra_options=['test_dataloader.dataset.pipeline.1.scale='
                                '(160,120)'])
    now = time.time()
    state = dict(segments=[
        dict(pid=1, start=now - 100, end=now - 60, rc=None,
             command='python tools/train.py X'),
        dict(pid=2, start=now - 50, end=now, rc=0,
             command='python tools/train.py X --resume')
    ])
    tool._write_json(run.state_file('frrn-a'), state)
    radii = (1, 2, 600)
    for phase, miou in (('ss', 61.234), ('ms_flip', 62.5)):
        metrics = {'aAcc': 90.0, 'mIoU': miou, 'mAcc': 70.0}
        for r in radii:
            metrics[f'mIoU@r{r}'] = miou if r == 600 else 30.0 + r
            for name in ('Sky', 'Road'):
                metrics[f'IoU.{name}@r{r}'] = 80.0 + r / 1000
        folder = os.path.join(run.path('test', 'frrn-a', phase),
                              '20260101_010101')
        os.makedirs(folder)
        with open(osp.join(folder, '20260101_010101.json'), 'w') as f:
            json.dump(metrics, f)
    # the single-scale test finished; the ms+flip one was stopped (out of
    # time): no command is recorded for it
    for name, rc in (('ss-frrn-a', 0), ('ms_flip-frrn-a', -15)):
        tool._write_json(run.state_file(name, 'test'), dict(segments=[
            dict(pid=1, start=0, end=1, rc=rc, command=f'test {name}',
                 commit='d' * 40, dirty=True)]))
    rec = tool.collect_record(run, sched, 'frrn-a', 'FRRN A', 'cfg.py',
                              'abc', False, 'NVIDIA H100 80GB HBM3')
    assert rec['commands'] == dict(train='python tools/train.py X',
                                   test='test ss-frrn-a', test_ms_flip=None)
    # the commit each finished test ran, beside the training's
    assert rec['commit'] == 'abc' and rec['dirty'] is False
    assert rec['test_commits'] == dict(
        test=dict(commit='d' * 40, dirty=True), test_ms_flip=None)
    assert rec['iterations'] == 100
    assert rec['wall_time_s'] == pytest.approx(90, abs=0.2)
    assert rec['train_segments'] == 2
    assert rec['command'] == 'python tools/train.py X'
    assert rec['val_miou'] == 41.5 and rec['val_best_iter'] == 100
    assert rec['val_curve'] == [[50, 30.0], [100, 41.5]]
    assert rec['peak_memory_mb'] == 9100.0
    assert rec['test_miou'] == 61.23 and rec['test_miou_ms_flip'] == 62.5
    assert rec['per_class_iou'] == dict(Sky=80.6, Road=80.6)
    assert rec['trimap'] == dict(radii=[1, 2], miou=[31.0, 32.0])
    assert rec['schedule']['iterations'] == 100
    # the config overrides are part of the schedule the report compares
    assert rec['schedule']['extra_options'] == [
        'test_dataloader.dataset.pipeline.1.scale=(160,120)']


def test_device_name_on_a_cpu(monkeypatch):
    """A CPU run records the CPU it ran on, not just 'cpu'."""
    import torch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    name = tool._device_name()
    assert re.fullmatch(r'cpu \(\d+ cores, .+\)', name), name


def test_calibrate_leaves_out_a_failing_model(tmp_path, monkeypatch):
    """One model failing its calibration (e.g. out of GPU memory) does not
    cancel the others: the proposal comes from their times, and `train`
    starts them without the failed one. --max-train-s caps the training
    time whatever the deadline."""
    data = tmp_path / 'data'
    for split in ('train', 'val'):
        os.makedirs(data / 'img_dir' / split)
    real_launch = tool.launch

    def stand_in(run_, key, phase, args, env=None):
        # the timed iterations MMEngine would log, then the exit status
        if key == 'unet-s5-d16':
            return real_launch(run_, key, phase,
                               ['-c', 'raise SystemExit(1)'], env=env)
        fake_work_dir(run_.work_dir(key, phase), steps=range(1, 41),
                      val=())
        return real_launch(run_, key, phase, ['-c', 'print("ok")'],
                           env=env)

    monkeypatch.setattr(tool, 'launch', stand_in)
    run_dir = tmp_path / 'run'
    code = tool.main(['calibrate', '--run', str(run_dir), '--data',
                      str(data), '--iters', '40', '--ends-in', '3000',
                      '--max-train-s', '171', '--round', '10',
                      '--models', 'frrn-a', 'fcn-r50-d8', 'unet-s5-d16'])
    assert code == 0
    calib = json.loads((run_dir / 'calibration.json').read_text())
    assert calib['failed_models'] == ['unet-s5-d16']
    assert sorted(calib['s_per_iter']) == ['fcn-r50-d8', 'frrn-a']
    # (171 - 60) / (0.2 * 1.1) = 504.5 -> 500: the cap, not the 3000 s
    # deadline
    assert calib['train_budget_s'] == 171
    assert calib['proposed_iterations'] == 500

    launched = []
    monkeypatch.setattr(tool, 'launch',
                        lambda run_, key, *a, **k: launched.append(key))
    assert tool.main(['train', '--run', str(run_dir), '--data', str(data),
                      '--models', 'frrn-a', 'fcn-r50-d8',
                      'unet-s5-d16']) == 0
    assert launched == ['frrn-a', 'fcn-r50-d8']
    sched = json.loads((run_dir / 'schedule.json').read_text())
    assert sched['models'] == ['frrn-a', 'fcn-r50-d8']
    assert sched['iterations'] == 500 and sched['concurrent_models'] == 2


def test_calibrate_fails_only_when_every_model_fails(tmp_path, monkeypatch):
    data = tmp_path / 'data'
    os.makedirs(data / 'img_dir' / 'train')
    real_launch = tool.launch
    monkeypatch.setattr(
        tool, 'launch', lambda run_, key, phase, args, env=None: real_launch(
            run_, key, phase, ['-c', 'raise SystemExit(1)'], env=env))
    with pytest.raises(SystemExit) as info:
        tool.main(['calibrate', '--run', str(tmp_path / 'run'), '--data',
                   str(data), '--iters', '40', '--ends-in', '600',
                   '--models', 'frrn-a', 'fcn-r50-d8'])
    assert info.value.code == 1
    assert not (tmp_path / 'run' / 'calibration.json').exists()


def test_collect_asks_for_the_commit_of_an_old_run(tmp_path, capsys):
    """Training segments that recorded no commit: collect writes no record
    rather than the commit checked out now, and names --commit."""
    run = trained_run(tmp_path, ['frrn-a'])
    assert tool.main(['collect', '--run', run.root]) == 1
    err = capsys.readouterr().err
    assert 'frrn-a: no record' in err and '--commit' in err
    assert not os.path.exists(run.path('results', 'frrn-a.json'))
    assert tool.main(['collect', '--run', run.root, '--commit', 'abc']) == 0
    record = json.loads(open(run.path('results', 'frrn-a.json')).read())
    assert record['commit'] == 'abc' and record['dirty'] is None


def test_collect_keeps_the_others_and_exports(tmp_path, monkeypatch,
                                              capsys):
    """A model whose record cannot be made (here its numbers fail a check)
    is reported; the other records are written and the archive exported
    all the same: collect is often a job's last command."""
    keys = ['frrn-a', 'fcn-r50-d8']
    run = trained_run(tmp_path, keys)
    real = tool.collect_record

    def collect_record(run_, sched, key, *args):
        if key == 'frrn-a':
            raise ValueError('frrn-a: trimap mIoU@r600 1.0 != mIoU 2.0')
        return real(run_, sched, key, *args)

    monkeypatch.setattr(tool, 'collect_record', collect_record)
    out = tmp_path / 'out'
    code = tool.main(['collect', '--run', run.root, '--export', str(out),
                      '--commit', 'abc'])
    assert code == 1
    assert 'frrn-a: no record' in capsys.readouterr().err
    assert os.listdir(run.path('results')) == ['fcn-r50-d8.json']
    assert (out / 'camvid_run.tar.gz').stat().st_size > 0
    record = json.loads(open(run.path('results', 'fcn-r50-d8.json')).read())
    # never tested: no test figures, no test commands (null, as the report
    # takes them)
    assert record['commands']['test'] is None
    assert record['test_miou'] is None


def segnet_camvid_samples(size=(48, 64)):
    """4 train, 2 val, 2 test images with sky, road and a car, in the
    classes' colours plus noise, so that a few iterations learn them."""
    rng = np.random.default_rng(0)
    h, w = size
    colours = np.zeros((12, 3), np.uint8)
    colours[[0, 3, 8]] = [(128, 128, 128), (128, 64, 128), (64, 0, 128)]
    splits = {}
    for split, n in dict(train=4, val=2, test=2).items():
        splits[split] = []
        for i in range(n):
            label = np.full((h, w), 3, np.uint8)
            label[:h // 2] = 0
            label[h // 2:h // 2 + 8, 8:24] = 8
            label[0, 0] = 11
            img = np.clip(colours[label] + rng.integers(0, 20, (h, w, 3)),
                          0, 255).astype(np.uint8)
            splits[split].append((f'{split}{i}', img, label))
    return splits


@pytest.mark.slow
def test_whole_sequence_on_cpu(tmp_path, write_segnet_camvid):
    """calibrate -> train -> wait -> test -> collect -> report, FRRN A on a
    generated CamVid of 48x64 images (a few minutes on 2 cores)."""
    write_segnet_camvid(tmp_path / 'src', segnet_camvid_samples())
    data = tmp_path / 'data'
    convert = [sys.executable,
               osp.join(REPO, 'tools', 'dataset_converters', 'camvid.py'),
               str(tmp_path / 'src'), '-o', str(data), '--splits']
    subprocess.run(convert + ['train', 'val'], check=True,
                   capture_output=True)
    extra = ['train_dataloader.batch_size=2',
             'train_dataloader.dataset.pipeline.2.scale=(64,48)',
             'train_dataloader.dataset.pipeline.3.crop_size=(48,64)',
             'val_dataloader.dataset.pipeline.1.scale=(64,48)',
             'test_dataloader.dataset.pipeline.1.scale=(64,48)']
    common = ['--run', str(tmp_path / 'run')]
    data_args = ['--data', str(data), '--models', 'frrn-a', '--amp', 'none',
                 '--num-workers', '1', '--extra'] + extra

    def phase(*args, expect=0):
        proc = subprocess.run([sys.executable, TOOL, *args],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == expect, proc.stdout + proc.stderr[-3000:]
        return proc.stdout

    # the deadline form (--ends-in); the proposal (hundreds of
    # iterations on this CPU) is checked, then 8 are trained
    out = phase('calibrate', *common, *data_args, '--iters', '8',
                '--log-every', '2', '--ends-in', '900', '--round', '8')
    assert 'proposed:' in out
    calib = json.loads((tmp_path / 'run' / 'calibration.json').read_text())
    assert calib['ends_in_s'] == 900 and calib['budget_min'] is None
    assert calib['train_budget_s'] == pytest.approx(
        900 - calib['calibrate_s'] - tool.LAUNCH_S, abs=0.2)
    # train_budget_s is recorded rounded to 0.1 s: the proposal came from
    # a budget within 0.05 s of it (which can cross a round of 8)
    proposals = [tool.propose_iterations(calib['slowest_s_per_iter'],
                                         calib['train_budget_s'] + d, 8)
                 for d in (-0.05, 0.05)]
    assert proposals[0] <= calib['proposed_iterations'] <= proposals[1]
    phase('train', *common, *data_args, '--iters', '8')
    phase('wait', *common, '--every', '30')
    # test needs the test split: a clear error until it is converted
    out = subprocess.run([sys.executable, TOOL, 'test', *common],
                         capture_output=True, text=True)
    assert out.returncode == 2 and '--splits test' in out.stderr
    subprocess.run(convert + ['test'], check=True, capture_output=True)
    phase('test', *common, '--device', 'cpu', '--jobs', '2')
    phase('collect', *common, '--export', str(tmp_path / 'out'),
          '--commit', 'abc1234')
    rec = json.loads((tmp_path / 'run' / 'results' /
                      'frrn-a.json').read_text())
    assert rec['iterations'] == 8 and rec['commit'] == 'abc1234'
    assert rec['test_miou'] is not None and rec['test_miou_ms_flip']
    assert len(rec['per_class_iou']) == 11
    assert len(rec['trimap']['radii']) == 8
    assert len(os.listdir(tmp_path / 'run' / 'preds' / 'frrn-a')) == 2
    assert (tmp_path / 'out' / 'camvid_run.tar.gz').is_file()
    # and the report renders it
    docs = tmp_path / 'docs'
    docs.mkdir()
    for name in ('camvid.md', 'camvid.json'):
        (docs / name).write_text(
            open(osp.join(REPO, 'docs', 'results', name)).read())
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'analysis', 'camvid_report.py'),
        str(tmp_path / 'run'), '--data', str(data), '--docs', str(docs)
    ], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'FRRN A' in (docs / 'camvid.md').read_text()


def test_predictions_only_of_finished_models_and_one_failure_is_named(
        tmp_path, monkeypatch, capsys):
    """A failed training's checkpoint (here: from an older config) is not
    loaded for the figure, and a model whose predictions fail is named
    while the others' are written."""
    import mmseg.apis
    import torch

    import mmseg_refinenet.apis
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    run = tool.Run(str(tmp_path / 'run'))
    run.makedirs()
    data = tmp_path / 'data'
    os.makedirs(data / 'img_dir' / 'test')
    for stem in ('a', 'b'):
        (data / 'img_dir' / 'test' / f'{stem}.png').write_bytes(b'')
    keys = ['frrn-a', 'fcn-r50-d8', 'unet-s5-d16']
    for key, rc in zip(keys, (0, 0, -15)):
        os.makedirs(run.work_dir(key))
        open(osp.join(run.work_dir(key), 'best_mIoU_iter_10.pth'),
             'w').close()
        tool._write_json(run.state_file(key), dict(segments=[
            dict(pid=1, start=0, end=1, rc=rc, command='x')]))
    loaded = []

    def load_segmentor(config, ckpt, device, cfg_options):
        loaded.append(config)
        if 'frrn' in config:
            raise RuntimeError('checkpoint does not fit\nsecond line')
        return object(), None, None

    def inference_model(model, img):
        sample = SegDataSample()
        sample.pred_sem_seg = PixelData(
            data=torch.ones(1, 3, 4, dtype=torch.long))
        return sample

    monkeypatch.setattr(mmseg_refinenet.apis, 'load_segmentor',
                        load_segmentor)
    monkeypatch.setattr(mmseg.apis, 'inference_model', inference_model)
    sched = dict(models=keys, data_root=str(data), extra_options=[])
    assert tool.write_predictions(run, sched, 'cpu') == ['frrn-a']
    assert not any('unet' in c for c in loaded)  # its training failed
    err = capsys.readouterr().err
    assert 'error: frrn-a: no predictions for the figure: RuntimeError: ' \
        'checkpoint does not fit\n' in err
    assert sorted(os.listdir(run.path('preds', 'fcn-r50-d8'))) == [
        'a.png', 'b.png']
