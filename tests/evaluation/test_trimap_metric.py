"""TrimapIoUMetric: hand-computed bands, equality with IoUMetric when the
band covers the image, void handling, categories and argument checks."""
import itertools

import numpy as np
import pytest
import torch

from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS
from mmseg.utils import register_all_modules
from mmseg_refinenet.evaluation.metrics import (CITYSCAPES_CATEGORY_MAP,
                                                TrimapIoUMetric,
                                                boundary_distance,
                                                label_boundary)

register_all_modules()


def approx(value):
    # values are float32, rounded to 2 decimals, as IoUMetric's
    return pytest.approx(value, abs=1e-4)


def _sample(pred, label):
    return dict(pred_sem_seg=dict(data=torch.as_tensor(pred)[None]),
                gt_sem_seg=dict(data=torch.as_tensor(label)[None]))


def _evaluate(metric, pairs, classes):
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, [_sample(p, g) for p, g in pairs])
    return metric.evaluate(len(pairs))


def _step_case():
    """6x8: label 0 in columns 0-3, 1 in 4-7; prediction shifted right by
    one column (0 in columns 0-4)."""
    label = torch.zeros(6, 8, dtype=torch.long)
    label[:, 4:] = 1
    pred = torch.zeros(6, 8, dtype=torch.long)
    pred[:, 5:] = 1
    return pred, label


def test_registered():
    metric = METRICS.build(dict(type='TrimapIoUMetric', radii=[3, 1]))
    assert isinstance(metric, TrimapIoUMetric)
    assert metric.radii == (3, 1)


def test_boundary_both_sides_4_and_8_connectivity():
    pred, label = _step_case()
    b = label_boundary(label.numpy())
    assert b[:, 3].all() and b[:, 4].all() and b.sum() == 12
    diag = np.array([[0, 255], [255, 1]])
    # only a diagonal change: 8-connectivity sees it, 4 does not
    assert not label_boundary(diag).any()
    assert label_boundary(diag, connectivity=8).sum() == 2


def test_distance_is_euclidean():
    rng = np.random.RandomState(0)
    label = np.kron(rng.randint(0, 3, (4, 5)), np.ones((3, 3), int))
    label[rng.rand(*label.shape) < 0.1] = 255
    b = label_boundary(label)
    dist = boundary_distance(label)
    ys, xs = np.nonzero(b)
    for y, x in itertools.product(range(label.shape[0]),
                                  range(label.shape[1])):
        ref = np.sqrt((ys - y)**2 + (xs - x)**2).min()
        assert dist[y, x] == pytest.approx(ref, abs=1e-4)


def test_hand_computed_step():
    pred, label = _step_case()
    res = _evaluate(TrimapIoUMetric(radii=(1, 2, 100), per_class=True),
                    [(pred, label)], ('a', 'b'))
    # boundary = columns 3 and 4; r=1 band = columns 2-5 (6 rows each).
    # class a: gt cols 2,3 (12 px), pred cols 2-4 (18): I 12, U 18 -> 2/3
    # class b: gt cols 4,5 (12 px), pred col 5 (6):    I 6,  U 12 -> 1/2
    assert res['IoU.a@r1'] == approx(66.67)
    assert res['IoU.b@r1'] == approx(50.0)
    assert res['mIoU@r1'] == approx(58.33)  # (2/3 + 1/2) / 2
    # r=2 band = columns 1-6: a I 18 U 24, b I 12 U 18
    assert res['mIoU@r2'] == approx(70.83)  # (3/4 + 2/3) / 2
    # the whole image: a I 24 U 30, b I 18 U 24
    assert res['mIoU@r100'] == approx(77.5)
    assert list(res)[:3] == ['mIoU@r1', 'mIoU@r2', 'mIoU@r100']


def test_hand_computed_void():
    pred, label = _step_case()
    label[0, 3] = 255
    res = _evaluate(TrimapIoUMetric(radii=(1, )), [(pred, label)],
                    ('a', 'b'))
    # (0,3) is void and the void/valid change is no boundary, so row 0 has
    # no boundary pixel: (0,4) is in the r=1 band (1 px from (1,4)), (0,2)
    # and (0,5) are not (sqrt 2 from (1,3) / (1,4)). Band: rows 1-5 x cols
    # 2-5 plus (0,4). a: gt 10, pred 16 (cols 2-4 and (0,4)), I 10 -> 10/16
    # b: gt 11, pred 5 (col 5), I 5 -> 5/11
    assert res['mIoU@r1'] == approx(53.98)  # (10/16 + 5/11) / 2


def test_no_boundary_gives_nan():
    label = torch.zeros(5, 5, dtype=torch.long)
    label[:, :2] = 255  # a void/valid change only
    res = _evaluate(TrimapIoUMetric(radii=(1, 50)), [(label.clone(), label)],
                    ('a', 'b'))
    assert np.isnan(res['mIoU@r1']) and np.isnan(res['mIoU@r50'])


def _random_pairs(n, num_classes, h=24, w=32, seed=0):
    rng = np.random.RandomState(seed)
    pairs = []
    for _ in range(n):
        label = np.kron(rng.randint(0, num_classes, (h // 4, w // 4)),
                        np.ones((4, 4), dtype=np.int64))
        label[rng.rand(h, w) < 0.15] = 255
        pred = label.copy()
        noise = rng.rand(h, w) < 0.3
        pred[noise] = rng.randint(0, num_classes, noise.sum())
        pred[pred == 255] = rng.randint(0, num_classes)
        pairs.append((torch.from_numpy(pred), torch.from_numpy(label)))
    return pairs


def test_full_band_equals_iou_metric():
    classes = tuple('abcde')
    pairs = _random_pairs(4, len(classes))
    ref = _evaluate(IoUMetric(iou_metrics=['mIoU']), pairs, classes)
    res = _evaluate(TrimapIoUMetric(radii=(1, 3, 1000)), pairs, classes)
    assert res['mIoU@r1000'] == ref['mIoU']
    assert res['mIoU@r1'] != ref['mIoU']


def test_areas_equal_intersect_and_union_on_band():
    """Per radius, the areas are IoUMetric.intersect_and_union of the label
    with every pixel farther than r from a boundary set to void (radii in
    any order, prediction values out of range ignored as by histc)."""
    classes = tuple('abcd')
    radii = (4, 1, 2, 7)
    pred, label = _random_pairs(1, len(classes), seed=3)[0]
    pred[0, :5] = 7  # out of range
    metric = TrimapIoUMetric(radii=radii)
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, [_sample(pred, label)])
    areas = metric.results[0]['cls']
    dist = torch.from_numpy(boundary_distance(label.numpy()))
    for i, r in enumerate(radii):
        band_label = label.clone()
        band_label[dist > r] = 255
        ref = IoUMetric.intersect_and_union(pred, band_label, len(classes),
                                            255)
        for got, want in zip(areas[i], ref):
            assert torch.equal(got.float(), want)


def test_band_grows_with_radius():
    classes = tuple('abcde')
    pairs = _random_pairs(2, len(classes))
    metric = TrimapIoUMetric(radii=(1, 2, 4, 8))
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, [_sample(p, g) for p, g in pairs])
    label_px = [r['cls'][:, 3].sum(-1) for r in metric.results]
    for px in label_px:
        assert (px[1:] >= px[:-1]).all()


def test_categories_equal_iou_on_mapped_labels():
    classes = tuple('abcde')
    category_map = [0, 0, 1, 2, 2]
    pairs = _random_pairs(3, len(classes), seed=1)
    lut = torch.tensor(category_map + [255] * 251)
    mapped = [(lut[p], lut[g]) for p, g in pairs]
    ref = _evaluate(IoUMetric(), mapped, ('x', 'y', 'z'))
    res = _evaluate(
        TrimapIoUMetric(radii=(2, 1000), category_map=category_map,
                        category_names=('x', 'y', 'z'), per_class=True),
        pairs, classes)
    assert res['catIoU@r1000'] == ref['mIoU']
    assert 'catIoU.y@r2' in res and 'IoU.e@r1000' in res
    # the category band is the class band: within r=2 it differs from the
    # band of the category boundaries
    band_of_categories = _evaluate(TrimapIoUMetric(radii=(2, )), mapped,
                                   ('x', 'y', 'z'))
    assert res['catIoU@r2'] != band_of_categories['mIoU@r2']
    res = _evaluate(
        TrimapIoUMetric(radii=(2, ), category_map=category_map,
                        category_band='category'), pairs, classes)
    assert res['catIoU@r2'] == band_of_categories['mIoU@r2']


def test_cityscapes_categories():
    metric = TrimapIoUMetric(categories='cityscapes')
    assert metric.category_map == list(CITYSCAPES_CATEGORY_MAP)
    assert len(metric.category_names) == 7
    classes = tuple(f'c{i}' for i in range(19))
    label = torch.zeros(8, 8, dtype=torch.long)
    label[:, 4:] = 1  # road | sidewalk: both flat
    pred = torch.full((8, 8), 13)  # car everywhere: vehicle
    pred[:, :4] = 0
    res = _evaluate(TrimapIoUMetric(radii=(1, ), categories='cityscapes'),
                    [(pred, label)], classes)
    # band r=1: columns 2-5 (32 px, all flat in the ground truth);
    # categories: flat gt 32 px, pred flat 16 px, I 16 -> 50; vehicle
    # pred 16, gt 0 -> 0; others absent (NaN) -> mean 25
    assert res['catIoU@r1'] == approx(25.0)


def test_category_map_length_checked_at_process():
    metric = TrimapIoUMetric(categories='cityscapes')
    metric.dataset_meta = dict(classes=('a', 'b'))
    pred, label = _step_case()
    with pytest.raises(ValueError, match='category_map has 19 entries but '
                       'the dataset has 2 classes'):
        metric.process({}, [_sample(pred, label)])


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(radii=()), ValueError, 'must not be empty'),
    (dict(radii=(1, 0)), ValueError, 'positive ints'),
    (dict(radii=(1, -2)), ValueError, 'positive ints'),
    (dict(radii=(1.5, )), ValueError, 'positive ints'),
    (dict(radii=(True, )), ValueError, 'positive ints'),
    (dict(radii=(2, 2)), ValueError, 'distinct'),
    (dict(radii=4), TypeError, 'sequence'),
    (dict(connectivity=6), ValueError, '4 or 8'),
    (dict(categories='voc'), ValueError, 'unknown categories'),
    (dict(categories='cityscapes', category_map=[0] * 19), ValueError,
     'either'),
    (dict(category_map=[0, -1]), ValueError, 'non-negative'),
    (dict(category_map=[0, 1], category_names=['x']), ValueError,
     'category_names'),
    (dict(category_names=['x']), ValueError, 'needs category_map'),
    (dict(categories='cityscapes', category_band='x'), ValueError,
     'category_band'),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrimapIoUMetric(**kwargs)
