"""Convert NYU Depth v2 (40 classes of Gupta et al.) to MMSegmentation's
layout.

Reads three official files:

- ``nyu_depth_v2_labeled.mat`` (Silberman et al., MATLAB v7.3 = HDF5):
  ``images``, MATLAB size 480x640x3xN, seen by HDF5 transposed as
  (N, 3, 640, 480) uint8 RGB; ``labels``, MATLAB 480x640xN, HDF5
  (N, 640, 480), 894-class indices with 0 = unlabelled.
- ``classMapping40.mat`` (Gupta et al., CVPR 2013): ``mapClass``, 1x894,
  the 40-class index 1..40 of each of the 894 classes.
- ``splits.mat``: ``trainNdxs`` (795) and ``testNdxs`` (654), 1-based
  frame indices.

The two small files are read as MATLAB v5 (scipy) or v7.3 (h5py). Writes::

    OUT/img_dir/{train,test}/NNNN.png   RGB image, 640x480
    OUT/ann_dir/{train,test}/NNNN.png   40-class index 0..39, 255 unlabelled

``NNNN`` is the 1-based frame index in ``nyu_depth_v2_labeled.mat`` (as in
``splits.mat``). Example::

    python tools/dataset_converters/nyudv2.py nyu_depth_v2_labeled.mat \
        classMapping40.mat splits.mat -o data/nyudv2

Needs ``h5py`` and ``scipy``. Nothing is written unless every frame
converts: the output is built in a hidden folder next to ``OUT`` and renamed
into place at the end.
"""
import argparse
import os
import os.path as osp
import sys
from functools import partial
from typing import Dict, Sequence

import cv2
import numpy as np
from mmengine.utils import track_progress

from mmseg_refinenet.datasets.converter_utils import (require, check_out_dir,
                                                      staged_output)

NUM_RAW_CLASSES = 894
NUM_CLASSES = 40
IGNORE_INDEX = 255


def _load_mat(path: str, names: Sequence[str]) -> Dict[str, np.ndarray]:
    """Numeric variables ``names`` of a MATLAB v5 or v7.3 file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found')
    h5py = require('h5py', 'h5py')
    sio = require('scipy.io', 'scipy')
    try:
        if h5py.is_hdf5(path):  # MATLAB v7.3
            with h5py.File(path, 'r') as f:
                found = {n: np.asarray(f[n]) for n in names if n in f}
        else:
            mat = sio.loadmat(path, variable_names=list(names))
            found = {n: np.asarray(mat[n]) for n in names if n in mat}
    except (NotImplementedError, ValueError, OSError, TypeError) as e:
        raise ValueError(f'{path}: not a readable MATLAB file ({e})') from e
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f'{path}: variable(s) {", ".join(missing)} not '
                         f'found (expected {", ".join(names)})')
    return found


def _whole_numbers(values: np.ndarray, where: str, low: int,
                   high: int) -> np.ndarray:
    """``values`` flattened to int64, checked to lie in ``low..high``."""
    values = np.asarray(values).ravel()
    if (values.size == 0 or not np.issubdtype(values.dtype, np.number)
            or not np.all(values == np.round(values))):
        raise ValueError(f'{where}: expected whole numbers in '
                         f'{low}..{high}')
    values = values.astype(np.int64)
    bad = values[(values < low) | (values > high)]
    if bad.size:
        raise ValueError(f'{where}: value(s) {sorted(set(bad.tolist()))[:5]} '
                         f'outside {low}..{high}')
    return values


def _convert_frame(task, images, labels, lut: np.ndarray, labeled_mat: str,
                   out_dir: str) -> None:
    index, split = task  # 0-based frame index
    label = np.asarray(labels[index]).T  # (W, H) in HDF5 -> (H, W)
    if label.size and label.max() >= len(lut):
        bad = sorted(set(label[label >= len(lut)].tolist()))[:5]
        raise ValueError(f'{labeled_mat}: frame {index + 1} has label '
                         f'value(s) {bad}, expected 0..{len(lut) - 1} '
                         '(0 = unlabelled)')
    rgb = np.transpose(np.asarray(images[index]), (2, 1, 0))
    name = f'{index + 1:04d}.png'
    for folder, array in (('img_dir', rgb[..., ::-1]), ('ann_dir',
                                                        lut[label])):
        out_file = osp.join(out_dir, folder, split, name)
        if not cv2.imwrite(out_file, np.ascontiguousarray(array)):
            raise OSError(f'could not write {out_file}')


def convert_nyudv2(labeled_mat: str,
                   mapping_mat: str,
                   splits_mat: str,
                   out_dir: str,
                   overwrite: bool = False) -> Dict[str, int]:
    """Convert NYU Depth v2 with the 40-class labels into ``out_dir``.

    Args:
        labeled_mat (str): ``nyu_depth_v2_labeled.mat``.
        mapping_mat (str): ``classMapping40.mat`` (variable ``mapClass``).
        splits_mat (str): ``splits.mat`` (``trainNdxs``, ``testNdxs``).
        out_dir (str): Output folder; gets ``img_dir/`` and ``ann_dir/``.
        overwrite (bool): Replace a non-empty ``out_dir``. Default: False.

    Returns:
        dict[str, int]: Number of frames written per split.

    Raises:
        FileNotFoundError: An input file is missing.
        ValueError: Malformed input (unexpected array shapes, label values
            above the 894 classes, split indices out of range or shared by
            both splits) or a non-empty ``out_dir`` without ``overwrite``.
        ImportError: ``h5py`` or ``scipy`` is not installed.
    """
    out_dir = osp.abspath(out_dir)
    check_out_dir(out_dir, [labeled_mat, mapping_mat, splits_mat], overwrite)
    if not osp.isfile(labeled_mat):
        raise FileNotFoundError(f'{labeled_mat} not found')
    map_class = _load_mat(mapping_mat, ['mapClass'])['mapClass']
    map_class = _whole_numbers(map_class, f'{mapping_mat}: mapClass', 1,
                               NUM_CLASSES)
    if map_class.size != NUM_RAW_CLASSES:
        raise ValueError(f'{mapping_mat}: mapClass has {map_class.size} '
                         f'entries, expected {NUM_RAW_CLASSES}')
    # raw label 0 (unlabelled) -> 255, raw class k -> mapClass[k] - 1
    lut = np.concatenate([[IGNORE_INDEX], map_class - 1]).astype(np.uint8)
    split_vars = _load_mat(splits_mat, ['trainNdxs', 'testNdxs'])

    h5py = require('h5py', 'h5py')
    try:
        f = h5py.File(labeled_mat, 'r')
    except OSError as e:
        raise ValueError(f'{labeled_mat}: not a MATLAB v7.3 (HDF5) file '
                         f'({e})') from e
    with f:
        for key in ('images', 'labels'):
            if key not in f:
                raise ValueError(f'{labeled_mat}: no dataset "{key}" '
                                 '(expected nyu_depth_v2_labeled.mat)')
        images, labels = f['images'], f['labels']
        if (images.ndim != 4 or images.shape[1] != 3
                or images.dtype != np.uint8):
            raise ValueError(f'{labeled_mat}: "images" has shape '
                             f'{images.shape} {images.dtype}, expected '
                             '(N, 3, W, H) uint8')
        if (labels.ndim != 3 or labels.dtype.kind not in 'iu'
                or labels.shape[0] != images.shape[0]
                or labels.shape[1:] != images.shape[2:]):
            expected = (images.shape[0], ) + images.shape[2:]
            raise ValueError(f'{labeled_mat}: "labels" has shape '
                             f'{labels.shape} {labels.dtype}, expected '
                             f'integer {expected} to match "images" '
                             '(image and label sizes differ)')
        num_frames = images.shape[0]
        splits = {}
        for split, key in (('train', 'trainNdxs'), ('test', 'testNdxs')):
            splits[split] = _whole_numbers(split_vars[key],
                                           f'{splits_mat}: {key}', 1,
                                           num_frames)
            if len(set(splits[split].tolist())) != splits[split].size:
                raise ValueError(f'{splits_mat}: {key} repeats frames')
        shared = set(splits['train'].tolist()) & set(splits['test'].tolist())
        if shared:
            raise ValueError(f'{splits_mat}: frame(s) {sorted(shared)[:5]} '
                             'are in both trainNdxs and testNdxs')
        with staged_output(out_dir) as tmp:
            for split, indices in splits.items():
                print(f'{split}: {indices.size} frames')
                os.makedirs(osp.join(tmp, 'img_dir', split))
                os.makedirs(osp.join(tmp, 'ann_dir', split))
                track_progress(
                    partial(_convert_frame,
                            images=images,
                            labels=labels,
                            lut=lut,
                            labeled_mat=labeled_mat,
                            out_dir=tmp),
                    [(int(i) - 1, split) for i in indices])
    return {split: int(indices.size) for split, indices in splits.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert NYU Depth v2 (40 classes of Gupta et al.) to '
        'mmsegmentation format')
    parser.add_argument('labeled_mat', help='nyu_depth_v2_labeled.mat')
    parser.add_argument('mapping_mat',
                        help='classMapping40.mat (894 -> 40 classes)')
    parser.add_argument('splits_mat', help='splits.mat (795/654 split)')
    parser.add_argument('-o',
                        '--out_dir',
                        default='data/nyudv2',
                        help='output path')
    parser.add_argument('--overwrite',
                        action='store_true',
                        help='replace the output folder if it is not empty')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        counts = convert_nyudv2(args.labeled_mat, args.mapping_mat,
                                args.splits_mat, args.out_dir, args.overwrite)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'Done: {counts} -> {osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
