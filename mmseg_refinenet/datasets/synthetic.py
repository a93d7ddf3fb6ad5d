"""A small generated segmentation dataset in MMSeg's on-disk layout.

Used by the quick start (``tools/quickstart.py``) and by tests that need real
files without downloading anything. Each image is a textured background
with randomly placed discs, boxes and bars; the label map gives the class of
every pixel::

    root/img_dir/{train,val}/XXXX.png   RGB images (8-bit PNG)
    root/ann_dir/{train,val}/XXXX.png   class index per pixel (8-bit PNG)

The classes, palette and suffixes are in :data:`SYNTHETIC_METAINFO`; the
folders load with MMSeg's ``BaseSegDataset``.
"""
import os
import os.path as osp
import re
import shutil
from typing import Tuple

import cv2
import numpy as np

SYNTHETIC_METAINFO = dict(
    classes=('background', 'disc', 'box', 'bar'),
    palette=[[0, 0, 0], [220, 20, 60], [0, 142, 70], [250, 170, 30]])

# left in the dataset's root: the folders under it are this generator's
SYNTHETIC_MARKER = '.mmseg_refinenet_synthetic'

# mean colour of each object class (BGR), before per-object jitter
_OBJECT_COLOURS = np.array([[60, 60, 200], [60, 170, 60], [40, 180, 220]],
                           dtype=np.float32)


def _draw_sample(rng: np.random.Generator,
                 size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    h, w = size
    # low-frequency coloured background + pixel noise
    coarse = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.float32)
    image = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    label = np.zeros((h, w), dtype=np.uint8)
    for _ in range(rng.integers(2, 6)):
        cls = int(rng.integers(1, 4))
        colour = _OBJECT_COLOURS[cls - 1] + rng.normal(0, 25, size=3)
        mask = np.zeros((h, w), dtype=np.uint8)
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        r = int(rng.integers(max(3, min(h, w) // 12), max(4, min(h, w) // 4)))
        if cls == 1:
            cv2.circle(mask, (cx, cy), r, 1, -1)
        elif cls == 2:
            cv2.rectangle(mask, (cx - r, cy - r), (cx + r, cy + r), 1, -1)
        else:  # a long thin bar at a random angle
            angle = rng.uniform(0, np.pi)
            dx, dy = int(2 * r * np.cos(angle)), int(2 * r * np.sin(angle))
            cv2.line(mask, (cx - dx, cy - dy), (cx + dx, cy + dy), 1,
                     max(2, r // 3))
        image[mask > 0] = colour
        label[mask > 0] = cls
    image += rng.normal(0, 12, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), label


def generate_synthetic_dataset(root: str,
                               num_train: int = 64,
                               num_val: int = 16,
                               size: Tuple[int, int] = (64, 64),
                               seed: int = 0) -> str:
    """Write the dataset under ``root`` (created if needed).

    A dataset this function wrote before under ``root`` (it leaves the
    marker file ``.mmseg_refinenet_synthetic`` there) is replaced as a
    whole, so that fewer images or another seed leave no old files behind
    (as is one without the marker whose folders hold only ``NNNN.png``
    files, as it wrote them before the marker). Image folders under
    ``root`` that hold other files are left alone: a FileExistsError names
    them.

    Args:
        root (str): Output folder.
        num_train (int): Training images. Default: 64.
        num_val (int): Validation images. Default: 16.
        size (tuple[int, int]): Image (height, width). Default: (64, 64).
        seed (int): Random seed; the same seed gives the same files.

    Returns:
        str: ``root``.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be positive, got '
                         f'{num_train} and {num_val}')
    folders = [
        osp.join(root, kind, split) for kind in ('img_dir', 'ann_dir')
        for split in ('train', 'val')
    ]
    used = [f for f in folders if osp.isdir(f) and os.listdir(f)]
    marker = osp.join(root, SYNTHETIC_MARKER)
    # before the marker existed, the generator's files were all NNNN.png
    ours = osp.isfile(marker) or all(
        re.fullmatch(r'\d{4}\.png', name) for folder in used
        for name in os.listdir(folder))
    if not ours:
        raise FileExistsError(
            f'{root} already holds files that generate_synthetic_dataset did '
            f'not write (in {", ".join(used)}); choose an empty or new '
            'folder for the synthetic dataset')
    for folder in used:
        shutil.rmtree(folder)
    os.makedirs(root, exist_ok=True)
    with open(marker, 'w') as f:
        f.write('written by mmseg_refinenet.datasets.'
                'generate_synthetic_dataset\n')
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(root, 'img_dir', split)
        ann_dir = osp.join(root, 'ann_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            image, label = _draw_sample(rng, size)
            cv2.imwrite(osp.join(img_dir, f'{i:04d}.png'), image)
            cv2.imwrite(osp.join(ann_dir, f'{i:04d}.png'), label)
    return root
