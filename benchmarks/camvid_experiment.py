"""The CamVid comparison: five models, one schedule, as resumable jobs.

Trains FRRN A, RefineNet-R50 and MMSeg's FCN-R50-D8, DeepLabV3-R50-D8 and
UNet-S5-D16 (``configs/camvid/``) from scratch **at the same time on one
GPU**, all on one identical schedule, then tests each on the CamVid test
split at single scale and with multi-scale + flip, and collects every
figure of ``docs/results/camvid.{md,json}`` into one archive for
``tools/analysis/camvid_report.py``.

It is made for machines that give jobs a time limit (a batch scheduler's
wall-clock limit, a preemptible instance): the five trainings run in the
background, each under a small supervisor (in a process session of its
own) that records its start, end and exit status, and every phase is a
separate command that can be repeated and picks up where the last one
stopped: ``train`` launches what is neither running nor finished and
resumes (MMEngine ``--resume``) what was interrupted, ``test`` tests only
what is missing. Each phase ends within the time it is given
(``--max-min`` / ``--max-s``), so that a job can run one or more phases
and leave before its limit; the next job goes on.

The schedule is the configs' own (AdamW, lr 1e-3, linear warm-up, poly
decay, batch 8, RefineNet's augmentation) with fewer iterations than their
20k, identical for the five models: ``calibrate`` times a few iterations
of all five running together and proposes the largest round number of
iterations that the slowest model completes in the training time it is
given. The schedule is passed as ``--cfg-options`` of ``tools/train.py``,
so the command recorded for each model reruns it anywhere.

Phases (each prints what it did; RUN, the experiment's folder, defaults to
``$MMSEG_RN_STATE/camvid``, ``/tmp/mmseg_refinenet/camvid``)::

    python benchmarks/camvid_experiment.py calibrate --budget-min 6
    # or: the trainings must be over 420 s after calibrate starts
    python benchmarks/camvid_experiment.py calibrate --ends-in 420
    python benchmarks/camvid_experiment.py train      # background
    python benchmarks/camvid_experiment.py wait --max-min 9
    python benchmarks/camvid_experiment.py test --max-min 4
    python benchmarks/camvid_experiment.py collect --export OUT_DIR
    python benchmarks/camvid_experiment.py status

Exit status: 0 done, 1 a model failed (its log is named), 2 wrong
arguments or missing inputs, 3 ``wait`` ran out of time with models still
training (run ``wait`` again), or ``test`` ran out of time and stopped the
tests still running (run ``test`` again: it tests only what is missing).
``docs/results/camvid.md`` says how the published figures were made.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

# standard library only: the supervisors import neither torch nor MMSeg
from harness import cli, provenance  # noqa: E402

fail = cli.fail

#: key, name in the results, config (relative to the repository)
MODELS = (
    ('frrn-a', 'FRRN A', 'configs/camvid/frrn-a_1xb8-20k_camvid-360x480.py'),
    ('refinenet-r50', 'RefineNet-R50 (4-cascaded)',
     'configs/camvid/refinenet_r50_1xb8-20k_camvid-360x480.py'),
    ('fcn-r50-d8', 'FCN-R50-D8',
     'configs/camvid/fcn_r50-d8_1xb8-20k_camvid-360x480.py'),
    ('deeplabv3-r50-d8', 'DeepLabV3-R50-D8',
     'configs/camvid/deeplabv3_r50-d8_1xb8-20k_camvid-360x480.py'),
    ('unet-s5-d16', 'UNet-S5-D16 + FCN head',
     'configs/camvid/unet-s5-d16_fcn_1xb8-20k_camvid-360x480.py'),
)
MODEL_KEYS = tuple(m[0] for m in MODELS)
PLANNED_ITERS = 20000  # the configs' own schedule
DEFAULT_DATA = 'data/camvid'  # the data_root of the CamVid configs
BATCH_SIZE = 8
LR = 1e-3
#: test images shown in the prediction figure: this many, evenly spread
NUM_FIGURE_IMAGES = 4
#: seconds of a training's budget that go to its start-up (imports, model,
#: loader workers), its four validations and checkpoints
STARTUP_S = 60
#: seconds between the end of ``calibrate`` and the trainings' start
#: (``train`` launching five supervisors)
LAUNCH_S = 10
#: scalars MMEngine logs every logger interval; 'time' is s/iteration
TRAIN_LOG = re.compile(r'Iter\(train\)\s*\[\s*(\d+)/(\d+)\]')


def _write_json(path, obj):
    """Write atomically: a reader (another phase) never sees half a file."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def _read_json(path, default=None):
    if not osp.isfile(path):
        return default
    with open(path) as f:
        return json.load(f)


def _config_name(config):
    return osp.splitext(osp.basename(config))[0]


def _models(keys):
    return [m for m in MODELS if m[0] in keys]


# --------------------------------------------------------------------------
# schedule and commands
# --------------------------------------------------------------------------
def schedule_for(iterations, amp, num_workers, concurrent):
    """The run's schedule: the configs' recipe with ``iterations`` instead
    of 20k; warm-up min(500, iterations / 10); validation and a checkpoint
    every quarter."""
    if iterations < 8:
        raise ValueError(f'iterations must be at least 8, got {iterations}')
    warmup = max(2, min(500, iterations // 10))
    interval = max(1, iterations // 4)
    return dict(iterations=iterations,
                planned_iterations=PLANNED_ITERS,
                batch_size=BATCH_SIZE,
                lr=LR,
                warmup_iters=warmup,
                val_interval=interval,
                checkpoint_interval=interval,
                amp=amp,
                num_workers=num_workers,
                concurrent_models=concurrent,
                seed=0)


def schedule_options(sched, data_root, log_interval=50):
    """``--cfg-options`` of ``tools/train.py`` that apply ``sched``."""
    n = sched['iterations']
    opts = [
        f'train_cfg.max_iters={n}',
        f'train_cfg.val_interval={sched["val_interval"]}',
        f'param_scheduler.0.end={sched["warmup_iters"]}',
        f'param_scheduler.1.begin={sched["warmup_iters"]}',
        f'param_scheduler.1.end={n}',
        f'default_hooks.checkpoint.interval={sched["checkpoint_interval"]}',
        f'default_hooks.logger.interval={log_interval}',
        f'train_dataloader.num_workers={sched["num_workers"]}',
        'val_dataloader.num_workers=2',
        f'randomness.seed={sched["seed"]}',
        'env_cfg.cudnn_benchmark=True',
    ] + data_root_options(data_root) + list(sched.get('extra_options', []))
    if sched['amp'] != 'none':
        dtype = dict(bf16='bfloat16', fp16='float16')[sched['amp']]
        opts += ['optim_wrapper.type=AmpOptimWrapper',
                 f'optim_wrapper.dtype={dtype}']
    return opts


def data_root_options(data_root):
    """Options that point the loaders to ``data_root``; none for the
    configs' own ``data/camvid``."""
    if data_root is None or osp.normpath(data_root) == DEFAULT_DATA:
        return []
    return [f'{loader}.dataset.data_root={data_root}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')]


def _quote(args):
    import shlex
    return ' '.join(shlex.quote(a) for a in args)


def train_args(config, work_dir, options, resume=False):
    args = ['tools/train.py', config, '--work-dir', work_dir]
    if resume:
        args.append('--resume')
    return args + ['--cfg-options'] + options


# --------------------------------------------------------------------------
# background runs under a supervisor
# --------------------------------------------------------------------------
class Run:
    """The folders of one experiment under ``root``."""

    def __init__(self, root):
        self.root = osp.abspath(root)

    def path(self, *parts):
        return osp.join(self.root, *parts)

    def work_dir(self, key, phase='train'):
        return self.path(phase, key)

    def state_file(self, key, phase='train'):
        return self.path('state', f'{phase}-{key}.json')

    def log_file(self, key, phase='train'):
        return self.path('logs', f'{phase}-{key}.log')

    def state(self, key, phase='train'):
        return _read_json(self.state_file(key, phase), dict(segments=[]))

    def makedirs(self):
        for sub in ('state', 'logs', 'train', 'calibrate', 'results',
                    'preds', 'test'):
            os.makedirs(self.path(sub), exist_ok=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this very process counts as finished
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def status_of(run, key, phase='train'):
    """'finished', 'failed', 'running', 'interrupted' or 'new'."""
    segments = run.state(key, phase)['segments']
    if not segments:
        return 'new'
    last = segments[-1]
    if last.get('rc') is None:
        return 'running' if _alive(last['pid']) else 'interrupted'
    return 'finished' if last['rc'] == 0 else 'failed'


def launch(run, key, phase, args, env=None):
    """Start ``python args`` under the supervisor in a new session."""
    cmd = [sys.executable, osp.abspath(__file__), '_supervise', run.root,
           key, phase, '--'] + [sys.executable] + args
    before = len(run.state(key, phase)['segments'])
    with open(run.log_file(key, phase), 'ab') as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True,
                                env=env)
    # return once the supervisor has recorded itself, so that the state
    # files say 'running' from now on
    while (len(run.state(key, phase)['segments']) == before
           and proc.poll() is None):
        time.sleep(0.05)
    return proc


def cmd_supervise(args):
    """Run the command, recording its start, end and exit status, and the
    commit it runs (and whether the tree differs from it)."""
    run = Run(args.run)
    state_file = run.state_file(args.key, args.stage)
    state = run.state(args.key, args.stage)
    cmd = args.command
    segment = dict(pid=os.getpid(), start=time.time(), end=None, rc=None,
                   command=_quote(['python'] + cmd[1:]),
                   commit=provenance.git_commit(REPO),
                   dirty=provenance.git_dirty(REPO))
    state['segments'].append(segment)
    _write_json(state_file, state)
    child = subprocess.Popen(cmd, cwd=REPO)

    def forward(signum, frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = child.wait()
    segment.update(end=time.time(), rc=rc)
    _write_json(state_file, state)
    return rc


def wait_for(run, keys, phase, deadline, every=60.0, show=None):
    """Block until no model of ``keys`` is running or ``deadline``."""
    last_print = 0.0
    while True:
        states = {k: status_of(run, k, phase) for k in keys}
        now = time.monotonic()
        running = [k for k, s in states.items() if s == 'running']
        if show is not None and (now - last_print >= every or not running):
            show()
            last_print = now
        if not running:
            return states
        if now >= deadline:
            return states
        time.sleep(min(5.0, max(0.1, deadline - now)))


# --------------------------------------------------------------------------
# reading MMEngine's logs
# --------------------------------------------------------------------------
def read_scalars(work_dir):
    """Every record of ``<work_dir>/<timestamp>/vis_data/scalars.json``,
    over all (resumed) segments, in file order."""
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    records.append(json.loads(line))
    return records


def train_curves(work_dir):
    """(loss curve, val mIoU curve, peak memory in MB or None, s/iter
    median or None) from the scalars; a resumed run's repeated steps keep
    their last value."""
    loss, val, memory, times = {}, {}, [], []
    for rec in read_scalars(work_dir):
        if 'mIoU' in rec:
            val[int(rec['step'])] = float(rec['mIoU'])
        elif 'loss' in rec:
            loss[int(rec['step'])] = float(rec['loss'])
            if 'memory' in rec:
                memory.append(float(rec['memory']))
            if 'time' in rec:
                times.append(float(rec['time']))
    return (sorted(loss.items()), sorted(val.items()),
            max(memory) if memory else None,
            statistics.median(times) if times else None)


def progress(run, key):
    """The last 'Iter(train) [i/n]' of the model's training log."""
    log = run.log_file(key)
    if not osp.isfile(log):
        return None
    with open(log, 'rb') as f:
        f.seek(max(0, osp.getsize(log) - 20000))
        tail = f.read().decode('utf-8', 'replace')
    found = TRAIN_LOG.findall(tail)
    return f'{found[-1][0]}/{found[-1][1]}' if found else None


def best_checkpoint(work_dir):
    """The best-val-mIoU checkpoint (``save_best``) and its iteration."""
    found = []
    for path in glob.glob(osp.join(work_dir, 'best_mIoU_iter_*.pth')):
        m = re.search(r'best_mIoU_iter_(\d+)\.pth$', path)
        if m:
            found.append((int(m.group(1)), path))
    if not found:
        return None, None
    it, path = max(found)
    return path, it


def test_metrics(work_dir):
    """The metrics ``tools/test.py`` dumped (``<ts>/<ts>.json``), newest."""
    found = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    found = [p for p in found
             if osp.basename(p) == osp.basename(osp.dirname(p)) + '.json']
    if not found:
        return None
    with open(found[-1]) as f:
        return json.load(f)


# --------------------------------------------------------------------------
# phases
# --------------------------------------------------------------------------
def _check_data(data_root, splits):
    missing = [s for s in splits
               if not osp.isdir(osp.join(data_root, 'img_dir', s))]
    if missing:
        fail(f'{data_root}: no img_dir/{"|".join(missing)}: convert CamVid '
             'first (tools/dataset_converters/camvid.py SRC -o '
             f'{data_root} --splits {" ".join(missing)})')


def _child_env():
    # five trainings and their loaders share the machine's cores
    return dict(os.environ, OMP_NUM_THREADS=os.environ.get(
        'OMP_NUM_THREADS', '2'), PYTHONUNBUFFERED='1')


def cmd_calibrate(args):
    """Time ``--iters`` iterations of all models running together and
    propose the iterations that fit ``--budget-min`` of training, or that
    end the trainings ``--ends-in`` seconds after this phase starts (at
    most ``--max-train-s`` of training either way).

    A model whose calibration fails or times out (stopped then) is left
    out: the others' times make the proposal, ``calibration.json`` lists
    it under ``failed_models`` and ``train`` does not start it. Only when
    every model fails does this exit with status 1."""
    started = time.monotonic()
    run = Run(args.run)
    run.makedirs()
    _check_data(args.data, ['train'])
    keys = args.models
    sched = schedule_for(max(args.iters, 8), args.amp, args.num_workers,
                         len(keys))
    sched.update(val_interval=10**9, checkpoint_interval=10**9,
                 extra_options=args.extra)
    procs = {}
    for key, _, config in _models(keys):
        work_dir = run.work_dir(key, 'calibrate')
        shutil.rmtree(work_dir, ignore_errors=True)
        if osp.exists(run.state_file(key, 'calibrate')):
            os.remove(run.state_file(key, 'calibrate'))
        opts = schedule_options(sched, args.data, log_interval=args.log_every)
        opts += ['default_hooks.checkpoint.save_last=False',
                 f'train_cfg.val_begin={10**9}']  # no validation at the end
        procs[key] = launch(run, key, 'calibrate',
                            train_args(config, work_dir, opts),
                            env=_child_env())
    deadline = time.monotonic() + args.max_min * 60
    states = wait_for(run, keys, 'calibrate', deadline)
    for key, state in states.items():
        if state == 'running':  # timed out: it must not hold the GPU
            stop_session(procs[key])
    per_iter, bad = {}, {}
    for key in keys:
        times = [(step, t) for step, t in _times(run.work_dir(key,
                                                              'calibrate'))]
        steady = [t for step, t in times if step > args.iters // 2]
        if states[key] != 'finished':
            bad[key] = 'timed out' if states[key] == 'running' else 'failed'
        elif not steady:
            bad[key] = 'no timed iterations after the first half'
        else:
            per_iter[key] = statistics.median(steady)
    if bad:
        print('calibration ' + '; '.join(
            f'{key}: {why} (log {run.log_file(key, "calibrate")})'
            for key, why in bad.items()), file=sys.stderr)
    if not per_iter:
        fail(f'calibration failed for every model: {sorted(bad)}', 1)
    slowest = max(per_iter.values())
    calibrate_s = time.monotonic() - started
    if args.ends_in is not None:
        # ``train`` starts the trainings right after this
        train_s = args.ends_in - calibrate_s - LAUNCH_S
    else:
        train_s = args.budget_min * 60
    if args.max_train_s is not None:
        train_s = min(train_s, args.max_train_s)
    try:
        iterations = propose_iterations(slowest, train_s, args.round)
    except ValueError as e:
        fail(f'{e}: give the trainings more time (--budget-min/--ends-in) '
             'or a smaller --round', 1)
    result = dict(s_per_iter=per_iter, slowest_s_per_iter=slowest,
                  budget_min=args.budget_min, ends_in_s=args.ends_in,
                  calibrate_s=round(calibrate_s, 1),
                  train_budget_s=round(train_s, 1),
                  max_train_s=args.max_train_s,
                  proposed_iterations=iterations,
                  failed_models=sorted(bad),
                  concurrent_models=len(keys), amp=args.amp,
                  num_workers=args.num_workers, device=_device_name())
    _write_json(run.path('calibration.json'), result)
    for key in per_iter:
        print(f'{key:18s} {per_iter[key]:.3f} s/iter together')
    print(f'calibration took {calibrate_s:.0f} s; proposed: '
          f'{iterations} iterations in {train_s:.0f} s of training '
          f'(slowest {slowest:.3f} s/iter)')
    return 0


def propose_iterations(slowest_s_per_iter, train_s, round_to):
    """The most iterations, a multiple of ``round_to``, that the slowest
    model completes in ``train_s`` seconds: one minute goes to start-up,
    the four validations and checkpoints, and 10 % to slack. Raises
    ``ValueError`` when not even ``round_to`` iterations fit."""
    usable = train_s - STARTUP_S
    iterations = int(max(0.0, usable) / (slowest_s_per_iter * 1.1)
                     // round_to) * round_to
    if iterations < round_to:
        raise ValueError(
            f'{train_s:.0f} s of training fit {iterations} iterations at '
            f'{slowest_s_per_iter:.3f} s/iter (after {STARTUP_S} s of '
            f'start-up and validation), fewer than one round of {round_to}')
    return iterations


def _times(work_dir):
    for rec in read_scalars(work_dir):
        if 'time' in rec and 'loss' in rec:
            yield int(rec['step']), float(rec['time'])


def cmd_train(args):
    """Launch (or resume) the trainings in the background and return."""
    run = Run(args.run)
    run.makedirs()
    _check_data(args.data, ['train', 'val'])
    sched_file = run.path('schedule.json')
    sched = _read_json(sched_file)
    if sched is None:
        iterations = args.iters
        models = list(args.models)
        if iterations is None:
            calib = _read_json(run.path('calibration.json'))
            if calib is None:
                fail('no --iters and no calibration.json: run `calibrate` '
                     'first or pass --iters')
            iterations = calib['proposed_iterations']
            failed = [k for k in calib.get('failed_models', [])
                      if k in models]
            if failed:
                print(f'left out (calibration failed): {failed}')
                models = [k for k in models if k not in failed]
        sched = schedule_for(iterations, args.amp, args.num_workers,
                             len(models))
        sched['models'] = models
        sched['data_root'] = args.data
        sched['extra_options'] = list(args.extra)
        for option in args.extra:  # the batch the records report
            if option.startswith('train_dataloader.batch_size='):
                sched['batch_size'] = int(option.split('=', 1)[1])
        _write_json(sched_file, sched)
    elif args.iters is not None and args.iters != sched['iterations']:
        fail(f'this run is fixed at {sched["iterations"]} iterations '
             f'({sched_file}); use another --run for {args.iters}')
    opts = schedule_options(sched, sched['data_root'])
    for key, _, config in _models(sched['models']):
        state = status_of(run, key)
        if state in ('running', 'finished'):
            print(f'{key}: {state}')
            continue
        if state == 'failed' and not args.retry_failed:
            print(f'{key}: failed (see {run.log_file(key)}); '
                  '--retry-failed to resume it')
            continue
        work_dir = run.work_dir(key)
        resume = osp.isfile(osp.join(work_dir, 'last_checkpoint'))
        launch(run, key, 'train', train_args(config, work_dir, opts, resume),
               env=_child_env())
        print(f'{key}: {"resumed" if resume else "started"} '
              f'({sched["iterations"]} iterations, log {run.log_file(key)})')
    return 0


def _show(run, keys, phase):
    def show():
        parts = []
        for key in keys:
            state = status_of(run, key, phase)
            where = progress(run, key) if phase == 'train' else None
            parts.append(f'{key} {state}' + (f' {where}' if where else ''))
        print(time.strftime('%H:%M:%S'), '; '.join(parts), flush=True)
    return show


def _deadline(args):
    """The monotonic time ``--max-s`` (else ``--max-min``) from now; a
    negative budget is a deadline already passed."""
    seconds = args.max_s if args.max_s is not None else args.max_min * 60
    return time.monotonic() + max(0.0, seconds)


def cmd_wait(args):
    run = Run(args.run)
    sched = _read_json(run.path('schedule.json'))
    if sched is None:
        fail('nothing to wait for: run `train` first')
    keys = sched['models']
    deadline = _deadline(args)
    states = wait_for(run, keys, 'train', deadline, every=args.every,
                      show=_show(run, keys, 'train'))
    if any(s == 'running' for s in states.values()):
        print('still training: run `wait` again (the trainings go on in '
              'the background)')
        return 3
    bad = [k for k, s in states.items() if s != 'finished']
    if bad:
        for key in bad:
            print(f'{key}: {states[key]}; log {run.log_file(key)}')
        return 1
    print('all trainings finished')
    return 0


def cmd_test(args):
    """tools/test.py on the best-val checkpoint, single scale and --tta."""
    run = Run(args.run)
    sched = _read_json(run.path('schedule.json'))
    if sched is None:
        fail('no schedule.json: nothing was trained in this run')
    _check_data(sched['data_root'], ['test'])
    deadline = _deadline(args)
    jobs = test_jobs(run, sched)
    pending, procs = list(jobs), {}

    def launch_into_free_slots():
        while pending and sum(p.poll() is None
                              for p in procs.values()) < args.jobs:
            name, targs = pending.pop(0)
            procs[name] = launch(run, name, 'test', targs, env=_child_env())

    no_preds = []
    if time.monotonic() < deadline:
        launch_into_free_slots()
        # the figure's predictions, beside the first tests rather than
        # after them, so that they never push the command past its deadline
        no_preds = write_predictions(run, sched, args.device)
    while pending and time.monotonic() < deadline:
        launch_into_free_slots()
        time.sleep(1)
    states = wait_for(run, list(procs), 'test', deadline)
    late = [n for n, s in states.items() if s == 'running']
    for name in late:  # the supervisor's session: test.py and its workers
        stop_session(procs[name])
    bad = [n for n, s in states.items() if s not in ('finished', 'running')]
    done = [n for n, s in states.items() if s == 'finished']
    print(f'tested {len(done)} of {len(jobs)} runs; predictions in '
          f'{run.path("preds")}')
    if bad:
        logs = ', '.join(run.log_file(n, 'test') for n in bad)
        fail(f'test failed: {logs}', 1)
    if no_preds:
        fail(f'no predictions for the figure: {", ".join(no_preds)} (see '
             'above)', 1)
    if late or pending:
        left = late + [n for n, _ in pending]
        print(f'out of time (--max-s/--max-min): {", ".join(left)} not '
              'tested; `test` again tests only these')
        return 3
    return 0


def test_jobs(run, sched):
    """(name, tools/test.py arguments) of every test still to run: all
    single-scale tests first, then the multi-scale + flip ones (about 17
    times the forward passes), so that a cut-short ``test`` keeps the
    single-scale figures of every model. The work folder of each job
    listed is emptied of what an earlier, cut-short run left there."""
    jobs = []
    for phase, extra in (('ss', []), ('ms_flip', ['--tta'])):
        for key, _, config in _models(sched['models']):
            if status_of(run, key) != 'finished':
                if phase == 'ss':
                    print(f'{key}: training not finished, not tested')
                continue
            ckpt, _ = best_checkpoint(run.work_dir(key))
            if ckpt is None:
                if phase == 'ss':
                    print(f'{key}: no best_mIoU checkpoint in '
                          f'{run.work_dir(key)}')
                continue
            name = f'{phase}-{key}'
            if status_of(run, name, 'test') == 'finished':
                continue
            work_dir = run.path('test', key, phase)
            shutil.rmtree(work_dir, ignore_errors=True)
            jobs.append((name, ['tools/test.py', config, ckpt, '--work-dir',
                                work_dir] + extra + _test_options(sched)))
    return jobs


def stop_session(proc, timeout=15.0):
    """SIGTERM to a supervisor's whole session (it records the end), then
    SIGKILL if it is still there after ``timeout`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _test_options(sched):
    opts = data_root_options(sched['data_root']) + list(
        sched.get('extra_options', []))
    return ['--cfg-options'] + opts if opts else []


def figure_stems(data_root, count=NUM_FIGURE_IMAGES):
    stems = sorted(osp.splitext(n)[0]
                   for n in os.listdir(osp.join(data_root, 'img_dir',
                                                'test')))
    if len(stems) <= count:
        return stems
    step = len(stems) / count
    return [stems[int(step * i + step / 2)] for i in range(count)]


def write_predictions(run, sched, device):
    """Labels predicted for a few test images (``preds/<key>/<stem>.png``,
    class index, 255 where the model predicts nothing), by the models whose
    training finished (as ``test_jobs``). A model whose predictions fail is
    named on stderr and skipped: the figure is not worth the other models'
    tests, which run beside this. Returns the keys that failed."""
    import cv2
    import numpy as np
    from mmseg.apis import inference_model

    from mmseg_refinenet.apis import load_segmentor
    stems = figure_stems(sched['data_root'])
    with open(run.path('preds', 'stems.txt'), 'w') as f:
        f.write(''.join(s + '\n' for s in stems))
    failed = []
    for key, _, config in _models(sched['models']):
        if status_of(run, key) != 'finished':
            continue
        ckpt, _ = best_checkpoint(run.work_dir(key))
        if ckpt is None:
            continue
        out_dir = run.path('preds', key)
        os.makedirs(out_dir, exist_ok=True)
        try:
            model, _, _ = load_segmentor(config, ckpt, device=device,
                                         cfg_options=_options_dict(sched))
            for stem in stems:
                img = osp.join(sched['data_root'], 'img_dir', 'test',
                               stem + '.png')
                pred = inference_model(model, img).pred_sem_seg.data[0]
                label = pred.cpu().numpy().astype(np.uint8)
                cv2.imwrite(osp.join(out_dir, stem + '.png'), label)
            del model
        except Exception as e:  # noqa: BLE001 (reported, not hidden)
            sys.stderr.write(f'error: {key}: no predictions for the '
                             f'figure: {type(e).__name__}: '
                             f'{str(e).splitlines()[0] if str(e) else ""}\n')
            failed.append(key)
    return failed


def _options_dict(sched):
    """The run's test options as a dict for ``load_segmentor``."""
    from mmengine.config import DictAction
    options = _test_options(sched)[1:]
    if not options:
        return None
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    return parser.parse_args(['--o'] + options).o


def _device_name():
    """The GPU's name, else ``cpu (N cores, model)``: where a CPU run (the
    pilot of camvid_report.py --kind cpu_pilot) was measured."""
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    from harness.machine import cpu_name
    return f'cpu ({os.cpu_count()} cores, {cpu_name()})'


def trained_commit(key, segments):
    """(commit, dirty) that the training segments recorded. A segment that
    recorded none (a run started before they did, or a tree with neither
    .git nor $MMSEG_RN_COMMIT) and segments of different commits raise:
    the commit checked out now need not be the one that trained, so the
    caller names it with --commit."""
    if not segments or any(s.get('commit') is None for s in segments):
        raise ValueError(
            f'{key}: its training segments recorded no commit (a run from '
            'before they did, or a tree with neither .git nor '
            '$MMSEG_RN_COMMIT); name the commit that trained it with '
            '--commit')
    commits = sorted({s['commit'] for s in segments})
    if len(commits) > 1:
        raise ValueError(
            f'{key}: its training segments ran different commits '
            f'({", ".join(c[:7] for c in commits)}); name the one to '
            'record with --commit')
    flags = [s.get('dirty') for s in segments]
    dirty = True if True in flags else (None if None in flags else False)
    return commits[0], dirty


def finished_test(run, name):
    """The last segment of test ``name`` if it finished, else None: a test
    that never ran, was stopped (out of time) or failed gave no figures,
    so nothing of it (command, commit) goes beside them."""
    if status_of(run, name, 'test') != 'finished':
        return None
    return run.state(name, 'test')['segments'][-1]


def test_commit(run, name):
    """{'commit', 'dirty'} that a finished test recorded, else None. A test
    runs in a later command than the training, possibly at a later
    commit: the record keeps both."""
    segment = finished_test(run, name)
    if segment is None or segment.get('commit') is None:
        return None
    return dict(commit=segment['commit'], dirty=segment.get('dirty'))


def collect_record(run, sched, key, name, config, commit, dirty, device):
    """The record of one model (schema: tools/analysis/camvid_report.py).
    ``commit`` and ``dirty`` are the training's; ``test_commits`` those
    of its two tests."""
    import torch
    work_dir = run.work_dir(key)
    loss, val, memory, s_iter = train_curves(work_dir)
    _, best_iter = best_checkpoint(work_dir)
    segments = run.state(key)['segments']
    ss = test_metrics(run.path('test', key, 'ss')) or {}
    ms = test_metrics(run.path('test', key, 'ms_flip')) or {}
    classes = _classes(ss)
    radii = sorted(int(k.split('@r')[1]) for k in ss
                   if k.startswith('mIoU@r'))
    whole = max(radii) if radii else None
    # the whole-image band equals IoUMetric's mIoU: a check of the numbers
    if whole is not None and ss.get('mIoU') is not None and abs(
            ss[f'mIoU@r{whole}'] - ss['mIoU']) > 0.011:
        raise ValueError(
            f'{key}: trimap mIoU@r{whole} {ss[f"mIoU@r{whole}"]} != mIoU '
            f'{ss["mIoU"]}: the per-class figures would be wrong')
    train_cmd = segments[0]['command'] if segments else None
    test_cmd = _state_command(run, f'ss-{key}')
    ms_cmd = _state_command(run, f'ms_flip-{key}')
    best_val = dict(val).get(best_iter) if best_iter is not None else None
    return dict(
        key=key, model=name, config=config, commit=commit, dirty=dirty,
        device=device, torch=torch.__version__,
        date=time.strftime('%Y-%m-%d', time.gmtime()),
        command=train_cmd,
        commands=dict(train=train_cmd, test=test_cmd, test_ms_flip=ms_cmd),
        test_commits=dict(test=test_commit(run, f'ss-{key}'),
                          test_ms_flip=test_commit(run, f'ms_flip-{key}')),
        schedule=dict({k: sched[k] for k in (
            'iterations', 'planned_iterations', 'batch_size', 'lr',
            'warmup_iters', 'val_interval', 'amp', 'concurrent_models',
            'seed')}, extra_options=list(sched.get('extra_options', []))),
        iterations=sched['iterations'],
        wall_time_s=round(sum(s['end'] - s['start'] for s in segments
                              if s.get('end')), 1),
        train_segments=len(segments),
        median_s_per_iter=s_iter,
        peak_memory_mb=None if memory is None else round(memory, 1),
        val_miou=_r2(best_val), val_best_iter=best_iter,
        val_curve=[[s, _r2(v)] for s, v in val],
        loss_curve=[[s, round(v, 4)] for s, v in loss],
        test_miou=_r2(ss.get('mIoU')), test_aacc=_r2(ss.get('aAcc')),
        test_miou_ms_flip=_r2(ms.get('mIoU')),
        per_class_iou={c: _r2(ss.get(f'IoU.{c}@r{whole}'))
                       for c in classes},
        per_class_iou_ms_flip={c: _r2(ms.get(f'IoU.{c}@r{whole}'))
                               for c in classes},
        whole_image_radius=whole,
        trimap=dict(radii=[r for r in radii if r != whole],
                    miou=[_r2(ss.get(f'mIoU@r{r}')) for r in radii
                          if r != whole]),
        prediction_dir=f'preds/{key}')


def _r2(value):
    """Metrics as MMSeg reports them: percent with 2 decimals (the JSON
    dump holds float32 values such as 3.2200000286)."""
    return None if value is None else round(float(value), 2)


def _classes(metrics):
    names = []
    for k in metrics:
        m = re.match(r'IoU\.(.+)@r(\d+)$', k)
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def _state_command(run, name):
    """The command of a finished test, else None (see finished_test)."""
    segment = finished_test(run, name)
    return None if segment is None else segment['command']


def cmd_collect(args):
    run = Run(args.run)
    sched = _read_json(run.path('schedule.json'))
    if sched is None:
        fail('no schedule.json: nothing was trained in this run')
    device = _device_name()
    written, broken = [], []
    for key, name, config in _models(sched['models']):
        if status_of(run, key) != 'finished':
            print(f'{key}: not finished, no record')
            continue
        # one model's bad numbers must not cost the others their records
        # (nor the export below)
        try:
            trained = (args.commit, None) if args.commit else \
                trained_commit(key, run.state(key)['segments'])
            record = collect_record(run, sched, key, name, config,
                                    *trained, device)
        except Exception as e:
            sys.stderr.write(f'error: {key}: no record: '
                             f'{type(e).__name__}: {e}\n')
            broken.append(key)
            continue
        _write_json(run.path('results', f'{key}.json'), record)
        written.append(key)
        print(f'{key}: test mIoU {record["test_miou"]} (ms+flip '
              f'{record["test_miou_ms_flip"]}), val {record["val_miou"]} '
              f'at {record["val_best_iter"]}, {record["iterations"]} iters')
    if args.export:
        os.makedirs(args.export, exist_ok=True)
        archive = osp.join(args.export, 'camvid_run.tar.gz')
        with tarfile.open(archive, 'w:gz') as tar:
            for sub in ('results', 'preds', 'state', 'calibration.json',
                        'schedule.json'):
                if osp.exists(run.path(sub)):
                    tar.add(run.path(sub), arcname=sub)
            for key in sched['models']:
                for i, path in enumerate(sorted(glob.glob(osp.join(
                        run.work_dir(key), '*', 'vis_data',
                        'scalars.json')))):
                    tar.add(path, arcname=f'scalars/{key}-{i}.json')
        print(f'{archive}: {osp.getsize(archive) / 2**20:.2f} MiB')
    return 0 if written and not broken else 1


def cmd_status(args):
    run = Run(args.run)
    sched = _read_json(run.path('schedule.json'))
    keys = sched['models'] if sched else list(MODEL_KEYS)
    if sched:
        print(f'schedule: {sched["iterations"]} iterations, amp '
              f'{sched["amp"]}, data {sched["data_root"]}')
    _show(run, keys, 'train')()
    return 0


def parse_args(argv=None):
    state = os.environ.get('MMSEG_RN_STATE', '/tmp/mmseg_refinenet')
    parser = cli.OneLineArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='phase', required=True,
                                parser_class=cli.OneLineArgumentParser)

    def common(p, data=True):
        p.add_argument('--run', default=osp.join(state, 'camvid'),
                       help='folder of this experiment (default: '
                       '$MMSEG_RN_STATE/camvid)')
        if data:
            p.add_argument('--data', default=DEFAULT_DATA,
                           help='CamVid in MMSeg layout (default: '
                           'data/camvid)')
            p.add_argument('--models', nargs='+', choices=MODEL_KEYS,
                           default=list(MODEL_KEYS))
            p.add_argument('--amp', choices=('bf16', 'fp16', 'none'),
                           default='bf16',
                           help='mixed precision of every model '
                           '(default: bf16)')
            p.add_argument('--num-workers', type=int, default=3,
                           help='data loader workers per model (default 3)')
            p.add_argument('--extra', nargs='+', default=[],
                           metavar='KEY=VALUE',
                           help='more --cfg-options for every train and '
                           'test command (part of the schedule; for smoke '
                           'runs on small images)')
        return p

    p = common(sub.add_parser('calibrate', help=cmd_calibrate.__doc__))
    p.add_argument('--iters', type=int, default=60)
    p.add_argument('--log-every', type=int, default=10)
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument('--budget-min', type=float,
                        help='minutes of training the schedule must fit')
    budget.add_argument('--ends-in', type=float, metavar='SECONDS',
                        help='the trainings must be over this many seconds '
                        'after calibrate starts (its own time and the '
                        'launch are taken off): the time left to the job '
                        'minus what the later phases need')
    p.add_argument('--max-train-s', type=float, default=None,
                   metavar='SECONDS',
                   help='at most this many seconds of training, whatever '
                   '--budget-min or --ends-in allow (e.g. so that the '
                   'trainings end inside the `wait` of the same job)')
    p.add_argument('--round', type=int, default=100,
                   help='round the iterations down to a multiple of this')
    p.add_argument('--max-min', type=float, default=5)
    p = common(sub.add_parser('train', help=cmd_train.__doc__))
    p.add_argument('--iters', type=int, default=None,
                   help='iterations (default: calibration.json)')
    p.add_argument('--retry-failed', action='store_true')
    p = common(sub.add_parser('wait', help='wait for the trainings'), False)
    p.add_argument('--max-min', type=float, default=9)
    p.add_argument('--max-s', type=float, default=None,
                   help='seconds instead of --max-min (e.g. the time left '
                   'to the job minus what `test` and `collect` need)')
    p.add_argument('--every', type=float, default=60)
    p = common(sub.add_parser('test', help=cmd_test.__doc__), False)
    p.add_argument('--jobs', type=int, default=5)
    p.add_argument('--max-min', type=float, default=8)
    p.add_argument('--max-s', type=float, default=None,
                   help='seconds instead of --max-min; the tests still '
                   'running then are stopped (exit status 3)')
    p.add_argument('--device', default='cuda')
    p = common(sub.add_parser('collect', help='write the result records'),
               False)
    p.add_argument('--export', help='also pack them into '
                   'EXPORT/camvid_run.tar.gz')
    p.add_argument('--commit', help='the commit that trained the models, '
                   'to record (default: the one their training segments '
                   'recorded; a run whose segments recorded none needs it)')
    common(sub.add_parser('status', help='show the trainings'), False)
    p = sub.add_parser('_supervise')
    p.add_argument('run')
    p.add_argument('key')
    p.add_argument('stage')
    p.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.phase == '_supervise' and args.command[:1] == ['--']:
        args.command = args.command[1:]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.chdir(REPO)
    return dict(calibrate=cmd_calibrate, train=cmd_train, wait=cmd_wait,
                test=cmd_test, collect=cmd_collect, status=cmd_status,
                _supervise=cmd_supervise)[args.phase](args)


if __name__ == '__main__':
    sys.exit(main())
