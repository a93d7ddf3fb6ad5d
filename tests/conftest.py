"""Shared test set-up.

The mmsegmentation wheel installs a top-level ``tests`` package into
site-packages. This suite therefore has no ``tests/__init__.py`` and runs in
pytest's importlib mode (pytest.ini), and shared helpers are exposed as
fixtures here instead of being imported as ``tests.xxx``.
"""
import os
import os.path as osp

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CAMVID_ROOT = os.environ.get(
    'CAMVID_ROOT', osp.join(REPO_ROOT, '..', 'shared', 'data', 'camvid'))

# 2-core machines: keep intra-op threads at the core count.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope='session')
def camvid_root():
    """Path of the CamVid copy; skips the test when it is absent."""
    if not osp.isfile(osp.join(CAMVID_ROOT, 'train.txt')):
        pytest.skip(f'CamVid not found at {osp.abspath(CAMVID_ROOT)} '
                    '(set CAMVID_ROOT to its folder to run this test)')
    return osp.abspath(CAMVID_ROOT)
