"""Every RefineNet config loads, builds, trains one step (backward and its
own optimizer) and predicts on small images on the CPU."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'refinenet', '*.py')))

register_all_modules()


def test_all_variants_have_configs():
    names = [osp.basename(c) for c in CONFIGS]
    for variant in ('refinenet', 'refinenet-2cascade', 'refinenet-single',
                    'refinenet-2scale', 'refinenet-nocrp', 'lw-refinenet'):
        for depth in (50, 101, 152):
            assert any(n.startswith(f'{variant}_r{depth}_') for n in names)
    for dataset in ('voc12aug', 'cityscapes', 'pascal-context-60', 'ade20k'):
        assert any(f'_{dataset}-' in n for n in names), dataset


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_trains_and_predicts(path, seg_samples,
                                           train_one_step):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['mmseg_refinenet']
    assert cfg.tta_model.type == 'SegTTAModel' and cfg.tta_pipeline
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    num_classes = model.decode_head.num_classes
    torch.manual_seed(0)
    losses = train_one_step(
        model, cfg.optim_wrapper, torch.randn(2, 3, 64, 64),
        seg_samples(2, 64, 64, num_classes))
    assert torch.isfinite(losses['decode.loss_ce'])
    model.eval()
    with torch.no_grad():
        preds = model.predict(
            torch.randn(1, 3, 64, 80), seg_samples(1, 64, 80, num_classes))
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 80)
    assert preds[0].seg_logits.data.shape == (num_classes, 64, 80)
