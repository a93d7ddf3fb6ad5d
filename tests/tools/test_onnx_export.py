"""tools/deployment/pytorch2onnx.py, run as a user would.

RefineNet (the quick-start R-18 config) is exported with torch's default
``dynamo`` exporter and dynamic axes, FRRN A with the legacy TorchScript
exporter; onnxruntime must reproduce MMSeg's own prediction
(``EncoderDecoder.predict``) on another input size and batch. Wrong
arguments end with ``error: ...``, exit 2 and no output file.
"""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EXPORT = osp.join(REPO, 'tools', 'deployment', 'pytorch2onnx.py')
REFINENET = osp.join(REPO, 'configs', 'quickstart',
                     'refinenet_r18_1xb8-300it_synthetic-64x64.py')
FRRN = osp.join(REPO, 'configs', 'frrn',
                'frrn-a_1xb3-45k_cityscapes-256x512.py')
CLASSES = ['background', 'disc', 'box', 'bar']


def export(args, cwd, timeout=600):
    return subprocess.run([sys.executable, EXPORT, *args],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=timeout)


@pytest.fixture(scope='module', autouse=True)
def onnx_dependencies(require_module):
    """onnx, onnxruntime and onnxscript (the dynamo exporter) are test
    dependencies: the whole file skips without them (fails under
    ``CI=true``)."""
    for name in ('onnx', 'onnxruntime', 'onnxscript'):
        require_module(name)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    from mmseg_refinenet.apis import load_segmentor
    root = tmp_path_factory.mktemp('onnx')
    paths = {}
    for name, config in (('refinenet', REFINENET), ('frrn', FRRN)):
        torch.manual_seed(0)
        model, _, _ = load_segmentor(config)
        paths[name] = str(root / f'{name}.pth')
        meta = {'dataset_meta': {'classes': CLASSES}} \
            if name == 'refinenet' else {}
        torch.save({'meta': meta, 'state_dict': model.state_dict()},
                   paths[name])
    return paths


def mmseg_prediction(config, ckpt, inputs):
    """Labels and logits of EncoderDecoder.predict (whole inference)."""
    from mmseg.structures import SegDataSample

    from mmseg_refinenet.apis import load_segmentor
    model, _, _ = load_segmentor(config, ckpt)
    h, w = inputs.shape[2:]
    samples = [
        SegDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        for _ in range(len(inputs))
    ]
    with torch.no_grad():
        results = model.predict(inputs, samples)
    return (np.stack([r.pred_sem_seg.data[0].numpy() for r in results]),
            np.stack([r.seg_logits.data.numpy() for r in results]))


def run_onnx(path, inputs):
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'inputs': inputs.numpy()})


@pytest.mark.slow
def test_refinenet_dynamic_export_matches_mmseg(checkpoints, tmp_path):
    import onnx
    ckpts = checkpoints
    out = tmp_path / 'refinenet.onnx'
    proc = export([
        REFINENET, '--checkpoint', ckpts['refinenet'], '--out',
        str(out), '--shape', '64', '64', '--dynamic', '--verify'
    ],
                  cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'verified with onnxruntime on 2 input shape(s)' in proc.stdout
    # another batch and an odd size than the export example
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(3, 3, 72, 104, generator=generator)
    logits, labels = run_onnx(str(out), inputs)
    ref_labels, ref_logits = mmseg_prediction(REFINENET, ckpts['refinenet'],
                                              inputs)
    assert logits.shape == (3, 4, 72, 104) and labels.shape == (3, 72, 104)
    np.testing.assert_allclose(
        logits, ref_logits, rtol=0, atol=1e-4 * np.abs(ref_logits).max())
    assert (labels == ref_labels).mean() > 0.999
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta['classes'] == '["background", "disc", "box", "bar"]'
    assert meta['mean'] == '[123.675, 116.28, 103.53]'
    assert meta['bgr_to_rgb'] == 'true'
    # nothing but the file itself is written (the test's own folder)
    assert [p.name for p in tmp_path.iterdir()] == ['refinenet.onnx']


def test_frrn_torchscript_export_matches_mmseg(checkpoints, tmp_path):
    ckpts = checkpoints
    out = tmp_path / 'frrn.onnx'
    proc = export([
        FRRN, '--checkpoint', ckpts['frrn'], '--out',
        str(out), '--shape', '64', '128', '--exporter', 'torchscript',
        '--no-labels', '--verify'
    ],
                  cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    inputs = torch.randn(1, 3, 64, 128)
    (logits, ) = run_onnx(str(out), inputs)
    _, ref_logits = mmseg_prediction(FRRN, ckpts['frrn'], inputs)
    np.testing.assert_allclose(
        logits, ref_logits, rtol=0, atol=1e-4 * np.abs(ref_logits).max())


@pytest.mark.parametrize('existing', [False, True])
def test_failed_verification_leaves_no_file(checkpoints, existing,
                                            tmp_path):
    """A model that fails --verify is never written to --out, and a file
    already there (e.g. the last good export) stays as it was."""
    ckpts = checkpoints
    out = tmp_path / 'rejected.onnx'
    if existing:
        out.write_bytes(b'the previous, verified model')
    proc = export([
        FRRN, '--checkpoint', ckpts['frrn'], '--out',
        str(out), '--shape', '32', '32', '--exporter', 'torchscript',
        '--verify', '--rtol', '-1'
    ],
                  cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'disagree' in proc.stderr and 'Traceback' not in proc.stderr
    if existing:
        assert out.read_bytes() == b'the previous, verified model'
        assert 'unchanged' in proc.stderr
    # no temporary file left behind either
    assert [p.name for p in tmp_path.iterdir()] == (['rejected.onnx']
                                                    if existing else [])


WRONG_ARGUMENTS = [
    ('missing config', ['config file', 'does not exist']),
    ('missing checkpoint', ['checkpoint file', 'does not exist']),
    ('checkpoint of another model', ['does not fit', 'same config']),
    ('corrupt checkpoint', ['could not be read']),
    ('size FRRN cannot take', ['--shape 60 128', 'divisible by 16']),
    ('out is a folder', ['is a folder']),
    ('bad shape', ['expected positive sizes']),
]


def wrong_arguments(checkpoints, case, folder):
    """The arguments of ``case`` and the file they must not write, in the
    test's own ``folder``."""
    ckpts = checkpoints
    out = folder / 'bad.onnx'
    corrupt = folder / 'corrupt.pth'
    corrupt.write_bytes(open(ckpts['frrn'], 'rb').read()[:1000])
    args = {
        'missing config': ['nope.py', '--out',
                           str(out)],
        'missing checkpoint':
        [REFINENET, '--checkpoint', 'nope.pth', '--out',
         str(out)],
        'checkpoint of another model':
        [REFINENET, '--checkpoint', ckpts['frrn'], '--out',
         str(out)],
        'corrupt checkpoint':
        [FRRN, '--checkpoint',
         str(corrupt), '--out',
         str(out)],
        'size FRRN cannot take':
        [FRRN, '--out', str(out), '--shape', '60', '128'],
        'out is a folder': [FRRN, '--out', str(folder)],
        'bad shape': [FRRN, '--out', str(out), '--shape', '0', '64'],
    }[case]
    return args, out


def assert_refused(proc, words, out):
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ')
    for word in words:
        assert word in last, last
    assert not out.exists()


@pytest.mark.parametrize('case, words', WRONG_ARGUMENTS)
def test_wrong_arguments(checkpoints, case, words, run_script_main,
                         tmp_path):
    # main() in this process: a subprocess imports torch and MMSeg again
    args, out = wrong_arguments(checkpoints, case, tmp_path)
    proc = run_script_main(EXPORT, *args, cwd=str(tmp_path))
    assert_refused(proc, words, out)


def test_wrong_arguments_command_line(checkpoints, tmp_path):
    """One case as a user runs it: the script's exit status and stderr."""
    case, words = WRONG_ARGUMENTS[0]
    args, out = wrong_arguments(checkpoints, case, tmp_path)
    proc = export(args, cwd=str(tmp_path), timeout=300)
    assert_refused(proc, words, out)


def test_dynamo_exporter_on_an_older_torch_names_the_version(
        monkeypatch, tmp_path):
    from mmseg_refinenet.deployment import onnx_export
    monkeypatch.setattr(onnx_export, 'dynamo_exporter_available',
                        lambda: False)
    out = tmp_path / 'model.onnx'
    with pytest.raises(RuntimeError, match=r'torch >= 2\.6'):
        onnx_export.export_onnx(
            torch.nn.Identity(), str(out), (8, 8), exporter='dynamo')
    assert list(tmp_path.iterdir()) == []
