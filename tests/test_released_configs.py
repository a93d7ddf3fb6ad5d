"""The ``*-released_*`` configs start from converted published weights.

Each one names its converted checkpoint in ``load_from`` and builds exactly
the architecture the converter writes: every key and shape of the model
equals the converter's output for the matching published model, so
``load_from`` loads every tensor (nothing random is left, nothing is
skipped). The RefineNet side compares against the published layout
(``official_refinenet_shapes`` / ``official_lw_mobilenet_v2_shapes``,
mapped with ``official_to_mmseg_key`` / its MobileNetV2 twin); the FRRN
side converts random arrays laid out as the official ``.npz``.
"""
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from mmseg.registry import DATASETS, MODELS
from mmseg.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RELEASED = sorted(
    glob.glob(osp.join(REPO, 'configs', '*', '*-released_*.py')))

register_all_modules()
import mmseg_refinenet  # noqa: E402,F401  (as custom_imports does)
from mmseg_refinenet.converters.frrn import (  # noqa: E402
    convert_frrn_lasagne_params, frrn_lasagne_layout)
from mmseg_refinenet.converters.refinenet import (  # noqa: E402
    official_buffers, official_lw_mobilenet_v2_shapes,
    official_lw_mobilenet_v2_to_mmseg_key, official_refinenet_shapes,
    official_to_mmseg_key)


def build(cfg):
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def model_shapes(model):
    return {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }


def test_released_configs_found():
    names = sorted(osp.basename(p) for p in RELEASED)
    # every model of DrSleep/refinenet-pytorch (RefineNet-101 VOC),
    # DrSleep/light-weight-refinenet (LW-50: VOC, NYUDv2, Person-Part;
    # LW-101 and LW-152: also PASCAL-Context; LW-MobileNetV2: VOC) and
    # TobyPDE/FRRN (A and B, Cityscapes)
    assert names == [
        'frrn-a-released_1xb3-10k_cityscapes-256x512.py',
        'frrn-b-released_1xb3-10k_cityscapes-512x1024.py',
        'lw-refinenet_mobilenet-v2-released_4xb4-20k_voc12aug-512x512.py',
        'lw-refinenet_r101-released_4xb4-10k_nyudv2-40-480x480.py',
        'lw-refinenet_r101-released_4xb4-10k_pascal-person-part-512x512.py',
        'lw-refinenet_r101-released_4xb4-20k_voc12aug-512x512.py',
        'lw-refinenet_r101-released_4xb4-40k_pascal-context-60-480x480.py',
        'lw-refinenet_r152-released_4xb4-10k_nyudv2-40-480x480.py',
        'lw-refinenet_r152-released_4xb4-10k_pascal-person-part-512x512.py',
        'lw-refinenet_r152-released_4xb4-20k_voc12aug-512x512.py',
        'lw-refinenet_r152-released_4xb4-40k_pascal-context-60-480x480.py',
        'lw-refinenet_r50-released_4xb4-10k_nyudv2-40-480x480.py',
        'lw-refinenet_r50-released_4xb4-10k_pascal-person-part-512x512.py',
        'lw-refinenet_r50-released_4xb4-20k_voc12aug-512x512.py',
        'refinenet_r101-released_4xb4-20k_voc12aug-512x512.py',
    ]


@pytest.mark.parametrize('path', RELEASED, ids=osp.basename)
def test_load_from_and_no_imagenet_init(path):
    cfg = Config.fromfile(path)
    stem = osp.basename(path).split('-released')[0]
    assert cfg.load_from.startswith('checkpoints/released/' + stem)
    # the converted checkpoint replaces every weight: no download at init
    assert cfg.model.backbone.get('init_cfg') is None
    # the comment at the top says how to make the file
    with open(path) as f:
        assert 'tools/model_converters/' in f.read()


@pytest.mark.parametrize(
    'path', [p for p in RELEASED if 'refinenet' in osp.basename(p)],
    ids=osp.basename)
def test_refinenet_config_is_the_published_layout(path):
    cfg = Config.fromfile(path)
    assert cfg.model.decode_head.align_corners is True  # as released
    num_classes = cfg.model.decode_head.num_classes
    if 'mobilenet-v2' in osp.basename(path):
        assert cfg.model.backbone.type == 'ExpandedMobileNetV2'
        published = official_lw_mobilenet_v2_shapes(num_classes)
        to_mmseg = official_lw_mobilenet_v2_to_mmseg_key
    else:
        assert cfg.model.backbone.type == 'ResNet'
        lightweight = osp.basename(path).startswith('lw-')
        published = official_refinenet_shapes(cfg.model.backbone.depth,
                                              num_classes, lightweight)
        to_mmseg = official_to_mmseg_key
    published.update(official_buffers(published)[0])
    expected = {to_mmseg(k): v for k, v in published.items()}
    assert model_shapes(build(cfg)) == expected


@pytest.mark.parametrize(
    'path', [p for p in RELEASED if 'refinenet' in osp.basename(p)],
    ids=osp.basename)
def test_refinenet_classes_match_the_dataset(path):
    """The release's class count is the dataset's, and every split lists
    the classes in the same order (the release's)."""
    cfg = Config.fromfile(path)
    dataset = DATASETS.get(cfg.dataset_type)
    loaders = (cfg.train_dataloader, cfg.val_dataloader,
               cfg.test_dataloader)
    orders = [
        loader.dataset.get('metainfo', {}).get('classes') for loader in loaders
    ]
    assert orders[0] == orders[1] == orders[2]
    classes = orders[0] or dataset.METAINFO['classes']
    assert len(classes) == cfg.model.decode_head.num_classes
    label_map = dataset.get_label_map(classes)
    if label_map is not None:  # a reordering: every label keeps a class
        assert sorted(label_map.values()) == list(range(len(classes)))


def test_pascal_context_release_class_order():
    """DrSleep's Context models order their classes as VOC first (class
    names of its demos/class_info.py), not alphabetically as MMSeg."""
    path = [p for p in RELEASED if 'pascal-context' in p][0]
    cfg = Config.fromfile(path)
    classes = list(cfg.val_dataloader.dataset.metainfo.classes)
    assert classes[:21] == [
        'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle',
        'bus', 'car', 'cat', 'chair', 'cow', 'table', 'dog', 'horse',
        'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
        'tvmonitor'
    ]
    assert classes[-4:] == ['wall', 'water', 'window', 'wood']
    label_map = DATASETS.get(cfg.dataset_type).get_label_map(classes)
    mmseg_order = DATASETS.get(cfg.dataset_type).METAINFO['classes']
    # MMSeg's label of 'table' (50) becomes the release's 11
    assert label_map[mmseg_order.index('table')] == 11
    assert label_map[mmseg_order.index('bicycle')] == 2


@pytest.mark.parametrize(
    'path', [p for p in RELEASED if 'frrn' in osp.basename(p)],
    ids=osp.basename)
def test_frrn_config_loads_a_converted_npz(path):
    cfg = Config.fromfile(path)
    arch = re.match(r'frrn-(\w)-', osp.basename(path))[1].upper()
    num_classes = cfg.model.decode_head.num_classes
    rng = np.random.default_rng(0)
    arrays = []
    for _, kind, shape in frrn_lasagne_layout(arch, num_classes):
        value = rng.standard_normal(shape).astype(np.float32)
        arrays.append(np.abs(value) + 0.5 if kind == 'inv_std' else value)
    state, _ = convert_frrn_lasagne_params(arrays, arch, num_classes)
    # the official code's upsampling of the pooling stream
    assert cfg.model.backbone.upsample_mode == 'theano'
    model = build(cfg)
    assert model.backbone.upsample_mode == 'theano'
    converted = {
        k: tuple(v.shape)
        for k, v in state.items() if not k.endswith('num_batches_tracked')
    }
    assert converted == model_shapes(model)
    model.load_state_dict(state, strict=True)
    # the official input scaling: RGB in [0, 1]
    pre = cfg.model.data_preprocessor
    assert pre.mean == [0., 0., 0.] and pre.std == [255., 255., 255.]
    assert pre.bgr_to_rgb is True
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 128), mode='tensor')
    assert out.shape == (1, num_classes, 64, 128)


@pytest.mark.parametrize(
    'path', [p for p in RELEASED if 'refinenet' in osp.basename(p)],
    ids=osp.basename)
def test_refinenet_released_configs_test_at_the_images_own_size(
        path, tmp_path):
    """As the released models were evaluated (DrSleep's validation feeds
    VOC images as they are), not resized to 2048x512 as MMSeg's VOC
    configs do (a 500x375 image would be upscaled 1.37x)."""
    import numpy as np
    from mmcv.transforms import Compose
    from PIL import Image
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(path)
    img, seg = tmp_path / 'img.jpg', tmp_path / 'seg.png'
    Image.fromarray(np.zeros((375, 500, 3), np.uint8)).save(img)
    Image.fromarray(np.zeros((375, 500), np.uint8)).save(seg)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        out = Compose(loader.dataset.pipeline)(dict(
            img_path=str(img), seg_map_path=str(seg),
            reduce_zero_label=False, seg_fields=[]))
        assert tuple(out['inputs'].shape[-2:]) == (375, 500)
        assert out['data_samples'].gt_sem_seg.data.shape[-2:] == (375, 500)
