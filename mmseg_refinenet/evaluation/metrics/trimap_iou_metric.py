"""Trimap (boundary band) IoU, the boundary evaluation of FRRN.

Pohlen et al., "Full-Resolution Residual Networks for Semantic Segmentation
in Street Scenes", CVPR 2017, Sec. 5.3 / Fig. 7: the IoU is computed only
over the pixels that lie within ``r`` pixels of a ground-truth label
boundary, for a range of band widths ``r``.
"""
import warnings
from collections import OrderedDict
from numbers import Integral
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from prettytable import PrettyTable

from mmseg.registry import METRICS

#: Cityscapes' 7 categories and the category of each of the 19 train ids.
CITYSCAPES_CATEGORIES = ('flat', 'construction', 'object', 'nature', 'sky',
                         'human', 'vehicle')
CITYSCAPES_CATEGORY_MAP = (
    0, 0,  # road, sidewalk -> flat
    1, 1, 1,  # building, wall, fence -> construction
    2, 2, 2,  # pole, traffic light, traffic sign -> object
    3, 3,  # vegetation, terrain -> nature
    4,  # sky -> sky
    5, 5,  # person, rider -> human
    6, 6, 6, 6, 6, 6)  # car, truck, bus, train, motorcycle, bicycle
_PRESET_CATEGORIES = {
    'cityscapes': (CITYSCAPES_CATEGORY_MAP, CITYSCAPES_CATEGORIES)
}


def label_boundary(label: np.ndarray,
                   ignore_index: int = 255,
                   connectivity: int = 4) -> np.ndarray:
    """Boundary pixels of a label map.

    A pixel is a boundary pixel when one of its 4- (or 8-) neighbours has a
    *different valid* label and the pixel itself is valid: both sides of a
    label change are marked. Transitions between a valid label and
    ``ignore_index`` (void) are not boundaries, and neither is the image
    border.

    Args:
        label (np.ndarray): (H, W) integer label map.
        ignore_index (int): The void label. Defaults to 255.
        connectivity (int): 4 or 8. Defaults to 4.

    Returns:
        np.ndarray: (H, W) bool mask of boundary pixels.
    """
    if connectivity not in (4, 8):
        raise ValueError(f'connectivity must be 4 or 8, got {connectivity}')
    valid = label != ignore_index
    boundary = np.zeros(label.shape, dtype=bool)
    offsets = [(0, 1), (1, 0)]
    if connectivity == 8:
        offsets += [(1, 1), (1, -1)]
    h, w = label.shape
    for dy, dx in offsets:
        # pixel a = (y, x), its neighbour b = (y + dy, x + dx)
        ya, yb = slice(0, h - dy), slice(dy, h)
        xa = slice(max(0, -dx), w - max(0, dx))
        xb = slice(max(0, dx), w - max(0, -dx))
        change = ((label[ya, xa] != label[yb, xb]) & valid[ya, xa]
                  & valid[yb, xb])
        boundary[ya, xa] |= change
        boundary[yb, xb] |= change
    return boundary


def boundary_distance(label: np.ndarray,
                      ignore_index: int = 255,
                      connectivity: int = 4) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest boundary pixel.

    Computed with ``cv2.distanceTransform(DIST_L2, DIST_MASK_PRECISE)``, the
    exact Euclidean distance transform. Boundary pixels have distance 0;
    when the label map has no boundary every distance is ``inf``.

    Args:
        label (np.ndarray): (H, W) integer label map.
        ignore_index (int): The void label. Defaults to 255.
        connectivity (int): Neighbourhood of the boundary definition, 4 or
            8 (see :func:`label_boundary`). Defaults to 4.

    Returns:
        np.ndarray: (H, W) float32 distances.
    """
    boundary = label_boundary(label, ignore_index, connectivity)
    if not boundary.any():
        return np.full(label.shape, np.inf, dtype=np.float32)
    # distanceTransform measures the distance to the nearest zero pixel
    return cv2.distanceTransform((~boundary).astype(np.uint8), cv2.DIST_L2,
                                 cv2.DIST_MASK_PRECISE)


@METRICS.register_module()
class TrimapIoUMetric(BaseMetric):
    """Trimap IoU: mIoU within ``r`` pixels of the ground-truth boundaries.

    The boundary evaluation of FRRN (Pohlen et al., CVPR 2017, Sec. 5.3,
    Fig. 7). For every radius ``r`` only the pixels whose Euclidean distance
    to the nearest ground-truth boundary pixel is ``<= r`` are counted; the
    other pixels, and void (``ignore_index``) pixels, are left out. Within
    this band the IoU is accumulated over the whole dataset exactly as
    mmseg's :class:`IoUMetric` does (intersection and union summed over all
    images, NaN for classes absent from both prediction and band, mean over
    the classes that are not NaN).

    Boundary pixels are valid pixels with a 4-neighbour (``connectivity=8``:
    8-neighbour) of a different *valid* label; both sides of a label change
    are boundary pixels, so for a straight edge a radius ``r`` selects a band
    ``2 r + 2`` pixels wide. A valid/void transition and the image border are
    not boundaries. An image whose ground truth has no boundary contributes
    no pixels. With a radius as large as the image diagonal the band is the
    whole image and the result equals :class:`IoUMetric`'s mIoU.

    Optionally the same is computed over categories (e.g. Cityscapes'
    7 categories): prediction and ground truth are mapped class ->
    category and the IoU is taken over the categories. By default within
    the same band as the classes (``category_band='class'``: around the
    *class* boundaries); ``category_band='category'`` puts the band around
    the boundaries between categories instead.

    Results, in percent, float32 and rounded to 2 decimals exactly as
    :class:`IoUMetric`'s:
    ``mIoU@r{r}`` per radius, ``catIoU@r{r}`` with categories, and with
    ``per_class=True`` also ``IoU.{class}@r{r}`` (and
    ``catIoU.{category}@r{r}``).

    Args:
        radii (Sequence[int]): Band radii in pixels, positive and distinct.
            Defaults to (1, 2, 4, 8, 16, 32, 64, 80).
        ignore_index (int): The void label. Defaults to 255.
        connectivity (int): Neighbourhood of the boundary definition, 4 or
            8. Defaults to 4.
        categories (str, optional): A preset category mapping; only
            ``'cityscapes'`` (the 19 train ids to flat, construction, object,
            nature, sky, human, vehicle). Defaults to None.
        category_map (Sequence[int], optional): Category index of every
            class index (length = number of classes). Exclusive with
            ``categories``. Defaults to None.
        category_names (Sequence[str], optional): Names of the categories of
            ``category_map``, for the table and the per-class keys. Defaults
            to ``('cat0', 'cat1', ...)``.
        category_band (str): ``'class'`` or ``'category'``: which
            boundaries the band of the category IoU surrounds. Defaults to
            ``'class'``.
        per_class (bool): Also return the IoU of every class (and category)
            per radius. Defaults to False.
        nan_to_num (int, optional): Replace NaN IoUs by this number before
            averaging, as :class:`IoUMetric`. Defaults to None.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to None.
    """

    def __init__(self,
                 radii: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 80),
                 ignore_index: int = 255,
                 connectivity: int = 4,
                 categories: Optional[str] = None,
                 category_map: Optional[Sequence[int]] = None,
                 category_names: Optional[Sequence[str]] = None,
                 category_band: str = 'class',
                 per_class: bool = False,
                 nan_to_num: Optional[int] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.radii = self._check_radii(radii)
        if connectivity not in (4, 8):
            raise ValueError(
                f'connectivity must be 4 or 8, got {connectivity!r}')
        self.connectivity = connectivity
        self.ignore_index = ignore_index
        self.per_class = per_class
        self.nan_to_num = nan_to_num
        self.category_map, self.category_names = self._check_categories(
            categories, category_map, category_names)
        if category_band not in ('class', 'category'):
            raise ValueError("category_band must be 'class' or 'category', "
                             f'got {category_band!r}')
        self.category_band = category_band

    @staticmethod
    def _check_radii(radii) -> Tuple[int, ...]:
        if isinstance(radii, (str, bytes)) or not isinstance(
                radii, Sequence):
            raise TypeError('radii must be a non-empty sequence of positive '
                            f'ints, got {radii!r}')
        if len(radii) == 0:
            raise ValueError('radii must not be empty')
        for r in radii:
            if isinstance(r, bool) or not isinstance(r, Integral) or r <= 0:
                raise ValueError(
                    f'radii must be positive ints, got {r!r} in {radii!r}')
        if len(set(radii)) != len(radii):
            raise ValueError(f'radii must be distinct, got {radii!r}')
        return tuple(int(r) for r in radii)

    @staticmethod
    def _check_categories(categories, category_map, category_names):
        if categories is not None and category_map is not None:
            raise ValueError(
                'give either categories or category_map, not both')
        if categories is not None:
            if categories not in _PRESET_CATEGORIES:
                raise ValueError(
                    f'unknown categories {categories!r}; known: '
                    f'{sorted(_PRESET_CATEGORIES)} (or pass category_map)')
            category_map, default_names = _PRESET_CATEGORIES[categories]
            if category_names is None:
                category_names = default_names
        if category_map is None:
            if category_names is not None:
                raise ValueError('category_names needs category_map or '
                                 'categories')
            return None, None
        category_map = list(category_map)
        if not category_map or any(
                isinstance(c, bool) or not isinstance(c, Integral) or c < 0
                for c in category_map):
            raise ValueError('category_map must be a non-empty list of '
                             'non-negative ints (class index -> category '
                             f'index), got {category_map!r}')
        category_map = [int(c) for c in category_map]
        num_categories = max(category_map) + 1
        if category_names is None:
            category_names = [f'cat{i}' for i in range(num_categories)]
        category_names = list(category_names)
        if len(category_names) != num_categories:
            raise ValueError(
                f'{len(category_names)} category_names for '
                f'{num_categories} categories (max(category_map) + 1)')
        return category_map, category_names

    def _category_lut(self, num_classes: int,
                      device: torch.device) -> torch.Tensor:
        """Lookup table class index -> category index, void kept void."""
        if len(self.category_map) != num_classes:
            raise ValueError(
                f'category_map has {len(self.category_map)} entries but the '
                f'dataset has {num_classes} classes '
                f"(dataset_meta['classes']); it must map every class index "
                'to a category index')
        size = max(num_classes, self.ignore_index + 1)
        lut = torch.full((size, ), self.ignore_index, dtype=torch.long)
        lut[:num_classes] = torch.tensor(self.category_map)
        return lut.to(device)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Accumulate the areas of every radius' band for a batch.

        Appends, per image, a (R, 4, C) tensor of intersection, union,
        prediction and label areas per radius and class (and the same over
        the categories) to ``self.results``: the areas
        :meth:`IoUMetric.intersect_and_union` gives for the label with the
        pixels outside the band set to void.
        """
        num_classes = len(self.dataset_meta['classes'])
        lut = None
        if self.category_map is not None:
            lut = self._category_lut(num_classes, torch.device('cpu'))
        num_categories = (
            len(self.category_names) if lut is not None else 0)
        for data_sample in data_samples:
            pred = data_sample['pred_sem_seg']['data'].squeeze().cpu()
            label = data_sample['gt_sem_seg']['data'].squeeze().cpu().to(
                pred)
            dist = torch.from_numpy(
                boundary_distance(label.numpy(), self.ignore_index,
                                  self.connectivity))
            if lut is not None:
                top = lut.numel() - 1  # out-of-range values become void
                cat_pred = lut[pred.long().clamp(0, top)]
                cat_label = lut[label.long().clamp(0, top)]
                cat_dist = dist
                if self.category_band == 'category':
                    cat_dist = torch.from_numpy(
                        boundary_distance(cat_label.numpy(),
                                          self.ignore_index,
                                          self.connectivity))
            result = dict(
                cls=self._band_areas(pred, label, dist, num_classes),
                cat=None)
            if lut is not None:
                result['cat'] = self._band_areas(cat_pred, cat_label,
                                                 cat_dist, num_categories)
            self.results.append(result)

    def _band_areas(self, pred: torch.Tensor, label: torch.Tensor,
                    dist: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Areas of every radius' band in one pass.

        Equal to ``IoUMetric.intersect_and_union(pred, band_label, ...)``
        for every radius, where ``band_label`` is ``label`` with the pixels
        farther than ``r`` from a boundary set to void, but computed with one
        histogram over (radius bin, class) and a cumulative sum over the
        sorted radii. Counts are int64 (exact over any dataset size).

        Returns:
            torch.Tensor: (R, 4, C) intersection, union, prediction and
            label areas, radii in the order of ``self.radii``.
        """
        num_radii = len(self.radii)
        order = sorted(range(num_radii), key=lambda i: self.radii[i])
        sorted_radii = np.array([self.radii[i] for i in order],
                                dtype=np.float32)
        dist, label, pred = dist.numpy(), label.numpy(), pred.numpy()
        keep = (label != self.ignore_index) & (dist <= sorted_radii[-1])
        # index of the smallest radius whose band contains the pixel
        bins = np.searchsorted(sorted_radii, dist[keep], side='left')
        pred, label = pred[keep], label[keep]
        # values outside [0, C) go to an extra column that is dropped, as
        # torch.histc does not count them
        width = num_classes + 1
        pred_col = np.where((pred >= 0) & (pred < num_classes), pred,
                            num_classes)
        label_col = np.where((label >= 0) & (label < num_classes), label,
                             num_classes)
        hit_col = np.where(pred == label, label_col, num_classes)

        def hist(column):
            return np.bincount(bins * width + column,
                               minlength=num_radii * width).reshape(
                                   num_radii, width)[:, :num_classes]

        area_pred, area_label = hist(pred_col), hist(label_col)
        area_intersect = hist(hit_col)
        areas = np.stack([
            area_intersect, area_pred + area_label - area_intersect,
            area_pred, area_label
        ], 1).cumsum(0)  # a band contains the bands of smaller radii
        position = [0] * num_radii
        for rank, i in enumerate(order):
            position[i] = rank
        return torch.from_numpy(areas[position].astype(np.int64))

    def _iou(self, areas: torch.Tensor) -> np.ndarray:
        """(R, C) IoU from summed (R, 4, C) areas; NaN where union is 0."""
        # float32 as IoUMetric's histograms
        iou = (areas[:, 0].float() / areas[:, 1].float()).numpy()
        if self.nan_to_num is not None:
            iou = np.nan_to_num(iou, nan=self.nan_to_num)
        return iou

    @staticmethod
    def _mean(iou: np.ndarray) -> np.float32:
        # float32 and rounded exactly as IoUMetric's summary
        with warnings.catch_warnings():
            # a band without any valid pixel gives an all-NaN row
            warnings.simplefilter('ignore', category=RuntimeWarning)
            return np.round(np.nanmean(iou) * 100, 2)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Sum the areas over all images and compute the IoUs per radius.

        Returns:
            dict[str, float]: ``mIoU@r{r}`` (and ``catIoU@r{r}``, per-class
            ``IoU.{name}@r{r}`` / ``catIoU.{name}@r{r}``), in percent.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        class_names = list(self.dataset_meta['classes'])
        cls_iou = self._iou(sum(res['cls'] for res in results))
        # fraction of the valid pixels that fall into each band
        band_px = sum(res['cls'][:, 3].sum(-1) for res in results)
        cat_iou = None
        if self.category_map is not None:
            cat_iou = self._iou(sum(res['cat'] for res in results))

        metrics: Dict[str, float] = OrderedDict()
        table = PrettyTable()
        table.field_names = ['radius', 'band pixels', 'mIoU'] + (
            ['catIoU'] if cat_iou is not None else [])
        for i, r in enumerate(self.radii):
            metrics[f'mIoU@r{r}'] = self._mean(cls_iou[i])
            row = [r, int(band_px[i]), round(float(metrics[f'mIoU@r{r}']),
                                             2)]
            if cat_iou is not None:
                metrics[f'catIoU@r{r}'] = self._mean(cat_iou[i])
                row.append(round(float(metrics[f'catIoU@r{r}']), 2))
            table.add_row(row)
        if self.per_class:
            for i, r in enumerate(self.radii):
                self._add_per_class(metrics, 'IoU', class_names, cls_iou[i],
                                    r)
                if cat_iou is not None:
                    self._add_per_class(metrics, 'catIoU',
                                        self.category_names, cat_iou[i], r)

        print_log('trimap IoU (pixels within r of a label boundary):',
                  logger)
        print_log('\n' + table.get_string(), logger=logger)
        print_log('per class IoU per radius:', logger)
        print_log('\n' + self._class_table(class_names, cls_iou).get_string(),
                  logger=logger)
        if cat_iou is not None:
            print_log(
                '\n' + self._class_table(self.category_names,
                                         cat_iou).get_string(),
                logger=logger)
        return metrics

    @staticmethod
    def _add_per_class(metrics: dict, key: str, names: List[str],
                       iou: np.ndarray, r: int) -> None:
        for name, value in zip(names, iou):
            metrics[f'{key}.{name}@r{r}'] = np.round(value * 100, 2)

    def _class_table(self, names: List[str],
                     iou: Union[np.ndarray, list]) -> PrettyTable:
        table = PrettyTable()
        table.add_column('Class', list(names))
        for i, r in enumerate(self.radii):
            table.add_column(f'r={r}', list(np.round(iou[i] * 100, 2)))
        return table
