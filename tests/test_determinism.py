"""Deterministic CPU training: two runs with
``randomness=dict(seed=0, deterministic=True)`` give bit-identical losses
and weights, for RefineNet and for FRRN.

Every training runs in its own ``python tools/train.py`` subprocess so that
the global torch state MMEngine sets for determinism
(``torch.use_deterministic_algorithms``, seeds, ...) never leaks into the
pytest process.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
QUICKSTART = osp.join(REPO_ROOT, 'configs', 'quickstart',
                      'refinenet_r18_1xb8-300it_synthetic-64x64.py')
MAX_ITERS = 4

FRRN_CONFIG = """_base_ = [{base!r}]
model = dict(
    backbone=dict(_delete_=True, type='FRRN', arch=None,
                  encoder=((1, 16), (1, 32)), decoder=((1, 16), ),
                  base_channels=16, residual_channels=8, num_stem_units=1),
    decode_head=dict(_delete_=True, type='FRRNHead', in_channels=16,
                     channels=16, num_classes=4, dropout_ratio=0.,
                     align_corners=False,
                     loss_decode=dict(type='BootstrappedCrossEntropyLoss',
                                      k=512, loss_weight=1.0)))
"""


@pytest.fixture
def options(synthetic_data_root, short_schedule_options):
    return [
        *short_schedule_options(synthetic_data_root, MAX_ITERS, MAX_ITERS),
        'randomness.seed=0', 'randomness.deterministic=True'
    ]


def _train_twice(config, tmp_path, options):
    """Start both trainings at once (one thread each: 2-core machines)."""
    env = dict(os.environ, PYTHONHASHSEED='0', OMP_NUM_THREADS='1',
               MKL_NUM_THREADS='1')
    work_dirs = [str(tmp_path / f'run{i}') for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, TRAIN, config, '--work-dir', work_dir,
             '--cfg-options', *options],
            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True) for work_dir in work_dirs
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, (
            f'training failed ({proc.returncode}):\n{output[-5000:]}')
    return [_read_run(work_dir) for work_dir in work_dirs]


def _read_run(work_dir):
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(scalars) == 1, scalars
    losses = []
    with open(scalars[0]) as f:
        for line in f:
            record = json.loads(line)
            if 'loss' in record:
                losses.append((record['step'], record['loss']))
    ckpt = torch.load(osp.join(work_dir, f'iter_{MAX_ITERS}.pth'),
                      map_location='cpu', weights_only=False)
    return losses, ckpt['state_dict']


def _check_identical(config, tmp_path, options):
    (losses_a, state_a), (losses_b, state_b) = _train_twice(
        config, tmp_path, options)
    assert [step for step, _ in losses_a] == list(range(1, MAX_ITERS + 1))
    assert all(torch.isfinite(torch.tensor(loss)) for _, loss in losses_a)
    assert losses_a == losses_b  # exact, not approx
    assert state_a.keys() == state_b.keys()
    assert len(state_a) > 0
    different = [name for name in state_a
                 if not torch.equal(state_a[name], state_b[name])]
    assert not different, f'weights differ between runs: {different}'


def test_refinenet_training_is_deterministic(tmp_path, options):
    _check_identical(QUICKSTART, tmp_path, options)


def test_frrn_training_is_deterministic(tmp_path, options):
    config = tmp_path / 'frrn_tiny_synthetic-64x64.py'
    config.write_text(FRRN_CONFIG.format(base=QUICKSTART))
    _check_identical(str(config), tmp_path, options)
