"""The package as pip and mim get it: ``python -m build`` makes the sdist,
then the wheel from that sdist; the wheel holds the package, its license
and metadata, and under ``mmseg_refinenet/.mim`` the configs, the model
index and the user tools, nothing else. Installed into an environment of
its own beside mmseg (no PYTHONPATH, outside the repository), it imports
from there and trains from one of its own configs."""
import email.parser
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile

import pytest
import yaml
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow

# what mim gets, relative to the repository root (setup.py's MIM_FILES)
MIM_FILES = ('model-index.yml', 'configs', 'tools/train.py', 'tools/test.py',
             'tools/infer.py', 'tools/dist_train.sh', 'tools/dist_test.sh',
             'tools/model_converters', 'tools/dataset_converters',
             'tools/deployment', 'tools/analysis/plot_curves.py')
# never in a wheel
NOT_SHIPPED = ('tests/', 'benchmarks/', 'tools/device/', 'docs/',
               'tools/install.sh', 'tools/run_tests.sh',
               'tools/misc/', 'tools/analysis/camvid_report.py',
               'tools/analysis/compare_models.py')
# the benchmark and experiment harness and its scripts: run from a clone
HARNESS = re.compile(r'benchmark|harness|provenance|camvid_experiment|'
                     r'camvid_report|compare_models')
QUICKSTART = 'configs/quickstart/refinenet_r18_1xb8-300it_synthetic-64x64.py'


def _files_under(root, names):
    """Files (relative paths) of ``names`` (files or folders) under root."""
    found = set()
    for name in names:
        path = osp.join(root, name)
        if osp.isfile(path):
            found.add(name)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if d != '__pycache__']
            for f in filenames:
                if not f.endswith(('.pyc', '.pyo')):
                    found.add(
                        osp.relpath(osp.join(dirpath, f), root).replace(
                            os.sep, '/'))
    return found


def _copy_source(repo_root, dst):
    """The checkout as a clean clone has it: tracked files and untracked
    ones git does not ignore (no build outputs, no .mim, no egg-info)."""
    try:
        listed = subprocess.run(
            ['git', 'ls-files', '-co', '--exclude-standard', '-z'],
            cwd=repo_root, capture_output=True, check=True).stdout
        names = [n for n in listed.decode().split('\0') if n]
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('needs a git checkout of the repository')
    for name in names:
        src = osp.join(repo_root, name)
        if osp.isfile(src):
            os.makedirs(osp.dirname(osp.join(dst, name)), exist_ok=True)
            shutil.copy2(src, osp.join(dst, name))


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSAFEPATH')}
    env.update(extra)
    return env


@pytest.fixture(scope='module')
def built(repo_root, tmp_path_factory, require_module):
    """sdist and wheel from ``python -m build`` (wheel from the sdist)."""
    require_module('build')
    tmp = tmp_path_factory.mktemp('packaging')
    src = tmp / 'src'
    _copy_source(repo_root, str(src))
    proc = subprocess.run(
        [sys.executable, '-m', 'build', '--no-isolation', '--outdir',
         str(tmp / 'dist'), str(src)],
        cwd=str(tmp), env=_clean_env(), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # the wheel was built from the sdist: the repository copy has no .mim
    assert not osp.exists(src / 'mmseg_refinenet' / '.mim')
    sdists = glob.glob(str(tmp / 'dist' / '*.tar.gz'))
    wheels = glob.glob(str(tmp / 'dist' / '*.whl'))
    assert len(sdists) == 1 and len(wheels) == 1, os.listdir(tmp / 'dist')
    return dict(tmp=tmp, src=str(src), sdist=sdists[0], wheel=wheels[0])


def test_sdist_carries_what_the_wheel_build_copies(built):
    with tarfile.open(built['sdist']) as tar:
        names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
    expected = _files_under(built['src'], MIM_FILES) | {
        'LICENSE', 'README.md', 'pyproject.toml', 'setup.py', 'MANIFEST.in'
    }
    assert expected <= names, sorted(expected - names)
    shipped = [n for n in names if n.startswith(NOT_SHIPPED)]
    assert shipped == []
    assert not any(n.startswith('mmseg_refinenet/.mim') for n in names)


def test_wheel_holds_package_mim_files_and_nothing_else(built):
    with zipfile.ZipFile(built['wheel']) as whl:
        names = set(whl.namelist())
    src = built['src']
    package = {
        n for n in _files_under(src, ['mmseg_refinenet'])
        if n.endswith('.py')
    }
    mim = {
        f'mmseg_refinenet/.mim/{n}'
        for n in _files_under(src, MIM_FILES)
    }
    assert any(n.startswith('mmseg_refinenet/.mim/configs/quickstart/')
               for n in mim)
    dist_info = {n for n in names if n.split('/')[0].endswith('.dist-info')}
    assert package <= names, sorted(package - names)
    assert names - dist_info == package | mim, sorted(
        (names - dist_info) ^ (package | mim))
    assert not any(re.search(r'(^|/)(tests|benchmarks|device)/', n)
                   for n in names)
    assert [n for n in names if HARNESS.search(n)] == []


def test_wheel_metadata_declares_dependencies_and_license(built):
    with open(osp.join(built['src'], 'pyproject.toml'), 'rb') as f:
        declared = tomllib.load(f)['project']['dependencies']
    with zipfile.ZipFile(built['wheel']) as whl:
        meta_name, = [n for n in whl.namelist()
                      if n.endswith('.dist-info/METADATA')]
        meta = email.parser.HeaderParser().parsestr(
            whl.read(meta_name).decode())
        licenses = [n for n in whl.namelist()
                    if n.endswith('.dist-info/licenses/LICENSE')]
        assert len(licenses) == 1
        assert 'Apache License' in whl.read(licenses[0]).decode()

    def parsed(reqs):
        return {(r.name.lower(), r.specifier)
                for r in map(Requirement, reqs) if r.marker is None}

    requires = parsed(meta.get_all('Requires-Dist'))
    assert requires == parsed(declared)
    names = {name for name, _ in requires}
    for runtime in ('torch', 'mmcv', 'mmengine', 'mmsegmentation', 'numpy',
                    'ftfy', 'regex'):
        assert runtime in names
    assert all(spec for name, spec in requires
               if name in ('torch', 'mmcv', 'mmengine', 'mmsegmentation'))
    assert meta['License-Expression'] == 'Apache-2.0'


def test_installed_wheel_imports_and_trains_from_its_config(built):
    tmp = built['tmp']
    venv = tmp / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(venv)], check=True, timeout=300)
    python = str(venv / 'bin' / 'python')
    # beside this interpreter's torch / mmcv / mmseg: its site folders come
    # after the venv's own (and their .pth files, an editable install of
    # the checkout among them, are not run)
    site_dirs = [
        p for p in sys.path
        if osp.basename(p) in ('site-packages', 'dist-packages')
    ]
    purelib = subprocess.run(
        [python, '-c',
         'import sysconfig; print(sysconfig.get_path("purelib"))'],
        capture_output=True, text=True, check=True).stdout.strip()
    with open(osp.join(purelib, 'current-stack.pth'), 'w') as f:
        f.write(''.join(p + '\n' for p in site_dirs))
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', '--python', python, 'install',
         '--no-deps', '--no-index', '--disable-pip-version-check',
         built['wheel']],
        cwd=str(tmp), env=_clean_env(), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run_dir = tmp / 'run'
    run_dir.mkdir()

    def run(*args, timeout=600):
        proc = subprocess.run([python, *args], cwd=str(run_dir),
                              env=_clean_env(), capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        return proc.stdout

    # the installed copy, not the checkout (nor an editable install of it)
    package = run('-c', 'import mmseg_refinenet, os.path as p; '
                  'print(p.dirname(p.realpath(mmseg_refinenet.__file__)))'
                  ).strip()
    assert package == osp.join(osp.realpath(purelib), 'mmseg_refinenet')
    mim = osp.join(package, '.mim')
    index = yaml.safe_load(open(osp.join(mim, 'model-index.yml')))
    for metafile in index['Import']:
        assert osp.isfile(osp.join(mim, metafile)), metafile

    data_root = str(run_dir / 'data')
    run('-c', 'import sys; from mmseg_refinenet.datasets import '
        'generate_synthetic_dataset as g; g(sys.argv[1], 4, 2)', data_root)
    work_dir = run_dir / 'work'
    options = [
        f'{loader}.dataset.data_root={data_root}'
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader')
    ] + [
        'train_dataloader.batch_size=2', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1'
    ]
    run(osp.join(mim, 'tools', 'train.py'), osp.join(mim, QUICKSTART),
        '--work-dir', str(work_dir), '--cfg-options', *options)
    assert osp.isfile(work_dir / 'iter_2.pth')
    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert logs and 'mIoU' in open(logs[0]).read()
