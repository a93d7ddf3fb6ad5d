"""What a user does with the plugin outside this repository.

* Fine-tuning on one's own data (README, "Fine-tuning on your own data"):
  the worked config of ``configs/examples/`` is copied into a folder outside
  the repository with its base given as an absolute path, and trained a few
  iterations with ``tools/train.py`` on generated images in MMSeg's
  ``img_dir``/``ann_dir`` layout, starting from a checkpoint in the
  converter's format with the released model's 21 classes.
* MMSeg's Python API (README, "Python API"): ``init_model``,
  ``inference_model`` and ``MMSegInferencer`` of ``mmseg.apis`` with a
  plugin config and a checkpoint written by ``tools/train.py``.
"""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmseg_refinenet.converters import save_mmengine_checkpoint
from mmseg_refinenet.datasets import (SYNTHETIC_METAINFO,
                                      generate_synthetic_dataset)
from mmseg_refinenet.utils import load_local_checkpoint

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'tools', 'train.py')
EXAMPLE = osp.join(REPO, 'configs', 'examples',
                   'lw-refinenet_r50-voc12-pre_1xb8-4k_mydataset-512x512.py')
EXAMPLE_BASE = "'../refinenet/"
QUICKSTART = osp.join(REPO, 'configs', 'quickstart',
                      'refinenet_r18_1xb8-300it_synthetic-64x64.py')
TIMEOUT = 300  # s, for one training


def train(config, cwd, *args):
    """``tools/train.py config *args`` in ``cwd``; fails with its output."""
    proc = subprocess.run([sys.executable, TRAIN, config, *args],
                          cwd=cwd,
                          env=dict(os.environ, OMP_NUM_THREADS='2'),
                          capture_output=True,
                          text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, (f'training failed ({proc.returncode}):\n'
                                  f'{proc.stdout[-3000:]}\n'
                                  f'{proc.stderr[-3000:]}')
    return proc.stdout


def logged_losses(work_dir):
    """{iteration: loss} that the run in ``work_dir`` logged."""
    scalars, = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    return {r['step']: r['loss'] for r in records if 'loss' in r}


def test_mmengine_refuses_a_plugin_scope(tmp_path):
    """Why the example inherits by file path (README): MMEngine resolves
    `package::` bases only for the OpenMMLab packages it lists."""
    config = tmp_path / 'scoped.py'
    config.write_text(
        "_base_ = ['mmseg_refinenet::quickstart/"
        "refinenet_r18_1xb8-300it_synthetic-64x64.py']\n")
    with pytest.raises(AssertionError,
                       match='mmengine does not support to load '
                       'mmseg_refinenet config'):
        Config.fromfile(str(config))


def _user_dataset(root):
    """Generated images as a user's data: JPEG images, PNG labels."""
    generate_synthetic_dataset(root, num_train=4, num_val=2, size=(64, 64))
    for png in glob.glob(osp.join(root, 'img_dir', '*', '*.png')):
        cv2.imwrite(png[:-4] + '.jpg', cv2.imread(png))
        os.remove(png)
    return root


def _released_checkpoint(path, base):
    """A checkpoint as the converter writes it for the released model (21
    classes): here the example's base model with its initial weights."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(base)
    torch.manual_seed(1)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    assert model.decode_head.num_classes == 21
    os.makedirs(osp.dirname(path))
    save_mmengine_checkpoint(
        model.state_dict(),
        dict(converter='tools/model_converters/refinenet2mmseg.py',
             num_classes=21), path)
    return model.state_dict()


@pytest.mark.slow  # a ResNet-50 trained, checkpoints of 100-300 MB
def test_finetune_example_outside_the_repository(tmp_path,
                                                 short_schedule_options):
    # the user's folder: the example copied, its base an absolute path
    with open(EXAMPLE) as f:
        text = f.read()
    assert text.count(EXAMPLE_BASE) == 1
    base_dir = osp.join(REPO, 'configs', 'refinenet')
    config = tmp_path / 'my_config.py'
    text = text.replace(EXAMPLE_BASE, f"'{base_dir}{os.sep}")
    config.write_text(text)
    base = re.search(r"^_base_ = \[\s*'([^']+)'", text, re.M).group(1)
    assert osp.isabs(base) and osp.isfile(base)
    cfg = Config.fromfile(str(config))
    classes = cfg.train_dataloader.dataset.metainfo['classes']
    assert cfg.model.decode_head.num_classes == len(classes) == 5

    # the converted weights where load_from expects them (relative to the
    # folder training starts in), the data anywhere
    released = _released_checkpoint(str(tmp_path / cfg.load_from), base)
    data_root = _user_dataset(str(tmp_path / 'elsewhere' / 'my_data'))
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    out = train(
        'my_config.py', str(tmp_path), '--work-dir', 'work', '--cfg-options',
        *short_schedule_options(data_root, 2, 2),
        *(f'{loader}.{key}' for loader in loaders
          for key in ('num_workers=0', 'persistent_workers=False')),
        # 64x64 images: the crop and the resizes cut to their size
        'model.data_preprocessor.size=(64,64)',
        'train_dataloader.dataset.pipeline.2.scale=(256,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(256,64)',
        # small steps: the weights stay close to the loaded ones
        'optim_wrapper.optimizer.lr=1e-5')

    # load_from took every layer but the classifier, which has 5 outputs now
    assert f'Load checkpoint from {cfg.load_from}' in out
    assert 'size mismatch for decode_head.conv_seg.weight' in out
    assert 'Iter(train) [2/2]' in out and 'mIoU' in out
    losses = logged_losses(str(tmp_path / 'work'))
    assert sorted(losses) == [1, 2]
    assert all(np.isfinite(v) for v in losses.values()), losses

    ckpt = load_local_checkpoint(str(tmp_path / 'work' / 'iter_2.pth'))
    assert ckpt['meta']['dataset_meta']['classes'] == classes
    state = ckpt['state_dict']
    classifier = state['decode_head.conv_seg.weight']
    assert classifier.shape[0] == 5
    assert released['decode_head.conv_seg.weight'].shape[0] == 21
    assert not torch.allclose(classifier,
                              released['decode_head.conv_seg.weight'][:5])
    # every other conv started from the loaded weights (an independent
    # initialisation would differ by about as much as the weights are
    # long) and took optimizer steps
    convs = [
        k for k, v in released.items()
        if v.dim() == 4 and v.any() and k != 'decode_head.conv_seg.weight'
    ]
    assert len(convs) > 50
    changes = {
        key: float((state[key] - released[key]).norm() / released[key].norm())
        for key in convs
    }
    assert 0 < min(changes.values()) and max(changes.values()) < 0.05, \
        changes


@pytest.fixture(scope='module')
def trained_quickstart(tmp_path_factory, synthetic_data_root,
                       short_schedule_options):
    """The quick-start config trained 1 iteration by tools/train.py: the
    config and its checkpoint (with the message hub, the random states and
    the dataset meta, as every checkpoint of a run; without the optimizer
    state, to keep it small)."""
    cwd = tmp_path_factory.mktemp('api')
    train(QUICKSTART, str(cwd), '--work-dir', 'work', '--cfg-options',
          *short_schedule_options(synthetic_data_root, 1, 1, 10),
          'default_hooks.checkpoint.save_optimizer=False')
    return dict(config=QUICKSTART,
                checkpoint=str(cwd / 'work' / 'iter_1.pth'),
                images=sorted(
                    glob.glob(
                        osp.join(synthetic_data_root, 'img_dir', 'val',
                                 '*.png'))))


def _assert_prediction(result, size=(64, 64)):
    num_classes = len(SYNTHETIC_METAINFO['classes'])
    labels = result.pred_sem_seg.data
    logits = result.seg_logits.data
    assert labels.shape == (1, *size)
    assert logits.shape == (num_classes, *size)
    assert torch.equal(labels[0], logits.argmax(0))
    return labels[0]


def test_init_model_and_inference_model(trained_quickstart):
    from mmseg.apis import inference_model, init_model
    model = init_model(trained_quickstart['config'],
                       trained_quickstart['checkpoint'],
                       device='cpu')
    assert not model.training
    assert model.dataset_meta['classes'] == SYNTHETIC_METAINFO['classes']
    assert model.dataset_meta['palette'] == SYNTHETIC_METAINFO['palette']
    saved = load_local_checkpoint(trained_quickstart['checkpoint'])
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved['state_dict'][key]), key

    images = trained_quickstart['images']
    from_file = _assert_prediction(inference_model(model, images[0]))
    # a batch of loaded (BGR) images; MMSeg 1.2.2 switches the model's
    # pipeline to arrays here, so files must come first
    batch = inference_model(model, [cv2.imread(p) for p in images[:2]])
    assert isinstance(batch, list) and len(batch) == 2
    assert torch.equal(_assert_prediction(batch[0]), from_file)
    _assert_prediction(batch[1])


def test_mmseg_inferencer(trained_quickstart, tmp_path):
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(model=trained_quickstart['config'],
                                 weights=trained_quickstart['checkpoint'],
                                 device='cpu')
    assert inferencer.model.dataset_meta == dict(
        classes=SYNTHETIC_METAINFO['classes'],
        palette=SYNTHETIC_METAINFO['palette'])
    images = trained_quickstart['images'][:2]
    result = inferencer(images, out_dir=str(tmp_path / 'out'),
                        return_vis=True)
    assert len(result['predictions']) == len(result['visualization']) == 2
    for pred, vis in zip(result['predictions'], result['visualization']):
        assert pred.shape == (64, 64)
        assert set(np.unique(pred)) <= set(range(4))
        assert vis.shape == (64, 64, 3) and vis.dtype == np.uint8
    assert sorted(os.listdir(tmp_path / 'out' / 'vis')) == [
        osp.basename(p) for p in images
    ]
    written = sorted(os.listdir(tmp_path / 'out' / 'pred'))
    assert written == ['00000000_pred.png', '00000001_pred.png']
    first = cv2.imread(str(tmp_path / 'out' / 'pred' / written[0]),
                       cv2.IMREAD_UNCHANGED)
    assert np.array_equal(first, result['predictions'][0])
    # the same prediction as the model's own test step
    samples = inferencer(images[0], return_datasamples=True)
    assert np.array_equal(_assert_prediction(samples).numpy(),
                          result['predictions'][0])
