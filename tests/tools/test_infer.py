"""tools/infer.py, run as a user would, on an untrained quick-start model.

The checkpoint is the freshly initialised RefineNet of the quick-start config
saved with class names and palette, so no training is needed: the tool's class
maps are compared with :func:`mmseg.apis.inference_model` on the same model.
Every run starts from a directory outside the repository, in a subprocess,
except the wrong arguments: those run the script's ``main`` in the test
process (one of them also as a subprocess).
"""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mmseg_refinenet.datasets import generate_synthetic_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INFER = osp.join(REPO, 'tools', 'infer.py')
CONFIG = osp.join(REPO, 'configs', 'quickstart',
                  'refinenet_r18_1xb8-300it_synthetic-64x64.py')
CLASSES = ('background', 'disc', 'box', 'bar')
PALETTE = [[0, 0, 0], [220, 20, 60], [0, 142, 70], [250, 170, 30]]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    import mmseg
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import mmseg_refinenet  # noqa: F401
    assert mmseg.__version__
    register_all_modules()
    root = tmp_path_factory.mktemp('infer')
    data = generate_synthetic_dataset(
        str(root / 'data'), num_train=4, num_val=2, size=(64, 64))
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    ckpt = str(root / 'refinenet.pth')
    torch.save(
        {
            'meta': {
                'dataset_meta': {
                    'classes': CLASSES,
                    'palette': PALETTE
                }
            },
            'state_dict': model.state_dict()
        }, ckpt)
    return dict(root=root, images=osp.join(data, 'img_dir', 'val'), ckpt=ckpt)


def infer(args, cwd):
    return subprocess.run([sys.executable, INFER, *args],
                          cwd=cwd,
                          capture_output=True,
                          text=True,
                          timeout=120)


def reference_predictions(ckpt, images):
    from mmseg.apis import inference_model, init_model
    model = init_model(CONFIG, ckpt, device='cpu')
    results = inference_model(model, images)
    return [r.pred_sem_seg.data[0].numpy() for r in results]


def assert_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert 'Traceback' not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: '), proc.stderr
    for word in words:
        assert word in last, proc.stderr


def test_single_image_and_folder(setup, tmp_path):
    images = setup['images']
    names = sorted(os.listdir(images))
    first = osp.join(images, names[0])
    out = tmp_path / 'single'
    proc = infer([
        first, '--config', CONFIG, '--checkpoint', setup['ckpt'],
        '--out-dir', str(out), '--device', 'cpu'
    ], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stem = osp.splitext(names[0])[0]
    assert sorted(os.listdir(out)) == sorted(
        ['legend.png', f'{stem}_classes.png', f'{stem}_overlay.png'])

    out = tmp_path / 'folder'
    proc = infer([
        images, '--config', CONFIG, '--checkpoint', setup['ckpt'],
        '--out-dir', str(out), '--opacity', '0.7'
    ], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    legend = cv2.imread(str(out / 'legend.png'))
    assert legend is not None and legend.shape[0] >= 4 * 18
    expected = reference_predictions(
        setup['ckpt'], [osp.join(images, name) for name in names])
    for name, reference in zip(names, expected):
        stem = osp.splitext(name)[0]
        img = cv2.imread(osp.join(images, name))
        classes = cv2.imread(
            str(out / f'{stem}_classes.png'), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(out / f'{stem}_overlay.png'))
        assert classes.dtype == np.uint8 and classes.ndim == 2
        assert classes.shape == img.shape[:2]
        assert overlay.shape == img.shape
        assert classes.max() <= 3
        np.testing.assert_array_equal(classes, reference)
        colour = np.array(PALETTE, np.float32)[:, ::-1][classes]
        blend = np.round(0.3 * img + 0.7 * colour)
        np.testing.assert_allclose(overlay, blend, atol=1)
    assert not [n for n in os.listdir(out) if n.endswith('.tmp')]


def test_wrong_arguments(setup, tmp_path, run_script_main):
    # main() in this process: a subprocess per case imports torch and MMSeg
    def infer(args, cwd):
        return run_script_main(INFER, *args, cwd=cwd)

    images = setup['images']
    first = osp.join(images, sorted(os.listdir(images))[0])
    out = tmp_path / 'out'
    base = ['--out-dir', str(out)]

    proc = infer([first, '--config', 'nope.py', '--checkpoint',
                  setup['ckpt'], *base], cwd=tmp_path)
    assert_error(proc, 'nope.py', 'config')

    proc = infer([first, '--config', CONFIG, '--checkpoint', 'nope.pth',
                  *base], cwd=tmp_path)
    assert_error(proc, 'nope.pth', 'checkpoint')

    other = str(tmp_path / 'other.pth')
    torch.save({'state_dict': torch.nn.Linear(3, 2).state_dict()}, other)
    proc = infer([first, '--config', CONFIG, '--checkpoint', other, *base],
                 cwd=tmp_path)
    assert_error(proc, 'other.pth', 'does not fit')

    garbage = str(tmp_path / 'garbage.pth')
    with open(garbage, 'wb') as f:
        f.write(b'not a checkpoint')
    proc = infer([first, '--config', CONFIG, '--checkpoint', garbage,
                  *base], cwd=tmp_path)
    assert_error(proc, 'garbage.pth')

    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    for name in sorted(os.listdir(images)):
        with open(osp.join(images, name), 'rb') as f:
            (mixed / name).write_bytes(f.read())
    (mixed / 'zz_broken.png').write_bytes(b'\x89PNG\r\n\x1a\n broken')
    proc = infer([str(mixed), '--config', CONFIG, '--checkpoint',
                  setup['ckpt'], *base], cwd=tmp_path)
    assert_error(proc, 'zz_broken.png', 'image')

    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no images here')
    proc = infer([str(empty), '--config', CONFIG, '--checkpoint',
                  setup['ckpt'], *base], cwd=tmp_path)
    assert_error(proc, 'empty', 'no image files')

    assert not out.exists()


def test_wrong_arguments_command_line(setup, tmp_path):
    """One case as a user runs it: the script's exit status and stderr."""
    images = setup['images']
    first = osp.join(images, sorted(os.listdir(images))[0])
    out = tmp_path / 'out'
    proc = infer([first, '--config', 'nope.py', '--checkpoint',
                  setup['ckpt'], '--out-dir', str(out)], cwd=tmp_path)
    assert_error(proc, 'nope.py', 'config')
    assert not out.exists()
