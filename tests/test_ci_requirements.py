"""Under ``CI=true`` a missing test dependency or CamVid copy fails the
run, naming what is missing; elsewhere the tests that need it skip.

Each case runs pytest in a subprocess on real test files of this suite:
``onnxruntime`` is made unimportable by a stand-in package first on
``PYTHONPATH`` that raises ``ImportError``, and ``CAMVID_ROOT`` points at
an empty folder.
"""
import os
import re
import subprocess
import sys

import pytest

# one test of each kind, cheap to set up
ONNX_CASE = ('tests/tools/test_onnx_export.py::test_wrong_arguments'
             '[bad shape-words6]')
CAMVID_CASE = 'tests/datasets/test_new_datasets.py::test_camvid_real_copy'


def run_pytest(repo_root, tmp_path, ci):
    shadow = tmp_path / 'shadow' / 'onnxruntime'
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / '__init__.py').write_text(
        "raise ImportError('onnxruntime stand-in: not installed')\n")
    empty = tmp_path / 'no_camvid'
    empty.mkdir(exist_ok=True)
    env = dict(os.environ, CAMVID_ROOT=str(empty))
    env['PYTHONPATH'] = os.pathsep.join(
        [str(tmp_path / 'shadow'), repo_root] +
        ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env.pop('CI', None)
    if ci:
        env['CI'] = 'true'
    return subprocess.run(
        [sys.executable, '-m', 'pytest', '-rfEs',
         ONNX_CASE, CAMVID_CASE],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize('ci', [False, True], ids=['local', 'ci'])
def test_missing_requirements_skip_locally_and_fail_in_ci(
        repo_root, tmp_path, ci):
    proc = run_pytest(repo_root, tmp_path, ci)
    out = proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    camvid = f"the CamVid copy at {tmp_path / 'no_camvid'} is missing"
    assert "test dependency 'onnxruntime' is missing" in out, out[-3000:]
    assert 'onnxruntime stand-in: not installed' in out, out[-3000:]
    assert camvid in out, out[-3000:]
    if ci:
        assert proc.returncode == 1, out[-3000:]
        assert re.match(r'=+ 2 errors in ', summary), out[-3000:]
        assert out.count('CI=true requires it instead of skipping') >= 2
    else:
        assert proc.returncode == 0, out[-3000:]
        assert re.match(r'=+ 2 skipped in ', summary), out[-3000:]
