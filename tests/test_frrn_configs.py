"""Every FRRN config loads, builds and runs a training step (backward and
its own optimizer) and a test step."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.structures import PixelData

from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'frrn', '*.py')))
BASES = sorted(
    glob.glob(osp.join(REPO, 'configs', '_base_', 'models', 'frrn*.py')))


def test_configs_found():
    names = [osp.basename(c) for c in CONFIGS]
    assert 'frrn-a_1xb3-45k_cityscapes-256x512.py' in names
    assert 'frrn-resnet-baseline_1xb3-45k_cityscapes-256x512.py' in names
    assert any(n.startswith('frrn-b_1xb3-') and n.endswith(
        'cityscapes-512x1024.py') for n in names)
    assert len(BASES) == 3


@pytest.mark.parametrize('path', CONFIGS + BASES, ids=osp.basename)
def test_custom_imports(path):
    with open(path) as f:
        assert "custom_imports = dict(imports=['mmseg_refinenet'], " \
            'allow_failed_imports=False)' in f.read()


def make_batch(h, w, ori_shape):
    inputs = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8)]
    label = torch.randint(0, 19, (1, h, w))
    label[:, :4] = 255
    meta = dict(img_shape=(h, w), ori_shape=ori_shape, pad_shape=(h, w))
    sample = SegDataSample(
        gt_sem_seg=PixelData(data=label), metainfo=meta)
    return dict(inputs=inputs, data_samples=[sample])


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_trains_and_predicts(path, train_one_step):
    register_all_modules()
    cfg = Config.fromfile(path)
    import mmseg_refinenet  # noqa: F401  (as custom_imports does)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    divisor = cfg.model.data_preprocessor.size_divisor
    assert divisor == model.backbone.size_divisor
    assert cfg.model.data_preprocessor.test_cfg.size_divisor == divisor
    for t in cfg.train_pipeline + cfg.test_pipeline:
        TRANSFORMS.build(t)
    types = [t['type'] for t in cfg.train_pipeline]
    assert 'RandomTranslate' in types and 'RandomGamma' in types
    test_types = [t['type'] for t in cfg.test_dataloader.dataset.pipeline]
    # labels loaded after Resize: evaluated at the full label resolution
    assert test_types.index('LoadAnnotations') > test_types.index('Resize')
    assert cfg.train_dataloader.batch_size == 3
    assert cfg.optim_wrapper.optimizer.type == 'Adam'
    if '-released_' in osp.basename(path):
        # fine-tuning from the official weights at the final paper lr
        assert cfg.load_from.startswith('checkpoints/released/')
        assert cfg.optim_wrapper.optimizer.lr == 1e-4
        assert cfg.train_cfg.max_iters == 10000
    else:
        assert cfg.optim_wrapper.optimizer.lr == 1e-3
        assert cfg.param_scheduler[0].milestones == [35000]
        assert cfg.train_cfg.max_iters == 45000

    # training step on a tiny input, 60x120 padded to the divisor
    data = model.data_preprocessor(make_batch(60, 120, (60, 120)), True)
    assert data['inputs'].shape[-2] % divisor == 0
    losses = train_one_step(model, cfg.optim_wrapper, **data)
    assert torch.isfinite(losses['decode.loss_boot_ce'])

    # prediction: upsampled to ori_shape (here 2x the network input)
    model.eval()
    data = model.data_preprocessor(make_batch(64, 128, (128, 256)), False)
    with torch.no_grad():
        out = model.predict(**data)
    assert out[0].pred_sem_seg.data.shape == (1, 128, 256)
    assert out[0].seg_logits.data.shape == (19, 128, 256)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_tta_scales_the_network_input(path, tmp_path):
    """--tta views are the config's network input (test_pipeline's Resize)
    times each ratio, flipped or not, with labels at full resolution; not
    the full 1024x2048 image times the ratio (MMSeg's Cityscapes TTA)."""
    import numpy as np
    from mmcv.transforms import Compose
    from PIL import Image
    register_all_modules()
    import mmseg_refinenet  # noqa: F401
    cfg = Config.fromfile(path)
    w, h = next(t['scale'] for t in cfg.test_pipeline
                if t['type'] == 'Resize')
    img, seg = tmp_path / 'img.png', tmp_path / 'seg.png'
    Image.fromarray(np.zeros((1024, 2048, 3), np.uint8)).save(img)
    Image.fromarray(np.zeros((1024, 2048), np.uint8)).save(seg)
    out = Compose(cfg.tta_pipeline)(dict(
        img_path=str(img), seg_map_path=str(seg), reduce_zero_label=False,
        seg_fields=[]))
    ratios = cfg.img_ratios
    shapes = [tuple(x.shape[-2:]) for x in out['inputs']]
    assert shapes == [(int(h * r), int(w * r)) for r in ratios
                      for _ in range(2)]
    assert 1.0 in ratios and (h, w) in shapes
    flips = [s.flip for s in out['data_samples']]
    assert flips == [False, True] * len(ratios)
    assert all(s.gt_sem_seg.data.shape[-2:] == (1024, 2048)
               for s in out['data_samples'])
