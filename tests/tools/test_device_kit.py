"""The kit that carries data and wheels to the lent GPU machine.

``tools/device/prebuilt_mmcv.py``: a prebuilt mmcv wheel is taken only with
a stamp naming this interpreter's Python and torch; every other case says
why not (and setup.sh then compiles mmcv).

``tools/device/camvid_chunks.py``: pack and unpack round trips on a tiny
CamVid in SegNet's layout (and, when present, on 3 images per split of the
real copy) are pixel-exact; chunks stay below ``--max-mib``; an unpack of
some chunks only is incomplete and says which files are missing; corrupted
or mismatched chunks and a non-empty output folder are refused with one
``error:`` line. ``tools/device/check_wheels.py``: requirements of
synthetic wheels and sdists are checked against the folder and the device's
package list. Both scripts run as separate processes and import neither
torch nor mm* (the GPU machine has none of them installed yet).
"""
import io
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHUNKS = osp.join(REPO, 'tools', 'device', 'camvid_chunks.py')
CHECK = osp.join(REPO, 'tools', 'device', 'check_wheels.py')
PREBUILT = osp.join(REPO, 'tools', 'device', 'prebuilt_mmcv.py')
SPLITS = ('train', 'val', 'test')
HEAVY = ('torch', 'mmseg', 'mmengine', 'mmcv', 'mmseg_refinenet')


def run(script, *args):
    """The script as a separate process: (exit code, stdout, stderr)."""
    result = subprocess.run([sys.executable, script, *map(str, args)],
                            capture_output=True,
                            text=True,
                            timeout=120)
    return result.returncode, result.stdout, result.stderr


def assert_error(result, *names, status=2):
    code, _, stderr = result
    assert code == status, stderr
    assert stderr.startswith('error: '), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert 'Traceback' not in stderr
    for name in names:
        assert name in stderr, stderr


def folder_size(path):
    return sum(
        osp.getsize(osp.join(d, f)) for d, _, files in os.walk(path)
        for f in files)


def chunk_dirs(out):
    return [osp.join(out, n) for n in sorted(os.listdir(out))]


def holding(dirs, path):
    """The chunk folder whose manifest lists ``path``."""
    for d in dirs:
        with open(osp.join(d, 'manifest.json')) as f:
            if path in [e['path'] for e in json.load(f)['files']]:
                return d
    raise AssertionError(f'no chunk holds {path}')


def read_pixels(path):
    with Image.open(path) as img:
        return np.array(img)


@pytest.fixture
def tiny_camvid(tmp_path, write_segnet_camvid):
    """3 train, 2 val, 2 test images of 24x32, labels 0..11 (seed 0)."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in zip(SPLITS, (3, 2, 2)):
        splits[split] = [
            (f'{split}_{i:03d}',
             rng.integers(0, 256, (24, 32, 3), dtype=np.uint8),
             rng.integers(0, 12, (24, 32), dtype=np.uint8))
            for i in range(n)
        ]
    return write_segnet_camvid(tmp_path / 'camvid', splits,
                               readme='tiny CamVid\n')


def assert_same_dataset(src, dest, splits=SPLITS):
    for split in splits:
        stems = (src / f'{split}.txt').read_text().split()
        assert (dest / f'{split}.txt').read_text().split() == stems
        for stem in stems:
            image = read_pixels(dest / split / f'{stem}.png')
            np.testing.assert_array_equal(
                image, read_pixels(src / split / f'{stem}.png'))
            assert image.dtype == np.uint8 and image.shape[2] == 3
            assert ((dest / (split + 'annot') / f'{stem}.png').read_bytes()
                    == (src / (split + 'annot') / f'{stem}.png').read_bytes())


def test_round_trip_in_chunks(tiny_camvid, tmp_path):
    out, dest = tmp_path / 'chunks', tmp_path / 'dest'
    code, stdout, stderr = run(CHUNKS, 'pack', tiny_camvid, out,
                               '--max-mib', 0.01, '--jobs', 1)
    assert code == 0, stderr
    dirs = chunk_dirs(out)
    assert len(dirs) >= 2 and f'{len(dirs)} chunks' in stdout
    assert [osp.basename(d) for d in dirs] == [
        f'camvid-{i:02d}' for i in range(1, len(dirs) + 1)]
    order = []
    for index, d in enumerate(dirs, 1):
        assert folder_size(d) <= 0.01 * 2**20
        with open(osp.join(d, 'manifest.json')) as f:
            manifest = json.load(f)
        assert (manifest['chunk'], manifest['chunks']) == (index, len(dirs))
        order += [e['split'] for e in manifest['files']
                  if e['kind'] == 'image']
        for e in manifest['files']:
            assert osp.isfile(osp.join(d, e['path']))
    assert order == ['train'] * 3 + ['val'] * 2 + ['test'] * 2
    assert sorted(os.listdir(dirs[0]))[:2] == ['README.md', 'manifest.json']
    assert all(f.endswith('.webp') for f in os.listdir(osp.join(
        dirs[0], 'train')))

    # chunk 1 alone: incomplete, naming what is missing
    code, stdout, stderr = run(CHUNKS, 'unpack', dirs[0], '--out', dest,
                               '--jobs', 1)
    assert code == 0, stderr
    assert_error(run(CHUNKS, 'unpack', '--out', dest, '--check-complete'),
                 'incomplete', 'test/test_001.png',
                 'testannot/test_000.png', 'val/val_000.png',
                 f'camvid-{len(dirs):02d}', status=1)

    # the others (chunk 1 again: skipped), with a pool
    code, stdout, stderr = run(CHUNKS, 'unpack', *dirs[::-1], '--out', dest,
                               '--jobs', 2, '--check-complete')
    assert code == 0, stderr
    assert 'chunk 1 of' in stdout and 'already unpacked' in stdout
    assert 'complete:' in stdout
    assert_same_dataset(tiny_camvid, dest)
    assert (dest / 'README.md').read_text() == 'tiny CamVid\n'
    assert not [n for d, _, files in os.walk(dest) for n in files
                if '.part' in n]


def test_refuses_bad_chunks(tiny_camvid, tmp_path):
    out = tmp_path / 'chunks'
    assert run(CHUNKS, 'pack', tiny_camvid, out, '--max-mib', 0.01,
               '--jobs', 1)[0] == 0
    dirs = chunk_dirs(out)

    # a WebP of other pixels, then one that does not decode
    chunk = holding(dirs, 'train/train_001.webp')
    name = osp.basename(chunk)
    webp = osp.join(chunk, 'train', 'train_001.webp')
    other = np.zeros((24, 32, 3), np.uint8)
    Image.fromarray(other).save(webp, 'WEBP', lossless=True)
    assert_error(run(CHUNKS, 'unpack', chunk, '--out', tmp_path / 'd1'),
                 'hash mismatch', f'{name}/train/train_001.webp',
                 'train/train_001.png')
    with open(webp, 'wb') as f:
        f.write(b'RIFF not a webp')
    assert_error(run(CHUNKS, 'unpack', chunk, '--out', tmp_path / 'd2'),
                 f'{name}/train/train_001.webp', 'cannot decode')
    # a label that changed
    chunk = holding(dirs, 'valannot/val_001.png')
    with open(osp.join(chunk, 'valannot', 'val_001.png'), 'ab') as f:
        f.write(b'\0')
    assert_error(run(CHUNKS, 'unpack', chunk, '--out', tmp_path / 'd3'),
                 'hash mismatch', 'valannot/val_001.png')

    # no manifest; chunks that disagree; the same chunk twice
    os.rename(osp.join(dirs[2], 'manifest.json'),
              osp.join(tmp_path, 'manifest.json'))
    assert_error(run(CHUNKS, 'unpack', dirs[2], '--out', tmp_path / 'd4'),
                 osp.basename(dirs[2]), 'no manifest.json')
    with open(osp.join(tmp_path, 'manifest.json')) as f:
        manifest = json.load(f)
    manifest['chunks'] += 1
    with open(osp.join(dirs[2], 'manifest.json'), 'w') as f:
        json.dump(manifest, f)
    assert_error(run(CHUNKS, 'unpack', dirs[1], dirs[2], '--out',
                     tmp_path / 'd5'), 'different packs', dirs[1], dirs[2])
    copy = tmp_path / 'copy'
    shutil.copytree(dirs[1], copy)
    assert_error(run(CHUNKS, 'unpack', dirs[1], copy, '--out',
                     tmp_path / 'd6'), 'both chunk 2')


def test_refuses_bad_source_and_out_dir(tiny_camvid, tmp_path):
    out = tmp_path / 'chunks'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    assert_error(run(CHUNKS, 'pack', tiny_camvid, out), 'not empty',
                 '--overwrite')
    assert_error(run(CHUNKS, 'pack', tiny_camvid, out, '--overwrite'),
                 'notes.txt')
    assert (out / 'notes.txt').read_text() == 'mine'
    os.remove(out / 'notes.txt')
    assert run(CHUNKS, 'pack', tiny_camvid, out, '--jobs', 1)[0] == 0
    assert_error(run(CHUNKS, 'pack', tiny_camvid, out), '--overwrite')
    code, stdout, stderr = run(CHUNKS, 'pack', tiny_camvid, out, '--jobs',
                               1, '--overwrite', '--order', 'train')
    assert code == 0, stderr
    assert os.listdir(out) == ['camvid-01']  # one chunk of 40 MiB
    assert sorted(os.listdir(out / 'camvid-01')) == [
        'README.md', 'manifest.json', 'train', 'train.txt', 'trainannot']

    shutil.rmtree(tiny_camvid / 'valannot')
    os.remove(tiny_camvid / 'test' / 'test_001.png')
    assert_error(run(CHUNKS, 'pack', tiny_camvid, tmp_path / 'o2'),
                 'not SegNet\'s CamVid folder', 'valannot/')
    assert_error(run(CHUNKS, 'pack', tiny_camvid, tmp_path / 'o3',
                     '--order', 'train', 'test'), 'test/test_001.png')
    assert_error(run(CHUNKS, 'pack', tiny_camvid, tmp_path / 'o4',
                     '--max-mib', 0), 'must be positive')
    assert_error(run(CHUNKS, 'pack', tiny_camvid, tmp_path / 'o5',
                     '--max-mib', 0.001, '--order', 'train'), 'too small')


@pytest.mark.parametrize('script', [CHUNKS, CHECK, PREBUILT])
def test_imports_no_torch_nor_mm(script):
    # as when run as a script: its folder first on sys.path
    code = ('import importlib.util, os.path, sys\n'
            f'sys.path.insert(0, os.path.dirname({script!r}))\n'
            f'spec = importlib.util.spec_from_file_location("m", {script!r})\n'
            'spec.loader.exec_module(importlib.util.module_from_spec(spec))\n'
            'print(" ".join(sorted(sys.modules)))')
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = {m.split('.')[0] for m in result.stdout.split()}
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.camvid
def test_real_camvid_subset(camvid_root, tmp_path):
    out, dest = tmp_path / 'chunks', tmp_path / 'dest'
    # WebP effort 1 (not the default 5) for speed: lossless either way
    code, stdout, stderr = run(CHUNKS, 'pack', camvid_root, out, '--limit',
                               3, '--max-mib', 0.5, '--jobs', 2, '--method',
                               1)
    assert code == 0, stderr
    dirs = chunk_dirs(out)
    assert len(dirs) >= 2
    for d in dirs:
        assert folder_size(d) <= 0.5 * 2**20
    code, stdout, stderr = run(CHUNKS, 'unpack', *dirs, '--out', dest,
                               '--jobs', 2, '--check-complete')
    assert code == 0, stderr
    src = type(tmp_path)(camvid_root)
    for split in SPLITS:
        stems = (dest / f'{split}.txt').read_text().split()
        assert stems == (src / f'{split}.txt').read_text().split()[:3]
        for stem in stems:
            np.testing.assert_array_equal(
                read_pixels(dest / split / f'{stem}.png'),
                read_pixels(src / split / f'{stem}.png'))
            assert ((dest / (split + 'annot') / f'{stem}.png').read_bytes()
                    == (src / (split + 'annot') / f'{stem}.png').read_bytes())


# --------------------------------------------------------------------------
# check_wheels.py


def make_wheel(folder, name, version, requires=(), tag='py3-none-any',
               requires_python=None):
    lines = ['Metadata-Version: 2.1', f'Name: {name}', f'Version: {version}']
    lines += [f'Requires-Dist: {r}' for r in requires]
    if requires_python:
        lines.append(f'Requires-Python: {requires_python}')
    # a description that looks like a header must not count
    text = '\n'.join(lines) + '\n\nRequires-Dist: not-a-header\n'
    path = osp.join(folder, f'{name}-{version}-{tag}.whl')
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr(f'{name}-{version}.dist-info/METADATA', text)
    return path


def make_sdist(folder, name, version, requires_txt):
    path = osp.join(folder, f'{name}-{version}.tar.gz')
    top = f'{name}-{version}'
    with tarfile.open(path, 'w:gz') as tf:
        for member, text in [
            (f'{top}/PKG-INFO', f'Metadata-Version: 2.1\nName: {name}\n'
             f'Version: {version}\n'),
            (f'{top}/{name}.egg-info/requires.txt', requires_txt),
        ]:
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_check_wheels_satisfied(tmp_path):
    make_wheel(tmp_path, 'alpha', '1.0', [
        'beta>=1.0', 'numpy', 'torch>=2.0', 'opencv-python>=3',
        'gone; python_version < "3.8"', 'gone2; sys_platform == "win32"',
        'gone3; extra == "tests"', 'Beta_Two'], requires_python='>=3.8')
    make_wheel(tmp_path, 'beta', '1.2')
    make_wheel(tmp_path, 'beta_two', '0.1')
    make_sdist(tmp_path, 'gamma', '2.0',
               'alpha\n\n[:sys_platform == "win32"]\ngone4\n\n[tests]\n'
               'gone5\n')
    code, stdout, stderr = run(CHECK, tmp_path)
    assert code == 0, stderr
    assert 'ok: 3 wheels + 1 sdist' in stdout
    assert 'opencv-python-headless' in stdout  # the note


def test_check_wheels_problems(tmp_path):
    make_wheel(tmp_path, 'alpha', '1.0',
               ['zzz-missing', 'beta>=2', 'numpy<2', 'gone; extra == "x"'])
    make_wheel(tmp_path, 'beta', '1.0')
    make_wheel(tmp_path, 'beta', '1.1')
    make_wheel(tmp_path, 'old', '1.0', requires_python='<3.10')
    make_wheel(tmp_path, 'native', '1.0', tag='cp311-cp311-win_amd64')
    make_sdist(tmp_path, 'gamma', '2.0', 'yyy-missing\n')
    code, stdout, stderr = run(CHECK, tmp_path)
    assert code == 1
    for text in ('zzz-missing', 'beta>=2', 'numpy<2: the device has numpy',
                 'beta is there twice', 'beta-1.0-py3-none-any.whl',
                 'beta-1.1-py3-none-any.whl', 'excludes 3.12',
                 'native-1.0-cp311-cp311-win_amd64.whl: no tag',
                 'gamma-2.0.tar.gz requires yyy-missing'):
        assert text in stderr, stderr
    assert 'gone' not in stderr


def test_check_wheels_bad_arguments(tmp_path):
    assert_error(run(CHECK, tmp_path / 'nope'), 'no such folder')
    code, _, stderr = run(CHECK, tmp_path)
    assert code == 1 and 'no wheel or sdist' in stderr


def test_check_wheels_lists_device_packages(tmp_path):
    code, stdout, stderr = run(CHECK, '--list-device-packages')
    assert code == 0, stderr
    listed = stdout.split()
    # what `import mmcv` / mmengine / mmseg need from the image, pinned
    # where the version is known; torch and setuptools are the caller's
    for name in ('opencv-python-headless', 'numpy==2.5.2', 'pyyaml',
                 'pillow', 'scipy', 'matplotlib', 'rich', 'regex'):
        assert name in listed, listed
    assert not any(n.startswith(('torch', 'setuptools')) for n in listed)
    assert_error(run(CHECK, '--list-device-packages', tmp_path), 'no folder')
    assert_error(run(CHECK), 'give the folder')


def test_build_mmcv_wheel_env_holds_the_device_packages(tmp_path):
    """build_mmcv_wheel.sh's stand-in environment gets the device image's
    packages before it runs setup.sh (it once got only torch and numpy, and
    setup.sh's import check failed on cv2 after compiling mmcv).

    The environment's python is a stub: pip calls are logged, not run,
    check_wheels.py runs for real, anything else (setup.sh's first step)
    fails, which ends the script.
    """
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    log = tmp_path / 'pip.log'
    stub = venv / 'bin' / 'python'
    stub.write_text(
        '#!/usr/bin/env bash\n'
        'case "$*" in\n'
        f'  "-m pip install"*) echo "$*" >> {log}; exit 0 ;;\n'
        f'  *check_wheels.py*) exec {sys.executable} "$@" ;;\n'
        '  *) exit 3 ;;\n'
        'esac\n')
    stub.chmod(0o755)
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    (wheels / 'mmcv-2.1.0.tar.gz').write_bytes(b'not opened')
    env = dict(os.environ, VENV=str(venv), DEVICE_TORCH='2.11.0',
               WHEELS=str(wheels))
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'device', 'build_mmcv_wheel.sh'),
         str(tmp_path / 'dest')], capture_output=True, text=True, env=env,
        timeout=120)
    assert proc.returncode != 0  # the stub ends it at setup.sh
    installs = log.read_text().splitlines()
    env_install = next(line for line in installs if 'torch==2.11.0' in line)
    _, listed, _ = run(CHECK, '--list-device-packages')
    for requirement in listed.split():
        assert requirement in env_install.split(), (requirement, installs)
    assert not (tmp_path / 'dest').exists()


def _python_and_torch():
    import torch
    return (f'python {sys.version_info.major}.{sys.version_info.minor} '
            f'torch {torch.__version__}')


def test_prebuilt_mmcv_stamp_and_check(tmp_path, run_script_main):
    folder = tmp_path / 'mmcv'
    folder.mkdir()
    wheel = folder / 'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl'
    wheel.write_bytes(b'not opened')
    stamped = run_script_main(PREBUILT, 'stamp', folder)
    assert stamped.returncode == 0, stamped.stderr
    assert (folder / 'built-with.txt').read_text() == (
        _python_and_torch() + '\n')
    checked = run_script_main(PREBUILT, 'check', folder)
    assert (checked.returncode, checked.stdout.strip()) == (0, str(wheel))

    # another torch (or Python): not taken, and both builds named
    (folder / 'built-with.txt').write_text('python 3.12 torch 0.1.0+cu99\n')
    checked = run_script_main(PREBUILT, 'check', folder)
    assert checked.returncode == 1
    assert 'built with python 3.12 torch 0.1.0+cu99' in checked.stdout
    assert _python_and_torch() in checked.stdout


def test_prebuilt_mmcv_not_there(tmp_path, run_script_main):
    folder = tmp_path / 'mmcv'
    for make, why in [
            (lambda: None, 'no folder'),
            (folder.mkdir, 'no mmcv-2.1.0-*.whl'),
            (lambda: (folder / 'mmcv-2.1.0-py3-none-any.whl').touch(),
             'built-with.txt is missing'),
            (lambda: (folder / 'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl'
                      ).touch(), '2 mmcv wheels'),
    ]:
        make()
        checked = run_script_main(PREBUILT, 'check', folder)
        assert checked.returncode == 1, why
        assert why in checked.stdout and checked.stdout.count('\n') == 1


def test_prebuilt_mmcv_bad_arguments(tmp_path):
    # a subprocess: the script's own entry point
    assert_error(run(PREBUILT, 'stamp', tmp_path), 'no mmcv-2.1.0-*.whl',
                 'to stamp')
    assert_error(run(PREBUILT, 'recheck', tmp_path), 'invalid choice')


RUNBOOK = osp.join(REPO, 'docs', 'gpu_runbook.md')


def runbook_calls():
    """The commands of the runbook's device calls (``SECONDS=0; ...``)."""
    import re
    with open(RUNBOOK) as f:
        return re.findall(r'```bash\n(SECONDS=0;[^\n]*)\n```', f.read())


def runbook_python_commands():
    """(call number, argv) of every ``python SCRIPT ...`` in those calls,
    with ``$OUT``, ``$MMSEG_RN_STATE`` and ``$((... - SECONDS))`` made
    concrete."""
    import re
    import shlex
    found = []
    for number, call in enumerate(runbook_calls(), 1):
        call = re.sub(r'\$\(\([^)]*\)\)', '100', call)
        call = call.replace('$OUT', '/tmp/out').replace(
            '$MMSEG_RN_STATE', '/tmp/state')
        for part in re.split(r'&&|;|\|', call):
            words = [w for w in shlex.split(part) if w != '2>&1']
            if words[:1] in (['then'], ['else'], ['do']):
                words = words[1:]
            if words[:1] == ['timeout']:
                words = words[2:]
            if words[:1] == ['python3']:
                found.append((number, words[1:]))
    return found


def test_runbook_calls_fit_the_device_tool():
    """Seven calls (sessions A, B and C), each one line within the tool's
    2,000 characters, each taking its limits from the session's device
    time: budget.sh first, with status's LEFT except in A3, which follows
    A2 at once on the same machine."""
    calls = runbook_calls()
    assert len(calls) == 7
    assert all(len(call) <= 2000 for call in calls)
    first = [call.split(' || exit 2;')[0] for call in calls]
    with_left = 'SECONDS=0; source tools/device/budget.sh LEFT'
    assert first == [with_left] * 2 + [
        'SECONDS=0; source tools/device/budget.sh'] + [with_left] * 4


def _arithmetic(call, pattern):
    import re
    found = re.findall(pattern, call)
    assert len(found) == 1, (pattern, call)
    return int(found[0])


def test_runbook_camvid_reserves_agree():
    """The time A2 keeps free after the trainings (``--ends-in``) covers
    what A3 spends after its ``wait`` (test, then collect), with slack."""
    a2, a3 = runbook_calls()[1:3]
    after_training = _arithmetic(
        a2, r'--ends-in \$\(\(REMAIN - (\d+) - SECONDS\)\)')
    after_wait = _arithmetic(
        a3, r'wait --max-s \$\(\(END - (\d+) - SECONDS\)\)')
    after_test = _arithmetic(
        a3, r'test --jobs \d+ --max-s \$\(\(END - (\d+) - SECONDS\)\)')
    assert after_training > after_wait > after_test > 0
    assert after_training - after_wait >= 30  # the trainings' slack
    phases = [a3.index(f'camvid_experiment.py {phase} ')
              for phase in ('wait', 'test', 'collect')]
    assert phases == sorted(phases)
    # test and collect run whatever the step before them returned
    assert '; python3 tools/device/camvid_experiment.py test' in a3
    assert '; python3 tools/device/camvid_experiment.py collect' in a3
    # A3 runs at most budget.sh's cap of END: trainings longer than that
    # cap less A2's reserve would outlast A3's wait whenever A3 starts with
    # more than the cap left
    import re
    with open(BUDGET) as f:
        cap = int(re.search(r'END=\$\(\( REMAIN < (\d+) \? REMAIN : (\d+) '
                            r'\)\)', f.read()).group(1))
    assert f'--max-train-s $(({cap} - {after_training}))' in a2


BUDGET = osp.join(REPO, 'tools', 'device', 'budget.sh')


def budget(tmp_path, *args, env=None, before=''):
    """Source budget.sh as a runbook call does: (status, REMAIN, END,
    stderr)."""
    script = (f'SECONDS=0; {before} source {BUDGET} {" ".join(args)} || '
              'exit $?; echo "$REMAIN $END"')
    proc = subprocess.run(['bash', '-c', script], capture_output=True,
                          text=True, timeout=30,
                          env=dict(os.environ, MMSEG_RN_STATE=str(tmp_path),
                                   **(env or {})))
    values = proc.stdout.split('\n')[-2].split() if proc.returncode == 0 \
        else (None, None)
    return (proc.returncode, *[int(v) if v else v for v in values],
            proc.stderr)


def test_budget_first_and_later_calls(tmp_path):
    """The first command on a machine takes off the start (210 s) and the
    margin (45 s); a later one with LEFT only the margin; one without LEFT
    reads the recorded deadline, counted from its own start."""
    code, remain, end, _ = budget(tmp_path, '900')
    assert code == 0 and remain == 900 - 45 - 210 and end == 570
    deadline = int((tmp_path / 'deadline').read_text())
    code, remain, end, _ = budget(tmp_path, '500')
    assert code == 0 and remain == 500 - 45 and end == remain
    assert int((tmp_path / 'deadline').read_text()) < deadline
    # the recorded deadline, seen from a command 2 s old
    code, remain, end, _ = budget(tmp_path, before='sleep 2;')
    assert code == 0 and 500 - 45 - 1 <= remain <= 500 - 45
    # margins can be set
    code, remain, _, _ = budget(tmp_path, '500',
                                env=dict(BUDGET_MARGIN_S='10'))
    assert remain == 490


@pytest.mark.parametrize('args,names', [
    (['LEFT'], ["'LEFT' is not a number", 'budget_left_s']),
    (['-5'], ["'-5' is not a number"]),
    ([], ['no deadline recorded', 'budget.sh LEFT']),
])
def test_budget_refuses_what_it_cannot_use(tmp_path, args, names):
    code, _, _, stderr = budget(tmp_path, *args)
    assert code == 2 and stderr.startswith('error: budget.sh: ')
    assert len(stderr.strip().splitlines()) == 1
    for name in names:
        assert name in stderr
    assert not (tmp_path / 'deadline').exists()


def test_budget_refuses_under_a_minute(tmp_path):
    code, _, _, stderr = budget(tmp_path, '260')  # 260 - 45 - 210 < 60
    assert code == 2 and 'give the machine back' in stderr


@pytest.mark.parametrize('number,argv', [
    pytest.param(number, argv, id=f'call{number}-'
                 f'{osp.basename(argv[0])}-{argv[1]}')
    for number, argv in runbook_python_commands()])
def test_runbook_commands_parse(number, argv, load_script, monkeypatch):
    """Every script the runbook runs on the GPU machine exists and takes
    the options written there: a renamed option must not cost a lent
    session."""
    script = osp.join(REPO, argv[0])
    assert osp.isfile(script), f'call {number}: no {argv[0]}'
    monkeypatch.syspath_prepend(osp.dirname(script))  # as `python script`
    try:
        load_script(script).parse_args(argv[1:])
    except SystemExit as e:
        pytest.fail(f'call {number}: {" ".join(argv)} refused ({e.code})')
