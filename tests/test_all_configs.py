"""Every config under configs/ loads, builds its model, trains one step
(backward and its own optimizer) and predicts on tiny CPU inputs.

configs/refinenet/ and configs/frrn/ are covered (with more specific checks)
by tests/test_refinenet_configs.py and tests/test_frrn_configs.py, which
glob their folders; this file covers every other folder (configs/camvid/,
configs/quickstart/, ...), checks that the CamVid configs share one set-up,
and builds the trimap evaluators."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.model import revert_sync_batchnorm

from mmseg.registry import METRICS, MODELS
from mmseg.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO, 'configs')
ALL_CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(p, CONFIG_DIR).split(osp.sep))
# folders whose configs the dedicated test files glob and build
COVERED_ELSEWHERE = ('refinenet', 'frrn')
CONFIGS = [
    p for p in ALL_CONFIGS
    if osp.relpath(p, CONFIG_DIR).split(osp.sep)[0] not in COVERED_ELSEWHERE
]
CAMVID = sorted(glob.glob(osp.join(CONFIG_DIR, 'camvid', '*.py')))
TRIMAP = sorted(glob.glob(osp.join(CONFIG_DIR, '*', '*_trimap.py')))

register_all_modules()
import mmseg_refinenet  # noqa: E402,F401  (as custom_imports does)


def _rel(path):
    return osp.relpath(path, CONFIG_DIR)


def test_configs_found():
    folders = {_rel(p).split(osp.sep)[0] for p in ALL_CONFIGS}
    assert {'refinenet', 'frrn', 'camvid', 'quickstart'} <= folders
    names = {osp.basename(p) for p in CAMVID}
    assert names == {
        'refinenet_r50_1xb8-20k_camvid-360x480.py',
        'frrn-a_1xb8-20k_camvid-360x480.py',
        'fcn_r50-d8_1xb8-20k_camvid-360x480.py',
        'deeplabv3_r50-d8_1xb8-20k_camvid-360x480.py',
        'unet-s5-d16_fcn_1xb8-20k_camvid-360x480.py',
    }
    assert {_rel(p) for p in TRIMAP} == {
        'frrn/frrn-a_1xb3-45k_cityscapes-256x512_trimap.py',
        'frrn/frrn-b_1xb3-45k_cityscapes-512x1024_trimap.py',
        'refinenet/refinenet_r101_4xb2-80k_cityscapes-512x1024_trimap.py',
    }


def test_dedicated_files_glob_their_folders():
    """The configs skipped here are picked up by the dedicated files."""
    for folder in COVERED_ELSEWHERE:
        with open(osp.join(REPO, 'tests', f'test_{folder}_configs.py')) as f:
            assert f"osp.join(REPO, 'configs', '{folder}', '*.py')" in f.read()


@pytest.mark.parametrize('path', CONFIGS, ids=_rel)
def test_config_builds_trains_and_predicts(path, seg_samples,
                                           train_one_step):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['mmseg_refinenet']
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    num_classes = model.decode_head.num_classes
    torch.manual_seed(0)
    # 64x96: divisible by 32 (FRRN, UNet and every other model)
    train_one_step(model, cfg.optim_wrapper, torch.randn(2, 3, 64, 96),
                   seg_samples(2, 64, 96, num_classes, void_columns=4))
    model.eval()
    with torch.no_grad():
        preds = model.predict(
            torch.randn(1, 3, 64, 96),
            seg_samples(1, 64, 96, num_classes, void_columns=4))
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 96)
    assert preds[0].seg_logits.data.shape == (num_classes, 64, 96)


def _setup(cfg):
    """Everything of a config but the model."""
    d = cfg.to_dict()
    for key in ('model', 'norm_cfg', 'data_preprocessor', 'custom_imports'):
        d.pop(key, None)
    return d


def test_camvid_configs_share_one_setup():
    cfgs = [Config.fromfile(p) for p in CAMVID]
    ref = _setup(cfgs[0])
    assert ref['train_cfg']['max_iters'] == 20000
    assert ref['train_dataloader']['batch_size'] == 8
    assert ref['train_dataloader']['dataset']['type'] == 'CamVidDataset'
    assert ref['crop_size'] == (360, 480)
    assert ref['default_hooks']['checkpoint']['interval'] == 1000
    for path, cfg in zip(CAMVID, cfgs):
        assert _setup(cfg) == ref, path
        assert cfg.custom_imports['imports'] == ['mmseg_refinenet']
        pre = cfg.model.data_preprocessor
        assert pre.size_divisor == 32 and pre.test_cfg.size_divisor == 32
        assert pre.get('size') is None
        assert cfg.model.test_cfg.mode == 'whole'
        # from scratch: no pre-trained weights anywhere
        assert 'Pretrained' not in repr(cfg.model.to_dict()), path
        assert cfg.model.get('pretrained') is None, path
        assert cfg.model.decode_head.num_classes == 11
        if cfg.model.decode_head.type == 'RefineNetHead':
            # from scratch on AdamW the paper's un-normalised head diverges
            # (docs/results/camvid.md, CPU pilot)
            assert cfg.model.decode_head.norm_cfg['type'] == 'SyncBN'
        if 'auxiliary_head' in cfg.model:
            assert cfg.model.auxiliary_head.num_classes == 11


@pytest.mark.parametrize('path', TRIMAP, ids=_rel)
def test_trimap_evaluator_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['mmseg_refinenet']
    assert isinstance(cfg.test_evaluator, list)
    metrics = [METRICS.build(m) for m in cfg.test_evaluator]
    assert [type(m).__name__ for m in metrics] == [
        'IoUMetric', 'TrimapIoUMetric'
    ]
    trimap = metrics[1]
    assert trimap.radii == (1, 2, 4, 8, 16, 32, 64, 80)
    assert len(trimap.category_map) == 19 and len(trimap.category_names) == 7
    # the validation during training stays the plain mIoU
    assert cfg.val_evaluator.type == 'IoUMetric'
    # and the evaluator of the config scores a Cityscapes-like prediction
    evaluator = Evaluator(metrics)
    evaluator.dataset_meta = dict(classes=tuple(f'c{i}' for i in range(19)))
    label = torch.zeros(1, 32, 32, dtype=torch.long)
    label[:, :, 16:] = 13
    evaluator.process([
        dict(pred_sem_seg=dict(data=label.clone()),
             gt_sem_seg=dict(data=label))
    ])
    res = evaluator.evaluate(1)
    assert res['mIoU'] == 100.0
    assert res['mIoU@r1'] == 100.0 and res['catIoU@r80'] == 100.0
