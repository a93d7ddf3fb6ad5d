"""Convert PASCAL-Person-Part to MMSegmentation's layout.

Reads the part annotations released with DeepLab (Chen et al., CVPR 2016;
``pascal_person_part.tar.gz``) on top of the PASCAL VOC 2010 images::

    VOC_DIR/JPEGImages/<id>.jpg                   VOC2010 images
    PPP_DIR/pascal_person_part_gt/<id>.png        8-bit label (gray or
                                                  palette PNG): 0 background,
                                                  1 head, 2 torso, 3 upper
                                                  arms, 4 lower arms, 5 upper
                                                  legs, 6 lower legs,
                                                  255 ignored
    PPP_DIR/pascal_person_part_trainval_list/train.txt   1717 frames
    PPP_DIR/pascal_person_part_trainval_list/val.txt     1818 frames

A list line is either a bare id (``2008_000003``, as in ``train_id.txt``)
or DeepLab's ``/JPEGImages/2008_000003.jpg /SegmentationPart/...png``; the
id is the stem of its first word. ``--train-list``, ``--val-list`` and
``--gt-dir`` point elsewhere. Writes::

    OUT/img_dir/{train,test}/<id>.jpg   the VOC JPEG, copied as is
    OUT/ann_dir/{train,test}/<id>.png   0..6, 255 ignored (values kept)

The ``val`` list is the test split. Example::

    python tools/dataset_converters/pascal_person_part.py \
        VOCdevkit/VOC2010 pascal_person_part -o data/pascal_person_part

Nothing is written unless every frame converts: the output is built in a
hidden folder next to ``OUT`` and renamed into place at the end.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from functools import partial
from typing import Dict, List, Optional

import cv2
import numpy as np
from mmengine.utils import track_progress
from PIL import Image

from mmseg_refinenet.datasets.converter_utils import (check_out_dir,
                                                      staged_output)

NUM_CLASSES = 7
IGNORE_INDEX = 255
GT_DIR = 'pascal_person_part_gt'
LIST_DIR = 'pascal_person_part_trainval_list'


def _read_ids(list_file: str) -> List[str]:
    if not osp.isfile(list_file):
        raise FileNotFoundError(f'{list_file} not found')
    with open(list_file) as f:
        ids = [
            osp.splitext(osp.basename(line.split()[0]))[0] for line in f
            if line.strip()
        ]
    if not ids:
        raise ValueError(f'{list_file}: empty list')
    if len(set(ids)) != len(ids):
        raise ValueError(f'{list_file}: repeated ids')
    return ids


def _convert_pair(task, voc_dir: str, gt_dir: str, out_dir: str) -> None:
    frame_id, split = task
    img_file = osp.join(voc_dir, 'JPEGImages', frame_id + '.jpg')
    ann_file = osp.join(gt_dir, frame_id + '.png')
    with Image.open(img_file) as img:
        img_size = img.size
    with Image.open(ann_file) as ann:
        label = np.array(ann)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f'{ann_file}: expected an 8-bit single-channel '
                         '(gray or palette) PNG of part indices, got shape '
                         f'{label.shape} {label.dtype}')
    if label.shape[::-1] != img_size:
        raise ValueError(f'{ann_file}: label size {label.shape[1]}x'
                         f'{label.shape[0]} differs from image {img_file} '
                         f'({img_size[0]}x{img_size[1]})')
    bad = label[(label >= NUM_CLASSES) & (label != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f'{ann_file}: unexpected label value(s) '
                         f'{sorted(set(bad.tolist()))[:5]}, expected '
                         f'0..{NUM_CLASSES - 1} or {IGNORE_INDEX}')
    shutil.copyfile(img_file,
                    osp.join(out_dir, 'img_dir', split, frame_id + '.jpg'))
    out_file = osp.join(out_dir, 'ann_dir', split, frame_id + '.png')
    if not cv2.imwrite(out_file, label):
        raise OSError(f'could not write {out_file}')


def convert_pascal_person_part(voc_dir: str,
                               ppp_dir: str,
                               out_dir: str,
                               overwrite: bool = False,
                               train_list: Optional[str] = None,
                               val_list: Optional[str] = None,
                               gt_dir: Optional[str] = None) -> Dict[str, int]:
    """Convert PASCAL-Person-Part into ``out_dir``.

    Args:
        voc_dir (str): ``VOCdevkit/VOC2010`` (holds ``JPEGImages/``).
        ppp_dir (str): The extracted ``pascal_person_part`` release.
        out_dir (str): Output folder; gets ``img_dir/`` and ``ann_dir/``.
        overwrite (bool): Replace a non-empty ``out_dir``. Default: False.
        train_list (str, optional): Train id list. Default:
            ``ppp_dir/pascal_person_part_trainval_list/train.txt``.
        val_list (str, optional): Test id list. Default:
            ``ppp_dir/pascal_person_part_trainval_list/val.txt``.
        gt_dir (str, optional): Folder of label PNGs. Default:
            ``ppp_dir/pascal_person_part_gt``.

    Returns:
        dict[str, int]: Number of frames written per split.

    Raises:
        FileNotFoundError: A list, image or label file is missing.
        ValueError: Malformed input (label values other than 0..6 and 255,
            image and label sizes differ, an id in both lists) or a
            non-empty ``out_dir`` without ``overwrite``.
    """
    out_dir = osp.abspath(out_dir)
    train_list = train_list or osp.join(ppp_dir, LIST_DIR, 'train.txt')
    val_list = val_list or osp.join(ppp_dir, LIST_DIR, 'val.txt')
    gt_dir = gt_dir or osp.join(ppp_dir, GT_DIR)
    check_out_dir(out_dir, [voc_dir, ppp_dir, gt_dir], overwrite)
    ids = dict(train=_read_ids(train_list), test=_read_ids(val_list))
    shared = set(ids['train']) & set(ids['test'])
    if shared:
        raise ValueError(f'{val_list}: {len(shared)} id(s) also in '
                         f'{train_list}, e.g. {sorted(shared)[0]}')
    for split, split_ids in ids.items():
        for frame_id in split_ids:
            for path in (osp.join(voc_dir, 'JPEGImages', frame_id + '.jpg'),
                         osp.join(gt_dir, frame_id + '.png')):
                if not osp.isfile(path):
                    raise FileNotFoundError(f'{path} not found (id '
                                            f'{frame_id} of the {split} '
                                            'list)')
    with staged_output(out_dir) as tmp:
        for split, split_ids in ids.items():
            print(f'{split}: {len(split_ids)} frames')
            os.makedirs(osp.join(tmp, 'img_dir', split))
            os.makedirs(osp.join(tmp, 'ann_dir', split))
            track_progress(
                partial(_convert_pair,
                        voc_dir=voc_dir,
                        gt_dir=gt_dir,
                        out_dir=tmp), [(i, split) for i in split_ids])
    return {split: len(split_ids) for split, split_ids in ids.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert PASCAL-Person-Part (DeepLab release, 7 classes) '
        'to mmsegmentation format')
    parser.add_argument('voc_dir', help='VOCdevkit/VOC2010 (with JPEGImages/)')
    parser.add_argument('ppp_dir',
                        help='extracted pascal_person_part release (with '
                        f'{GT_DIR}/ and {LIST_DIR}/)')
    parser.add_argument('-o',
                        '--out_dir',
                        default='data/pascal_person_part',
                        help='output path')
    parser.add_argument('--train-list',
                        help='train id list (default: '
                        f'PPP_DIR/{LIST_DIR}/train.txt)')
    parser.add_argument('--val-list',
                        help='test id list (default: '
                        f'PPP_DIR/{LIST_DIR}/val.txt)')
    parser.add_argument('--gt-dir',
                        help=f'label PNG folder (default: PPP_DIR/{GT_DIR})')
    parser.add_argument('--overwrite',
                        action='store_true',
                        help='replace the output folder if it is not empty')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        counts = convert_pascal_person_part(args.voc_dir, args.ppp_dir,
                                            args.out_dir, args.overwrite,
                                            args.train_list, args.val_list,
                                            args.gt_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'Done: {counts} -> {osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
