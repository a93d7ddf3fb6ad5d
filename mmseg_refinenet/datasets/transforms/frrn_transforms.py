"""Data augmentation of FRRN (Sec. 4 of the paper, official release).

Pohlen et al., "Full-Resolution Residual Networks for Semantic Segmentation
in Street Scenes", CVPR 2017: training images are randomly translated
(reflection padding) and gamma-augmented.
"""
import math

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomGamma(BaseTransform):
    """Random gamma augmentation of FRRN.

    Samples ``Z ~ U(-a, a)`` and sets

    ``gamma = log(0.5 + Z / sqrt(2)) / log(0.5 - Z / sqrt(2))``,

    so that ``gamma = 1`` for ``Z = 0``, ``gamma < 1`` (brighter) for
    ``Z > 0`` and ``gamma > 1`` (darker) for ``Z < 0``. The image, scaled to
    [0, 1] by ``max_value``, is raised to ``gamma`` and scaled back; the
    dtype is kept (integer images are rounded).

    Required Keys:

    - img

    Modified Keys:

    - img

    Args:
        a (float): Half-width of the range of ``Z``, in [0, 0.5]. The
            official code uses 0.05. Default: 0.05.
        max_value (float | None): Value that maps to 1. None: the maximum
            of the integer dtype (255 for uint8), 255 for float images.
            Default: None.
    """

    def __init__(self, a=0.05, max_value=None):
        if isinstance(a, bool) or not isinstance(a, (int, float)) or \
                not 0 <= a <= 0.5:
            raise ValueError(
                f'RandomGamma: a must be a number in [0, 0.5], got {a!r}')
        if max_value is not None and not max_value > 0:
            raise ValueError('RandomGamma: max_value must be positive or '
                             f'None, got {max_value!r}')
        self.a = float(a)
        self.max_value = max_value

    @staticmethod
    def gamma_from_z(z):
        """The gamma of the FRRN augmentation for a sample ``z``."""
        return math.log(0.5 + z / math.sqrt(2)) / math.log(0.5 -
                                                           z / math.sqrt(2))

    @cache_randomness
    def _sample_gamma(self):
        return self.gamma_from_z(np.random.uniform(-self.a, self.a))

    def _max_value(self, img):
        if self.max_value is not None:
            return float(self.max_value)
        if np.issubdtype(img.dtype, np.integer):
            return float(np.iinfo(img.dtype).max)
        return 255.

    def transform(self, results):
        """Apply a random gamma to ``results['img']``.

        Args:
            results (dict): Result dict with ``img`` (H, W[, C]).

        Returns:
            dict: ``results`` with the augmented image.
        """
        img = results['img']
        gamma = self._sample_gamma()
        max_value = self._max_value(img)
        out = np.clip(img.astype(np.float64) / max_value, 0, 1)**gamma
        out = out * max_value
        if np.issubdtype(img.dtype, np.integer):
            out = np.clip(np.rint(out), 0, max_value)
        results['img'] = out.astype(img.dtype)
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(a={self.a}, '
                f'max_value={self.max_value})')


@TRANSFORMS.register_module()
class RandomTranslate(BaseTransform):
    """Random translation of FRRN with reflection padding.

    Samples integer offsets ``dy, dx`` uniformly from ``[-offset, offset]``
    and moves the content by them: ``out[y, x] = in[y - dy, x - dx]``. The
    output has the input's size. The exposed border of the image is filled
    by reflection padding of the shifted content; that of the segmentation
    maps by ``seg_pad_val`` (void), so image and labels stay aligned and
    the reflected pixels are not trained on.

    Required Keys:

    - img
    - gt_seg_map (optional)
    - seg_fields (optional)

    Modified Keys:

    - img
    - gt_seg_map and every key in seg_fields

    Args:
        offset (int): Largest shift in pixels along each axis, >= 0. The
            official code uses 20 (at quarter and half resolution).
            Default: 20.
        seg_pad_val (int): Label of the exposed border. Default: 255.
    """

    def __init__(self, offset=20, seg_pad_val=255):
        if isinstance(offset, bool) or not isinstance(offset, int) or \
                offset < 0:
            raise ValueError('RandomTranslate: offset must be an int >= 0, '
                             f'got {offset!r}')
        self.offset = offset
        self.seg_pad_val = seg_pad_val

    @cache_randomness
    def _sample_offsets(self):
        return tuple(
            int(o)
            for o in np.random.randint(-self.offset, self.offset + 1, 2))

    @staticmethod
    def _source_and_target(shift, size):
        """Slices ``(source, target)`` of the rows/cols kept by a shift."""
        return (slice(max(-shift, 0), size - max(shift, 0)),
                slice(max(shift, 0), size - max(-shift, 0)))

    def translate_image(self, img, dy, dx):
        """Shift ``img`` (H, W[, C]) by (dy, dx), reflection-padded."""
        h, w = img.shape[:2]
        rows, _ = self._source_and_target(dy, h)
        cols, _ = self._source_and_target(dx, w)
        pad = [(max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))]
        pad += [(0, 0)] * (img.ndim - 2)
        return np.pad(img[rows, cols], pad, mode='reflect')

    def translate_seg(self, seg, dy, dx):
        """Shift ``seg`` (H, W) by (dy, dx), padded with seg_pad_val."""
        h, w = seg.shape[:2]
        src_rows, dst_rows = self._source_and_target(dy, h)
        src_cols, dst_cols = self._source_and_target(dx, w)
        out = np.full_like(seg, self.seg_pad_val)
        out[dst_rows, dst_cols] = seg[src_rows, src_cols]
        return out

    def transform(self, results):
        """Translate the image and all segmentation maps by one offset.

        Args:
            results (dict): Result dict with ``img`` and segmentation maps.

        Returns:
            dict: ``results`` with translated image and maps.
        """
        img = results['img']
        h, w = img.shape[:2]
        dy, dx = self._sample_offsets()
        # a shift of the full size would leave nothing to reflect
        dy = int(np.clip(dy, 1 - h, h - 1))
        dx = int(np.clip(dx, 1 - w, w - 1))
        results['img'] = self.translate_image(img, dy, dx)
        seg_keys = list(results.get('seg_fields', []))
        if 'gt_seg_map' in results and 'gt_seg_map' not in seg_keys:
            seg_keys.append('gt_seg_map')
        for key in seg_keys:
            results[key] = self.translate_seg(results[key], dy, dx)
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(offset={self.offset}, '
                f'seg_pad_val={self.seg_pad_val})')
