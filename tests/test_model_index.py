"""``model-index.yml`` and the metafiles: complete, current, and found by mim.

``mim search`` reads ``<package>/.mim/model-index.yml`` with the
``model-index`` package; these tests use the same parser, on the
repository and on a wheel built from it (openmim itself is not a test
dependency: its ``openxlab`` dependency downgrades setuptools below what
torch requires).
"""
import glob
import importlib.util
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FOLDERS = ('refinenet', 'frrn', 'camvid')


def _generator():
    path = osp.join(REPO, 'tools', 'misc', 'gen_model_index.py')
    spec = importlib.util.spec_from_file_location('gen_model_index', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _configs():
    return sorted(
        osp.relpath(p, REPO) for folder in FOLDERS
        for p in glob.glob(osp.join(REPO, 'configs', folder, '*.py')))


@pytest.mark.slow
def test_files_are_up_to_date():
    for rel, text in _generator().expected_files().items():
        path = osp.join(REPO, rel)
        assert osp.isfile(path), f'{rel} missing: run ' \
            'python tools/misc/gen_model_index.py'
        with open(path, encoding='utf-8') as f:
            assert f.read() == text, f'{rel} is out of date: run ' \
                'python tools/misc/gen_model_index.py'


@pytest.fixture(scope='module')
def index_models(require_module):
    """The function ``(index file) -> models`` of the ``model-index``
    parser (a test dependency: the tests that use it skip without it, and
    fail under ``CI=true``)."""
    load = require_module('modelindex.load_model_index').load

    def models(index_file):
        index = load(index_file)
        index.build_models_with_collections()
        return index.models

    return models


def test_every_config_is_indexed_once(index_models):
    models = index_models(osp.join(REPO, 'model-index.yml'))
    configs = sorted(m.config for m in models)
    assert configs == _configs()
    for m in models:
        assert osp.isfile(osp.join(REPO, m.config))
        assert m.name == osp.splitext(osp.basename(m.config))[0]
        assert m.in_collection in ('RefineNet', 'Light-Weight RefineNet',
                                   'FRRN', 'FCN', 'DeepLabV3', 'UNet')
        assert m.paper['URL'].startswith('https://arxiv.org/abs/')


def test_metadata_follows_the_config(index_models):
    index = osp.join(REPO, 'model-index.yml')
    models = {m.name: m for m in index_models(index)}
    m = models['refinenet_r101_4xb2-80k_cityscapes-512x1024']
    assert m.metadata.training_data == 'Cityscapes'
    assert m.metadata.batch_size == 8  # 4 GPUs x 2 images
    assert m.metadata.architecture == ['R-101', 'RefineNet']
    assert m.results[0].metrics == {'mIoU (paper)': 73.6}
    m = models['frrn-b_1xb3-45k_cityscapes-512x1024']
    assert m.metadata.architecture == ['FRRN B', 'FRRN']
    assert m.metadata.batch_size == 3
    m = models['unet-s5-d16_fcn_1xb8-20k_camvid-360x480']
    assert m.metadata.architecture == ['UNet-S5-D16', 'UNet']
    m = models['lw-refinenet_r50-released_4xb4-20k_voc12aug-512x512']
    assert m.metadata.data['Initialised From'].startswith(
        'checkpoints/released/')


def test_check_mode_reports_stale_files(tmp_path, monkeypatch, capsys):
    generator = _generator()
    monkeypatch.setattr(generator, 'REPO', str(tmp_path))
    monkeypatch.setattr(generator, 'expected_files',
                        lambda: {'model-index.yml': 'Import: []\n'})
    assert generator.main(['--check']) == 1
    assert 'out of date: model-index.yml' in capsys.readouterr().err
    assert not (tmp_path / 'model-index.yml').exists()
    assert generator.main([]) == 0
    assert (tmp_path / 'model-index.yml').read_text() == 'Import: []\n'
    assert generator.main(['--check']) == 0


def test_wheel_carries_the_index_for_mim(tmp_path, index_models):
    src = tmp_path / 'src'
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns('.git', 'outputs', 'work_dirs',
                                      '__pycache__', '*.egg-info', 'build',
                                      '.mim', '.pytest_cache', 'benchmarks'))
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '-q', '-w',
        str(tmp_path / 'dist'),
        str(src)
    ],
                   check=True,
                   capture_output=True,
                   timeout=600)
    (wheel, ) = glob.glob(str(tmp_path / 'dist' / '*.whl'))
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / 'site')
    mim = tmp_path / 'site' / 'mmseg_refinenet' / '.mim'
    models = index_models(str(mim / 'model-index.yml'))
    assert sorted(m.config for m in models) == _configs()
    for m in models:  # mim resolves configs relative to .mim
        assert (mim / m.config).is_file()
    assert (mim / 'tools' / 'train.py').is_file()
