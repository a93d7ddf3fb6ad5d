"""tools/misc/fetch_offline_wheels.sh and install_offline.sh: the pip
commands they run and the errors they give, with a stand-in Python that
records each call instead of downloading, building or installing (the real
run needs the network and a 20-minute mmcv build)."""
import os
import os.path as osp
import shlex
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FETCH = osp.join(REPO, 'tools', 'misc', 'fetch_offline_wheels.sh')
INSTALL = osp.join(REPO, 'tools', 'misc', 'install_offline.sh')

# Records its arguments and the build switches of its environment, one
# call per line; answers `-c CODE` for the imports the scripts probe
# (STUB_TORCH / STUB_MMCV: exit status of `import torch` / `import
# mmcv._ext`), runs other `-c` code with the real Python, and reads the
# final check from stdin.
STUB = r'''#!/usr/bin/env bash
switches="FORCE_CUDA=${FORCE_CUDA-} MMCV_WITH_OPS=${MMCV_WITH_OPS-}"
echo "$switches $*" >> "$STUB_LOG"
if [ "$1" = -c ]; then
    case "$2" in
        *mmcv._ext*) exit "${STUB_MMCV:-1}" ;;
        *'import torch'*) exit "${STUB_TORCH:-0}" ;;
        *) exec "$REAL_PYTHON" "$@" ;;
    esac
fi
if [ "$1" = - ]; then cat > /dev/null; fi
exit 0
'''


@pytest.fixture
def stub(tmp_path):
    path = tmp_path / 'python'
    path.write_text(STUB)
    path.chmod(0o755)
    log = tmp_path / 'calls.log'

    def run(script, *args, **env):
        full = dict(os.environ, PYTHON=str(path), STUB_LOG=str(log),
                    REAL_PYTHON=sys.executable,
                    **{k: str(v) for k, v in env.items()})
        proc = subprocess.run(['bash', script, *map(str, args)],
                              cwd=tmp_path, env=full, capture_output=True,
                              text=True, timeout=60)
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return proc, calls

    return run


@pytest.fixture
def wheelhouse(tmp_path):
    folder = tmp_path / 'wheelhouse'
    folder.mkdir()
    (folder / 'mmcv-2.1.0.tar.gz').write_bytes(b'')
    (folder / 'mmseg_refinenet-1.0.0-py3-none-any.whl').write_bytes(b'')
    return folder


def pip_installs(calls):
    return [c.split(' -m pip install ', 1) for c in calls
            if ' -m pip install ' in c]


def test_install_builds_mmcv_from_the_wheelhouse(stub, wheelhouse):
    proc, calls = stub(INSTALL, wheelhouse)
    assert proc.returncode == 0, proc.stderr
    installs = pip_installs(calls)
    # every install is offline, from the wheelhouse only
    for _, args in installs:
        assert f'--no-index --find-links {wheelhouse}' in args, args
    targets = [shlex.split(args)[-1] for _, args in installs]
    assert 'mmsegmentation==1.2.2' in installs[1][1]
    # mmcv: built here, against the installed torch, with its ops
    env, args = installs[2]
    assert targets[2] == str(wheelhouse / 'mmcv-2.1.0.tar.gz')
    assert '--no-build-isolation' in args and 'MMCV_WITH_OPS=1' in env
    assert 'FORCE_CUDA= ' in env  # CUDA ops where nvcc and a GPU are
    # then the plugin, without touching its (installed) requirements
    assert targets[3].endswith('mmseg_refinenet-1.0.0-py3-none-any.whl')
    assert '--no-deps' in installs[3][1] and len(installs) == 4
    assert calls[-1].endswith(' -')  # the import check ran


def test_install_cpu_ops_and_an_installed_mmcv(stub, wheelhouse):
    proc, calls = stub(INSTALL, wheelhouse, MMCV_CPU_OPS=1)
    assert proc.returncode == 0, proc.stderr
    env, _ = pip_installs(calls)[2]
    assert 'FORCE_CUDA=0' in env and 'CPU ops' in proc.stdout
    # an mmcv with compiled ops already there is kept
    proc, calls = stub(INSTALL, wheelhouse, STUB_MMCV=0)
    assert proc.returncode == 0, proc.stderr
    assert not any('mmcv-2.1.0.tar.gz' in c for c in calls)
    assert 'already installed' in proc.stdout


@pytest.mark.parametrize('case, fragment', [
    ('no folder', 'no folder'),
    ('no torch', 'cannot import torch'),
    ('no plugin', 'no mmseg_refinenet-*.whl'),
    ('no mmcv', 'no mmcv-2.1.0.tar.gz'),
])
def test_install_errors(stub, wheelhouse, case, fragment):
    env = {}
    folder = wheelhouse
    if case == 'no folder':
        folder = wheelhouse.parent / 'missing'
    elif case == 'no torch':
        env['STUB_TORCH'] = 1
    elif case == 'no plugin':
        (wheelhouse / 'mmseg_refinenet-1.0.0-py3-none-any.whl').unlink()
    else:
        (wheelhouse / 'mmcv-2.1.0.tar.gz').unlink()
    proc, calls = stub(INSTALL, folder, **env)
    assert proc.returncode == 2
    assert proc.stderr.startswith('error: ') and fragment in proc.stderr
    # nothing built or installed before the error, but the requirements
    # that the mmcv build needs
    assert not any('tar.gz' in c or '.whl' in c for c in calls)


def test_fetch_downloads_for_the_target(stub, tmp_path):
    dest = tmp_path / 'wh'
    proc, calls = stub(FETCH, dest, TARGET_PYTHON='3.10',
                       TARGET_PLATFORMS='manylinux2014_x86_64 any')
    assert proc.returncode == 0, proc.stderr
    pip = [c.split(' -m pip ', 1)[1] for c in calls if ' -m pip ' in c]
    binary = next(c for c in pip if c.startswith('--disable-pip-version-'
                                                 'check --no-input download'))
    for option in ('--only-binary=:all:', '--python-version 3.10',
                   '--platform manylinux2014_x86_64 --platform any',
                   f'--dest {dest}', 'mmengine==0.10.7',
                   'mmsegmentation==1.2.2', 'setuptools<81'):
        assert option in binary, option
    assert 'torch' not in binary.split()
    assert any('download' in c and '--no-binary=:all: mmcv==2.1.0' in c
               for c in pip)
    wheel = next(c for c in pip if c.split()[2:3] == ['wheel'])
    assert '--no-deps' in wheel and wheel.endswith(' .')
    assert dest.is_dir()


def test_fetch_refuses_a_bad_target_version(stub, tmp_path):
    proc, calls = stub(FETCH, tmp_path / 'wh', TARGET_PYTHON='3')
    assert proc.returncode == 2
    assert "TARGET_PYTHON must be a version such as 3.11, got '3'" in \
        proc.stderr
    assert not any('download' in c for c in calls)
