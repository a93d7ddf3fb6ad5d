"""Interrupted training loses nothing.

A training on generated data is killed with SIGKILL in the middle of the
run, resumed with ``--resume`` in the same work dir, and must end exactly
like an uninterrupted run with the same seed: the same number of
iterations, the same loss at every iteration and bit-identical final
weights (``randomness=dict(seed=0, deterministic=True)``), on one process
and on two gloo processes (``tools/dist_train.sh``). A kill while a
checkpoint is being written must leave nothing that ``--resume`` would pick
up and fail on. See :mod:`mmseg_refinenet.engine`.

The model is the quick-start RefineNet at a quarter of its width (its head
keeps dropout, the randomness that MMEngine alone does not restore); every
training runs ``tools/train.py`` in its own session, with one thread per
process (2-core machines).
"""
import contextlib
import functools
import glob
import json
import multiprocessing
import os
import os.path as osp
import random
import re
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.config import config as mmengine_config
from mmengine.config import utils as mmengine_config_utils

from mmseg_refinenet.engine import (atomic_write, get_rng_states,
                                    remove_partial_files, set_rng_states)
from mmseg_refinenet.utils import load_local_checkpoint

pytestmark = pytest.mark.skipif(
    not osp.isdir('/proc') or not hasattr(os, 'killpg'),
    reason='kills process trees found through /proc (Linux)')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'tools', 'train.py')
DIST_TRAIN = osp.join(REPO, 'tools', 'dist_train.sh')
QUICKSTART = osp.join(REPO, 'configs', 'quickstart',
                      'refinenet_r18_1xb8-300it_synthetic-64x64.py')
MAX_ITERS = 10
CKPT_INTERVAL = 2
# a validation right after every checkpoint, which also saves the best
# checkpoint and then rewrites the checkpoint just written (save_best)
VAL_INTERVAL = CKPT_INTERVAL
KILL_AFTER = 4  # kill once a checkpoint at this iteration or later exists
POLL_TIMEOUT = 120  # s, for the events the tests wait for
RUN_TIMEOUT = 300  # s, for a whole training

TINY_CONFIG = """_base_ = [{base!r}]
model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=16,
                     adapt_channels=[16, 16, 16, 32]))
"""

# Imported through custom_imports: the write of the checkpoint file named by
# $STALL_WRITE_OF stops half-way (signalled by creating $STALL_MARKER) until
# the process is killed. AtomicCheckpointHook writes with os.write.
STALL_WRITE_MODULE = '''
import os
import time

TARGET = os.environ.get('STALL_WRITE_OF')
_write = os.write


def _stalling_write(fd, data):
    try:
        name = os.path.basename(os.readlink(f'/proc/self/fd/{fd}'))
    except OSError:
        name = ''
    if name.startswith(f'.{TARGET}.'):
        _write(fd, memoryview(data)[:len(data) // 2])
        open(os.environ['STALL_MARKER'], 'w').close()
        time.sleep(3600)
    return _write(fd, data)


if TARGET:
    os.write = _stalling_write
'''

STALL_CONFIG = """_base_ = [{base!r}]
custom_imports = dict(imports=['mmseg_refinenet', 'stall_checkpoint_write'],
                      allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))
"""


def _descendants(pid):
    """The processes below ``pid``, found through /proc."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _is_running(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


class Training:
    """A training command started in its own session, output to a file."""

    def __init__(self, cmd, work_dir, env=None):
        self.work_dir = str(work_dir)
        os.makedirs(self.work_dir, exist_ok=True)
        # the console output, next to the work dir
        self.log = f'{self.work_dir}.{time.monotonic_ns()}.out'
        full_env = dict(os.environ, PYTHONHASHSEED='0', OMP_NUM_THREADS='1',
                        MKL_NUM_THREADS='1', PYTHON=sys.executable)
        full_env.update(env or {})
        with open(self.log, 'wb') as log:
            self.proc = subprocess.Popen([*cmd, '--work-dir', self.work_dir],
                                         cwd=osp.dirname(self.work_dir),
                                         env=full_env,
                                         stdout=log,
                                         stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def finish(self):
        """Wait for a successful end; the output."""
        try:
            returncode = self.proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f'training still running after {RUN_TIMEOUT} s:\n'
                        f'{self.output()[-5000:]}')
        assert returncode == 0, (
            f'training failed ({returncode}):\n{self.output()[-5000:]}')
        return self.output()

    def kill(self):
        """SIGKILL the launcher and every process below it at once.

        As a scheduler ending a job would: torchrun starts each worker in a
        session of its own, so its process group alone would not hold them.
        """
        pids = [self.proc.pid, *_descendants(self.proc.pid)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=POLL_TIMEOUT)
        deadline = time.monotonic() + POLL_TIMEOUT
        while any(_is_running(pid) for pid in pids[1:]):
            assert time.monotonic() < deadline, 'killed workers still run'
            time.sleep(0.05)

    def wait_for(self, condition, what):
        """Poll ``condition()`` until it returns a true value while the
        training runs; fail with a clear message otherwise."""
        deadline = time.monotonic() + POLL_TIMEOUT
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(f'the training ended ({self.proc.returncode}) '
                            f'before {what}:\n{self.output()[-5000:]}')
            time.sleep(0.05)
        self.kill()
        pytest.fail(f'no {what} after {POLL_TIMEOUT} s:\n'
                    f'{self.output()[-5000:]}')


def train(config, work_dir, options, *args, nprocs=1, env=None):
    if nprocs == 1:
        cmd = [sys.executable, TRAIN, config]
    else:
        cmd = ['bash', DIST_TRAIN, config, str(nprocs)]
    return Training([*cmd, *args, '--cfg-options', *options], work_dir, env)


def last_checkpoint(work_dir):
    """The path that ``work_dir/last_checkpoint`` names, or None."""
    with contextlib.suppress(FileNotFoundError):
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return f.read().strip() or None
    return None


def last_checkpoint_iter(work_dir):
    path = last_checkpoint(work_dir)
    match = re.search(r'iter_(\d+)\.pth$', path or '')
    return int(match.group(1)) if match else 0


def kill_mid_run(training):
    """SIGKILL ``training`` once it has saved a checkpoint at iteration
    ``KILL_AFTER`` or later and logged an iteration picked at random from
    ``KILL_AFTER`` to ``KILL_AFTER + 2``: during the validation or the save
    that follows a checkpoint, or in the middle of an iteration."""
    kill_at = random.randint(KILL_AFTER, KILL_AFTER + 2)
    print(f'killing {training.work_dir} after iteration {kill_at}')

    def reached():
        trained = re.findall(r'Iter\(train\) \[\s*(\d+)/', training.output())
        return (last_checkpoint_iter(training.work_dir) >= KILL_AFTER
                and trained and int(trained[-1]) >= kill_at)

    training.wait_for(
        reached, f'a checkpoint at iteration {KILL_AFTER} or later and the '
        f'log of iteration {kill_at}')
    training.kill()


def logged_losses(work_dir):
    """{iteration: loss} of each run logged in ``work_dir``, oldest first."""
    runs = []
    for scalars in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        losses = {}
        with open(scalars) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:  # a line the kill cut
                    continue
                if 'loss' in record:
                    losses[record['step']] = record['loss']
        runs.append(losses)
    return runs


def assert_resumed_exactly(work_dir, reference_dir, resumed_from, nprocs=1):
    """The runs in ``work_dir`` (killed, then resumed from iteration
    ``resumed_from``) trained like the uninterrupted one."""
    reference_losses, = logged_losses(reference_dir)
    assert sorted(reference_losses) == list(range(1, MAX_ITERS + 1))
    killed, resumed = logged_losses(work_dir)
    assert sorted(resumed) == list(range(resumed_from + 1, MAX_ITERS + 1))
    for losses in (killed, resumed):
        assert losses == {i: reference_losses[i] for i in losses}

    final = osp.join(work_dir, f'iter_{MAX_ITERS}.pth')
    assert last_checkpoint(work_dir) == final
    ckpt = load_local_checkpoint(final)
    assert ckpt['meta']['iter'] == MAX_ITERS
    assert ckpt['message_hub']['runtime_info']['max_iters'] == MAX_ITERS
    assert len(ckpt['rng_states']) == nprocs  # one per rank
    expected = load_local_checkpoint(
        osp.join(reference_dir, f'iter_{MAX_ITERS}.pth'))['state_dict']
    state = ckpt['state_dict']
    assert state.keys() == expected.keys() and len(state) > 100
    different = [k for k in state if not torch.equal(state[k], expected[k])]
    assert not different, f'weights differ from the uninterrupted run: ' \
        f'{different}'


def assert_resume_log(output, work_dir, resumed_from):
    assert re.search(
        r'Auto resumed from the latest checkpoint '
        + re.escape(osp.join(str(work_dir), f'iter_{resumed_from}.pth')),
        output)
    assert f'resumed epoch: 0, iter: {resumed_from}' in output
    assert 'Restored the random generator states' in output
    assert f'Iter(train) [{MAX_ITERS}/{MAX_ITERS}]' in output


@pytest.fixture(scope='module')
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('configs') / 'tiny_refinenet.py'
    path.write_text(TINY_CONFIG.format(base=QUICKSTART))
    return str(path)


@pytest.fixture(scope='module')
def options(synthetic_data_root, short_schedule_options):
    return [
        *short_schedule_options(synthetic_data_root, MAX_ITERS,
                                CKPT_INTERVAL, VAL_INTERVAL),
        'default_hooks.checkpoint.save_best=mIoU',
        'default_hooks.checkpoint.rule=greater', 'randomness.seed=0',
        'randomness.deterministic=True'
    ]


@pytest.fixture(scope='module')
def reference(tmp_path_factory, tiny_config, options):
    """An uninterrupted 1-process run; it trains in the background while
    the tests start theirs. ``reference.finish()`` waits for it."""
    run = train(tiny_config, tmp_path_factory.mktemp('ref') / 'work',
                options)
    yield run
    if run.proc.poll() is None:
        run.kill()


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_one_process(reference, tiny_config,
                                                 options, tmp_path):
    # slow (about 25 s); the default run keeps the kill while saving below,
    # which resumes one process as well
    work_dir = tmp_path / 'work'
    victim = train(tiny_config, work_dir, options)
    kill_mid_run(victim)
    assert victim.proc.returncode == -signal.SIGKILL
    saved = last_checkpoint_iter(work_dir)
    assert saved < MAX_ITERS, 'the training ended before it was killed'

    output = train(tiny_config, work_dir, options, '--resume').finish()
    assert_resume_log(output, work_dir, saved)
    reference.finish()
    assert_resumed_exactly(str(work_dir), reference.work_dir, saved)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_two_gloo_processes(
        tiny_config, options, tmp_path, free_port):
    reference = train(tiny_config, tmp_path / 'ref', options, nprocs=2,
                      env=dict(PORT=str(free_port())))
    work_dir = tmp_path / 'work'
    victim = train(tiny_config, work_dir, options, nprocs=2,
                   env=dict(PORT=str(free_port())))
    try:
        kill_mid_run(victim)
        saved = last_checkpoint_iter(work_dir)
        assert saved < MAX_ITERS, 'the training ended before it was killed'

        output = train(tiny_config, work_dir, options, '--resume', nprocs=2,
                       env=dict(PORT=str(free_port()))).finish()
        assert 'CPU distributed data parallel: backend gloo, world size 2' \
            in output
        assert_resume_log(output, work_dir, saved)
        reference.finish()
    finally:
        for run in (reference, victim):
            if run.proc.poll() is None:
                run.kill()
    assert_resumed_exactly(str(work_dir), str(tmp_path / 'ref'), saved, 2)


def test_sigkill_while_saving_resumes_from_previous_checkpoint(
        reference, tiny_config, options, tmp_path):
    (tmp_path / 'stall_checkpoint_write.py').write_text(STALL_WRITE_MODULE)
    config = tmp_path / 'stall_config.py'
    config.write_text(STALL_CONFIG.format(base=tiny_config))
    env = dict(PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    marker = tmp_path / 'stalled'
    work_dir = tmp_path / 'work'
    victim = train(str(config), work_dir, options,
                   env=dict(env, STALL_WRITE_OF='iter_4.pth',
                            STALL_MARKER=str(marker)))
    victim.wait_for(marker.exists, 'the stalled write of iter_4.pth')
    victim.kill()

    # the kill left half of iter_4.pth in a temporary file, nothing under
    # its final name, and last_checkpoint naming the complete iter_2.pth
    # (with max_keep_ckpts=1, deleted only once iter_4.pth is in place)
    names = os.listdir(work_dir)
    partial = [n for n in names if re.fullmatch(r'\.iter_4\.pth\..*', n)]
    assert len(partial) == 1 and partial[0].endswith('.partial'), names
    assert os.path.getsize(work_dir / partial[0]) > 0
    assert sorted(n for n in names if n.startswith('iter_')) == ['iter_2.pth']
    assert last_checkpoint(work_dir) == str(work_dir / 'iter_2.pth')
    assert load_local_checkpoint(str(work_dir / 'iter_2.pth'))['meta'][
        'iter'] == 2

    output = train(str(config), work_dir, options, '--resume',
                   env=env).finish()
    assert f'Removed {work_dir / partial[0]}, left by an interrupted save' \
        in output
    assert_resume_log(output, work_dir, 2)
    names = os.listdir(work_dir)
    assert sorted(n for n in names if n.startswith('iter_')) == [
        f'iter_{MAX_ITERS}.pth'
    ]
    assert not [n for n in names if n.endswith('.partial')]
    reference.finish()
    assert_resumed_exactly(str(work_dir), reference.work_dir, 2)


def test_every_config_uses_the_atomic_checkpoint_hook(monkeypatch):
    # For every `mmseg::` base MMEngine reloads pkg_resources and reads all
    # of MMSeg's metafiles again (about 1 s); neither changes in the test.
    for module, name in ((mmengine_config, 'is_installed'),
                         (mmengine_config_utils, 'load')):
        monkeypatch.setattr(module, name,
                            functools.lru_cache()(getattr(module, name)))
    configs = [
        p for p in glob.glob(
            osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
        if '_base_' not in p.split(osp.sep)
    ]
    assert len(configs) > 40
    wrong = {
        osp.relpath(p, REPO): Config.fromfile(p).default_hooks.checkpoint.type
        for p in configs
    }
    wrong = {k: v for k, v in wrong.items() if v != 'AtomicCheckpointHook'}
    assert not wrong


def test_atomic_write_replaces_the_file(tmp_path):
    path = tmp_path / 'last_checkpoint'
    atomic_write(path, 'old')
    atomic_write(path, b'new')
    assert path.read_bytes() == b'new'
    assert os.listdir(tmp_path) == ['last_checkpoint']
    # the permissions that open(path, 'w') gives
    with open(tmp_path / 'plain', 'w'):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(
        (tmp_path / 'plain').stat().st_mode)
    atomic_write(tmp_path / 'new_dir' / 'f', '')
    assert (tmp_path / 'new_dir' / 'f').read_bytes() == b''


@pytest.mark.parametrize('error', [OSError(28, 'No space left on device'),
                                   KeyboardInterrupt()])
def test_atomic_write_error_keeps_the_old_file(tmp_path, monkeypatch, error):
    path = tmp_path / 'iter_4.pth'
    path.write_bytes(b'old')
    write = os.write

    def failing_write(fd, data):
        write(fd, memoryview(data)[:len(data) // 2])
        raise error

    monkeypatch.setattr(os, 'write', failing_write)
    with pytest.raises(type(error)):
        atomic_write(path, b'new content')
    monkeypatch.undo()
    assert path.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['iter_4.pth']


def _write_and_stall(path, marker):
    write = os.write

    def stalling_write(fd, data):
        write(fd, memoryview(data)[:len(data) // 2])
        open(marker, 'w').close()
        time.sleep(3600)

    os.write = stalling_write
    atomic_write(path, b'new content')


def test_atomic_write_killed_midway_keeps_the_old_file(tmp_path):
    path, marker = tmp_path / 'last_checkpoint', tmp_path / 'marker'
    path.write_bytes(b'old')
    child = multiprocessing.get_context('fork').Process(
        target=_write_and_stall, args=(path, marker))
    child.start()
    deadline = time.monotonic() + POLL_TIMEOUT
    while not marker.exists():
        assert child.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join(POLL_TIMEOUT)
    assert not child.is_alive()
    marker.unlink()

    assert path.read_bytes() == b'old'
    partial, = [p for p in os.listdir(tmp_path) if p != 'last_checkpoint']
    assert partial.startswith('.last_checkpoint.')
    assert (tmp_path / partial).read_bytes() == b'new c'
    assert remove_partial_files(str(tmp_path)) == [str(tmp_path / partial)]
    assert os.listdir(tmp_path) == ['last_checkpoint']


def test_rng_states_round_trip():
    states = get_rng_states()
    drawn = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_states(states)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert drawn[:2] == again[:2] and torch.equal(drawn[2], again[2])


class _BestRunner:
    """The part of a Runner that CheckpointHook's saving uses, writing small
    files, and failing (as a kill would stop it) on the names given."""

    def __init__(self, work_dir, fail_on=()):
        from mmengine.logging import MessageHub, MMLogger
        self.work_dir = str(work_dir)
        self.epoch, self.iter = 0, 0
        self.fail_on = set(fail_on)
        self.saves = []  # (file name, the files present before the write)
        name = f'best-{id(self)}'
        self.message_hub = MessageHub.get_instance(name)
        self.logger = MMLogger.get_instance(name)

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        self.saves.append((filename, sorted(os.listdir(out_dir))))
        if filename in self.fail_on:
            raise RuntimeError(f'killed while writing {filename}')
        atomic_write(osp.join(out_dir, filename), filename)


def _train_and_validate(hook, runner, step, miou):
    runner.iter = step
    hook._save_checkpoint_with_step(runner, step, dict(iter=step))
    hook._save_best_checkpoint(runner, dict(mIoU=miou))


def test_previous_best_checkpoint_deleted_only_after_the_new_one(tmp_path):
    """MMEngine deletes the previous best_*.pth before it writes the new
    one: a kill in between left no best checkpoint. Here the old one goes
    last, after the new best and the iter_N.pth that names it."""
    from mmseg_refinenet.engine.hooks import AtomicCheckpointHook
    runner = _BestRunner(tmp_path)
    hook = AtomicCheckpointHook(
        interval=2, by_epoch=False, save_best='mIoU', rule='greater')
    hook.before_train(runner)
    _train_and_validate(hook, runner, 2, 0.5)
    assert hook.best_ckpt_path == str(tmp_path / 'best_mIoU_iter_2.pth')

    runner.saves.clear()
    _train_and_validate(hook, runner, 4, 0.7)
    names = [name for name, _ in runner.saves]
    assert names == ['iter_4.pth', 'best_mIoU_iter_4.pth', 'iter_4.pth']
    # both later writes happened with the previous best still there
    for _, present in runner.saves[1:]:
        assert 'best_mIoU_iter_2.pth' in present
    files = sorted(os.listdir(tmp_path))
    assert 'best_mIoU_iter_2.pth' not in files
    assert 'best_mIoU_iter_4.pth' in files
    assert runner.message_hub.get_info('best_ckpt') == str(
        tmp_path / 'best_mIoU_iter_4.pth')

    # no improvement: nothing written or removed
    runner.saves.clear()
    _train_and_validate(hook, runner, 6, 0.6)
    assert [name for name, _ in runner.saves] == ['iter_6.pth']
    assert hook.best_ckpt_path == str(tmp_path / 'best_mIoU_iter_4.pth')

    # killed while writing the new best: the previous best is still there
    runner.fail_on.add('best_mIoU_iter_8.pth')
    with pytest.raises(RuntimeError, match='killed while writing'):
        _train_and_validate(hook, runner, 8, 0.9)
    assert 'best_mIoU_iter_4.pth' in os.listdir(tmp_path)
