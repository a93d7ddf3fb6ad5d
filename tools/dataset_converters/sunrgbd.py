"""Convert SUN RGB-D (37 classes) to MMSegmentation's layout.

Reads the official release (http://rgbd.cs.princeton.edu/): the image
folders of ``SUNRGBD.zip`` and three files of ``SUNRGBDtoolbox.zip``:

- ``Metadata/SUNRGBDMeta.mat`` (MATLAB v5): struct array ``SUNRGBDMeta``,
  one entry per frame (10335); its ``rgbpath`` field names the RGB image,
  e.g. ``/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001/image/NYU0001.jpg``.
- ``Metadata/SUNRGBD2Dseg.mat`` (MATLAB v7.3 = HDF5): struct array
  ``SUNRGBD2Dseg`` whose ``seglabel`` field holds, entry by entry in the
  order of ``SUNRGBDMeta``, the 37-class label map of the frame (values
  0..37, 0 = unlabelled, classes in the order of ``seg37list``), stored
  transposed as MATLAB does.
- ``traintestSUNRGBD/allsplit.mat`` (MATLAB v5): cell arrays ``alltrain``
  (5285) and ``alltest`` (5050) of frame folders, e.g.
  ``/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0001``.

Paths are matched on the part after their ``SUNRGBD/`` component, so the
image of an entry is ``SUNRGBD_DIR/kv1/NYUdata/NYU0001/image/NYU0001.jpg``
and its folder ``kv1/NYUdata/NYU0001`` decides the split. Writes::

    OUT/img_dir/{train,test}/NNNNN.jpg  the original JPEG, copied as is
    OUT/ann_dir/{train,test}/NNNNN.png  class index 0..36, 255 unlabelled

``NNNNN`` is the 1-based index of the frame in ``SUNRGBDMeta``. Example::

    python tools/dataset_converters/sunrgbd.py SUNRGBD SUNRGBDtoolbox \
        -o data/sunrgbd

Needs ``h5py`` and ``scipy``. Nothing is written unless every frame
converts: the output is built in a hidden folder next to ``OUT`` and renamed
into place at the end.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from functools import partial
from typing import Dict, List, Sequence

import cv2
import numpy as np
from mmengine.utils import track_progress
from PIL import Image

from mmseg_refinenet.datasets.converter_utils import (require, check_out_dir,
                                                      staged_output)

NUM_CLASSES = 37
IGNORE_INDEX = 255
META_FILE = osp.join('Metadata', 'SUNRGBDMeta.mat')
SEG_FILE = osp.join('Metadata', 'SUNRGBD2Dseg.mat')
SPLIT_FILE = osp.join('traintestSUNRGBD', 'allsplit.mat')


def _load_mat_v5(path: str, names: Sequence[str]) -> dict:
    """Variables ``names`` of a MATLAB v5 file, squeezed, structs as
    objects."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found')
    sio = require('scipy.io', 'scipy')
    try:
        mat = sio.loadmat(path,
                          variable_names=list(names),
                          squeeze_me=True,
                          struct_as_record=False)
    except (NotImplementedError, ValueError, OSError, TypeError) as e:
        raise ValueError(f'{path}: not a readable MATLAB v5 file ({e})') \
            from e
    missing = [n for n in names if n not in mat]
    if missing:
        raise ValueError(f'{path}: variable(s) {", ".join(missing)} not '
                         f'found (expected {", ".join(names)})')
    return mat


def _relative(path, where: str) -> str:
    """The part of a SUN RGB-D path after its ``SUNRGBD`` component."""
    if not isinstance(path, str):
        raise ValueError(f'{where}: expected a path string, got {path!r}')
    parts = [p for p in path.replace('\\', '/').split('/') if p]
    if 'SUNRGBD' not in parts:
        raise ValueError(f'{where}: path {path!r} has no SUNRGBD/ '
                         'component')
    return '/'.join(parts[parts.index('SUNRGBD') + 1:])


def _convert_frame(task, seg_file, refs, lut: np.ndarray, seg_mat: str,
                   sunrgbd_dir: str, out_dir: str) -> None:
    index, image_rel, split = task  # 0-based index into SUNRGBDMeta
    img_file = osp.join(sunrgbd_dir, image_rel)
    label = np.asarray(seg_file[refs[index]]).T  # (W, H) in HDF5
    where = f'{seg_mat}: seglabel of frame {index + 1} ({image_rel})'
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.number):
        raise ValueError(f'{where}: expected a 2-D label map, got '
                         f'{label.shape} {label.dtype}')
    if not np.all(label == np.round(label)):
        raise ValueError(f'{where}: label values must be whole numbers')
    bad = label[(label < 0) | (label >= len(lut))]
    if bad.size:
        raise ValueError(f'{where}: label value(s) '
                         f'{sorted(set(bad.astype(int).tolist()))[:5]}, '
                         f'expected 0..{len(lut) - 1} (0 = unlabelled)')
    with Image.open(img_file) as img:
        img_size = img.size
    if label.shape[::-1] != img_size:
        raise ValueError(f'{where}: label size {label.shape[1]}x'
                         f'{label.shape[0]} differs from image {img_file} '
                         f'({img_size[0]}x{img_size[1]})')
    name = f'{index + 1:05d}'
    shutil.copyfile(img_file, osp.join(out_dir, 'img_dir', split,
                                       name + '.jpg'))
    out_file = osp.join(out_dir, 'ann_dir', split, name + '.png')
    if not cv2.imwrite(out_file, lut[label.astype(np.int64)]):
        raise OSError(f'could not write {out_file}')


def _read_split(split_mat: str, key: str) -> List[str]:
    folders = np.atleast_1d(_load_mat_v5(split_mat, [key])[key]).tolist()
    return [_relative(p, f'{split_mat}: {key}') for p in folders]


def convert_sunrgbd(sunrgbd_dir: str,
                    toolbox_dir: str,
                    out_dir: str,
                    overwrite: bool = False) -> Dict[str, int]:
    """Convert SUN RGB-D with the toolbox's 37-class labels into
    ``out_dir``.

    Args:
        sunrgbd_dir (str): The ``SUNRGBD`` folder of ``SUNRGBD.zip`` (holds
            ``kv1/``, ``kv2/``, ``realsense/``, ``xtion/``).
        toolbox_dir (str): The ``SUNRGBDtoolbox`` folder.
        out_dir (str): Output folder; gets ``img_dir/`` and ``ann_dir/``.
        overwrite (bool): Replace a non-empty ``out_dir``. Default: False.

    Returns:
        dict[str, int]: Number of frames written per split.

    Raises:
        FileNotFoundError: A toolbox file or an image is missing.
        ValueError: Malformed input (label values above 37, image and label
            sizes differ, split folders without a frame or in both splits,
            metadata and labels of different lengths) or a non-empty
            ``out_dir`` without ``overwrite``.
        ImportError: ``h5py`` or ``scipy`` is not installed.
    """
    out_dir = osp.abspath(out_dir)
    check_out_dir(out_dir, [sunrgbd_dir, toolbox_dir], overwrite)
    if not osp.isdir(sunrgbd_dir):
        raise FileNotFoundError(f'{sunrgbd_dir} not found (expected the '
                                'SUNRGBD folder of SUNRGBD.zip)')
    meta_mat = osp.join(toolbox_dir, META_FILE)
    seg_mat = osp.join(toolbox_dir, SEG_FILE)
    split_mat = osp.join(toolbox_dir, SPLIT_FILE)
    for path in (meta_mat, seg_mat, split_mat):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} not found (expected the '
                                    'SUNRGBDtoolbox folder)')
    meta = np.atleast_1d(
        _load_mat_v5(meta_mat, ['SUNRGBDMeta'])['SUNRGBDMeta'])
    image_rels = []
    for i, entry in enumerate(meta):
        where = f'{meta_mat}: SUNRGBDMeta({i + 1})'
        if not hasattr(entry, 'rgbpath'):
            raise ValueError(f'{where} has no field rgbpath')
        image_rels.append(_relative(entry.rgbpath, where))
    frame_of = {}
    for i, rel in enumerate(image_rels):
        frame_of.setdefault(osp.dirname(osp.dirname(rel)), i)
    tasks = {}
    for split, key in (('train', 'alltrain'), ('test', 'alltest')):
        tasks[split] = []
        for folder in _read_split(split_mat, key):
            if folder not in frame_of:
                raise ValueError(f'{split_mat}: {key} folder {folder!r} '
                                 f'matches no rgbpath of {meta_mat}')
            index = frame_of[folder]
            tasks[split].append((index, image_rels[index], split))
    shared = ({t[0] for t in tasks['train']} & {t[0] for t in tasks['test']})
    if shared:
        first = image_rels[min(shared)]
        raise ValueError(f'{split_mat}: {len(shared)} folder(s) in both '
                         f'alltrain and alltest, e.g. {first!r}')
    for split_tasks in tasks.values():
        for _, rel, _ in split_tasks:
            if not osp.isfile(osp.join(sunrgbd_dir, rel)):
                raise FileNotFoundError(
                    f'{osp.join(sunrgbd_dir, rel)} not found (image of '
                    f'{meta_mat})')

    h5py = require('h5py', 'h5py')
    try:
        f = h5py.File(seg_mat, 'r')
    except OSError as e:
        raise ValueError(f'{seg_mat}: not a MATLAB v7.3 (HDF5) file '
                         f'({e})') from e
    with f:
        if 'SUNRGBD2Dseg/seglabel' not in f:
            raise ValueError(f'{seg_mat}: no SUNRGBD2Dseg.seglabel (expected '
                             "the toolbox's SUNRGBD2Dseg.mat)")
        refs = np.asarray(f['SUNRGBD2Dseg/seglabel']).ravel()
        if refs.size != len(meta):
            raise ValueError(f'{seg_mat}: {refs.size} seglabel entries but '
                             f'{len(meta)} frames in {meta_mat}')
        # 0 (unlabelled) -> 255, class k in 1..37 -> k - 1
        lut = np.array([IGNORE_INDEX] + list(range(NUM_CLASSES)), np.uint8)
        with staged_output(out_dir) as tmp:
            for split, split_tasks in tasks.items():
                print(f'{split}: {len(split_tasks)} frames')
                os.makedirs(osp.join(tmp, 'img_dir', split))
                os.makedirs(osp.join(tmp, 'ann_dir', split))
                track_progress(
                    partial(_convert_frame,
                            seg_file=f,
                            refs=refs,
                            lut=lut,
                            seg_mat=seg_mat,
                            sunrgbd_dir=sunrgbd_dir,
                            out_dir=tmp), split_tasks)
    return {split: len(split_tasks) for split, split_tasks in tasks.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert SUN RGB-D (37 classes) to mmsegmentation format')
    parser.add_argument('sunrgbd_dir',
                        help='the SUNRGBD folder (kv1/, kv2/, ...)')
    parser.add_argument(
        'toolbox_dir',
        help='the SUNRGBDtoolbox folder (Metadata/, traintestSUNRGBD/)')
    parser.add_argument('-o',
                        '--out_dir',
                        default='data/sunrgbd',
                        help='output path')
    parser.add_argument('--overwrite',
                        action='store_true',
                        help='replace the output folder if it is not empty')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        counts = convert_sunrgbd(args.sunrgbd_dir, args.toolbox_dir,
                                 args.out_dir, args.overwrite)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'Done: {counts} -> {osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
