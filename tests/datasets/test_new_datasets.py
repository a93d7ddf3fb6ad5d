"""NYUDv2, SUN RGB-D, PASCAL-Person-Part and CamVid dataset classes.

Each class loads a tiny folder in the layout its converter writes
(``img_dir/<split>``, ``ann_dir/<split>``, same stems); CamVid also loads
the real SegNet copy, converted on the fly.
"""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

import mmseg_refinenet  # noqa: F401
from mmseg.registry import DATASETS
from mmseg.utils import register_all_modules
from mmseg_refinenet.datasets import (CamVidDataset, NYUDv2Dataset,
                                      PascalPersonPartDataset, SUNRGBDDataset)

register_all_modules()

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]
H, W = 8, 10

# type, class, number of classes, image suffix, split folders, first class
CASES = [
    ('NYUDv2Dataset', NYUDv2Dataset, 40, '.png', ('train', 'test'), 'wall'),
    ('SUNRGBDDataset', SUNRGBDDataset, 37, '.jpg', ('train', 'test'),
     'wall'),
    ('PascalPersonPartDataset', PascalPersonPartDataset, 7, '.jpg',
     ('train', 'test'), 'background'),
    ('CamVidDataset', CamVidDataset, 11, '.png', ('train', 'val', 'test'),
     'Sky'),
]


def write_layout(root, num_classes, img_suffix, splits):
    """Two frames per split; pixel (0, 0) void (255), the rest classes."""
    rng = np.random.default_rng(0)
    for k, split in enumerate(splits):
        os.makedirs(osp.join(root, 'img_dir', split))
        os.makedirs(osp.join(root, 'ann_dir', split))
        for i in range(2 + k):
            stem = f'{i + 1:04d}'
            img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
            Image.fromarray(img).save(
                osp.join(root, 'img_dir', split, stem + img_suffix))
            label = (np.arange(H * W).reshape(H, W) % num_classes).astype(
                np.uint8)
            label[0, 0] = 255
            Image.fromarray(label).save(
                osp.join(root, 'ann_dir', split, stem + '.png'))


@pytest.mark.parametrize('type_name,cls,num_classes,img_suffix,splits,first',
                         CASES)
def test_dataset_loads_converted_layout(tmp_path, type_name, cls, num_classes,
                                        img_suffix, splits, first):
    assert DATASETS.get(type_name) is cls
    assert len(cls.METAINFO['classes']) == num_classes
    assert cls.METAINFO['classes'][0] == first
    assert len(cls.METAINFO['palette']) == num_classes
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c)
               for c in cls.METAINFO['palette'])
    write_layout(str(tmp_path), num_classes, img_suffix, splits)
    for k, split in enumerate(splits):
        dataset = DATASETS.build(
            dict(
                type=type_name,
                data_root=str(tmp_path),
                data_prefix=dict(
                    img_path=f'img_dir/{split}',
                    seg_map_path=f'ann_dir/{split}'),
                pipeline=PIPELINE))
        assert len(dataset) == 2 + k
        assert dataset.reduce_zero_label is False
        assert dataset.ignore_index == 255
        assert dataset.metainfo['classes'] == cls.METAINFO['classes']
        assert dataset.img_suffix == img_suffix
        assert dataset.seg_map_suffix == '.png'
        sample = dataset[0]
        seg = sample['gt_seg_map']
        assert sample['img'].shape == (H, W, 3)
        assert seg.shape == (H, W)
        assert seg[0, 0] == 255  # void reads as the ignore index
        assert seg[0, 1] == 1 and seg.max() == 255
        # class 0 is a real class, not reduced to the ignore index
        assert seg.flat[num_classes] == 0


@pytest.mark.camvid
def test_camvid_real_copy(tmp_path_factory, camvid_root, repo_root,
                          load_script):
    out = str(tmp_path_factory.mktemp('camvid') / 'camvid')
    converter = load_script(
        osp.join(repo_root, 'tools', 'dataset_converters', 'camvid.py'))
    counts = converter.convert_camvid(camvid_root, out)
    assert counts == dict(train=367, val=101, test=233)
    for split, num in counts.items():
        dataset = DATASETS.build(
            dict(
                type='CamVidDataset',
                data_root=out,
                data_prefix=dict(
                    img_path=f'img_dir/{split}',
                    seg_map_path=f'ann_dir/{split}'),
                pipeline=PIPELINE))
        assert len(dataset) == num
    # void pixels (11 in SegNet's files) read as the ignore index 255
    for index in range(len(dataset)):
        stem = osp.splitext(
            osp.basename(dataset.get_data_info(index)['img_path']))[0]
        source = np.array(
            Image.open(osp.join(camvid_root, 'testannot', stem + '.png')))
        if (source == 11).any():
            break
    seg = dataset[index]['gt_seg_map']
    assert seg.shape == (360, 480)
    assert (seg == 255).any()
    np.testing.assert_array_equal(seg, np.where(source == 11, 255, source))
    assert set(np.unique(seg).tolist()) <= set(range(11)) | {255}
