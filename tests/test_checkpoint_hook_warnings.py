"""AtomicCheckpointHook says when it cannot keep its promises.

Each case drives the hook's methods with the part of a Runner they use
and records what it logs: checkpoints written by another storage backend
(not atomically), a resumed checkpoint without random generator states or
with the states of another number of processes (the run resumes, its
random draws differ), and ``save_rng_state=False`` (no states saved,
nothing restored, nothing to warn about).
"""
import random
import types

import torch
from mmengine.logging import MessageHub

from mmseg_refinenet.engine import (AtomicCheckpointHook, get_rng_states,
                                    set_rng_states)
from mmseg_refinenet.engine.hooks.atomic_checkpoint_hook import (
    ATOMIC_BACKEND_ARGS, RNG_STATES_KEY)


class _Log:
    """A logger that keeps what it was told, by level."""

    def __init__(self):
        self.records = []

    def _add(self, level, message):
        self.records.append((level, message))

    def info(self, message):
        self._add('info', message)

    def warning(self, message):
        self._add('warning', message)

    def debug(self, message):
        self._add('debug', message)

    def warnings(self):
        return [m for level, m in self.records if level == 'warning']


class _Runner:
    """What the hook's saving, loading and resuming read of a Runner; an
    epoch-based loop (no ``dataloader_iterator``), so a restore happens in
    ``before_train_epoch`` itself. ``save_checkpoint`` keeps the dict that
    a real Runner would write, after the hooks' ``before_save_checkpoint``
    (here: this hook's)."""

    def __init__(self, work_dir, hook):
        self.work_dir = str(work_dir)
        self.epoch, self.iter = 0, 0
        self.logger = _Log()
        self.message_hub = MessageHub.get_instance(f'hook-{id(self)}')
        self.train_loop = types.SimpleNamespace()
        self.hook = hook
        self.saved = []

    def save_checkpoint(self, out_dir, filename, *args, meta=None,
                        **kwargs):
        checkpoint = dict(meta=meta, state_dict={})
        self.hook.before_save_checkpoint(self, checkpoint)
        self.saved.append(checkpoint)


def _resume(hook, runner, checkpoint, at=4):
    """Load ``checkpoint`` as a resume at iteration ``at`` does."""
    hook.after_load_checkpoint(runner, checkpoint)
    runner.iter = at
    hook.before_train_epoch(runner)


def _hook(**kwargs):
    return AtomicCheckpointHook(interval=2, by_epoch=False, **kwargs)


def test_local_folder_is_written_atomically_without_warning(tmp_path):
    hook = _hook()
    runner = _Runner(tmp_path, hook)
    hook.before_train(runner)
    assert hook.backend_args == ATOMIC_BACKEND_ARGS
    assert runner.logger.warnings() == []


def test_another_storage_backend_is_named_as_not_atomic(tmp_path):
    hook = _hook(backend_args=dict(backend='local'))
    runner = _Runner(tmp_path, hook)
    hook.before_train(runner)
    assert hook.backend_args == dict(backend='local')
    warning, = runner.logger.warnings()
    assert 'written by their storage backend, not atomically' in warning
    assert str(tmp_path) in warning


def test_resume_restores_the_states_of_the_checkpoint(tmp_path):
    hook = _hook()
    runner = _Runner(tmp_path, hook)
    states = get_rng_states()
    drawn = (random.random(), torch.rand(3))
    _resume(hook, runner, {'meta': {'iter': 4}, RNG_STATES_KEY: [states]})
    assert random.random() == drawn[0]
    assert torch.equal(torch.rand(3), drawn[1])
    assert runner.logger.warnings() == []
    assert any('Restored the random generator states' in m
               for _, m in runner.logger.records)


def test_checkpoint_without_states_resumes_with_a_warning(tmp_path):
    hook = _hook()
    runner = _Runner(tmp_path, hook)
    set_rng_states(get_rng_states())
    before = torch.get_rng_state()
    _resume(hook, runner, {'meta': {'iter': 4}})
    warning, = runner.logger.warnings()
    assert 'holds no random generator states' in warning
    assert 'random draws differ' in warning
    assert torch.equal(torch.get_rng_state(), before)  # nothing restored


def test_states_of_another_number_of_processes_warn(tmp_path):
    hook = _hook()
    runner = _Runner(tmp_path, hook)
    states = get_rng_states()
    torch.rand(5)
    before = torch.get_rng_state()
    _resume(hook, runner,
            {'meta': {'iter': 4}, RNG_STATES_KEY: [states, states]})
    warning, = runner.logger.warnings()
    assert ('the random generator states of 2 processes, this run has 1'
            in warning)
    assert torch.equal(torch.get_rng_state(), before)  # nothing restored


def test_load_from_is_no_resume(tmp_path):
    """Weights loaded with load_from (the run starts at iteration 0):
    nothing to restore and nothing to warn about."""
    hook = _hook()
    runner = _Runner(tmp_path, hook)
    _resume(hook, runner, {'meta': {'iter': 4}}, at=0)
    assert runner.logger.warnings() == []


def test_save_rng_state_false_saves_restores_and_warns_nothing(tmp_path):
    states_on = _hook()
    runner = _Runner(tmp_path, states_on)
    states_on.before_train(runner)
    states_on._save_checkpoint_with_step(runner, 2, dict(iter=2))
    assert len(runner.saved[0][RNG_STATES_KEY]) == 1  # one process

    hook = _hook(save_rng_state=False)
    runner = _Runner(tmp_path, hook)
    hook.before_train(runner)
    hook._save_checkpoint_with_step(runner, 2, dict(iter=2))
    assert RNG_STATES_KEY not in runner.saved[0]
    # resuming, from a checkpoint with or without states
    torch.rand(5)
    before = torch.get_rng_state()
    _resume(hook, runner, {'meta': {'iter': 4}})
    _resume(hook, runner,
            {'meta': {'iter': 4}, RNG_STATES_KEY: [get_rng_states()] * 2})
    _resume(hook, runner, dict(runner.saved[0], meta={'iter': 4}))
    assert torch.equal(torch.get_rng_state(), before)
    assert runner.logger.warnings() == []
