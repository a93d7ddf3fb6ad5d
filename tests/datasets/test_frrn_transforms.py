"""FRRN augmentations: RandomTranslate and RandomGamma."""
import math

import numpy as np
import pytest

from mmseg.registry import TRANSFORMS
from mmseg_refinenet.datasets.transforms import RandomGamma, RandomTranslate

H, W = 12, 17


def coordinate_results():
    """An image whose pixels encode their coordinates, labels likewise."""
    ys, xs = np.mgrid[0:H, 0:W]
    img = np.stack([ys, xs, np.full_like(ys, 7)], axis=-1).astype(np.float32)
    label = (ys * W + xs).astype(np.int64) % 200  # never the ignore 255
    return dict(
        img=img,
        gt_seg_map=label.astype(np.uint8),
        extra_map=(label + 1).astype(np.uint8),
        seg_fields=['gt_seg_map', 'extra_map'],
        img_shape=(H, W))


def reflect(i, n):
    """Index of numpy 'reflect' padding (edge not repeated), |i| < n."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


@pytest.mark.parametrize('dy, dx', [(0, 0), (3, -2), (-5, 4), (11, 16),
                                    (-11, -16), (2, 0)])
def test_translate_keeps_image_and_labels_aligned(dy, dx):
    t = RandomTranslate(offset=20)
    t._sample_offsets = lambda: (dy, dx)
    results = coordinate_results()
    label_in = results['gt_seg_map'].copy()
    out = t(results)
    img, label = out['img'], out['gt_seg_map']
    assert img.shape == (H, W, 3) and img.dtype == np.float32
    assert label.shape == (H, W) and label.dtype == np.uint8
    for y in range(H):
        for x in range(W):
            sy, sx = y - dy, x - dx  # source pixel of the content shift
            inside = 0 <= sy < H and 0 <= sx < W
            if inside:
                assert tuple(img[y, x]) == (sy, sx, 7)
                assert label[y, x] == label_in[sy, sx]
                assert out['extra_map'][y, x] == label_in[sy, sx] + 1
            else:
                # padded: void label, reflected content in the image
                assert label[y, x] == 255
                assert out['extra_map'][y, x] == 255
                # the kept region is rows/cols [max(-d,0), size-max(d,0))
                r0, c0 = max(-dy, 0), max(-dx, 0)
                rh, cw = H - abs(dy), W - abs(dx)
                if abs(dy) < rh and abs(dx) < cw:  # a single reflection
                    ry = reflect(sy - r0, rh) + r0
                    rx = reflect(sx - c0, cw) + c0
                    assert tuple(img[y, x]) == (ry, rx, 7)
                else:  # numpy reflects repeatedly: content of the region
                    assert r0 <= img[y, x, 0] < r0 + rh
                    assert c0 <= img[y, x, 1] < c0 + cw
    # void exactly where the image was padded
    n_void = H * W - (H - abs(dy)) * (W - abs(dx))
    assert (label == 255).sum() == n_void


def test_translate_random_offsets_in_range_and_gt_without_seg_fields():
    t = RandomTranslate(offset=3)
    np.random.seed(0)
    seen = set()
    for _ in range(200):
        results = coordinate_results()
        del results['seg_fields']
        del results['extra_map']
        out = t(results)
        valid = out['gt_seg_map'] != 255
        ys, xs = np.nonzero(valid)
        y0, x0 = ys.min(), xs.min()
        src = out['img'][y0, x0]
        dy, dx = int(y0 - src[0]), int(x0 - src[1])
        assert -3 <= dy <= 3 and -3 <= dx <= 3
        seen.add((dy, dx))
    assert len(seen) == 49  # every offset in [-3, 3]^2 occurs


def test_translate_grayscale_and_offset_larger_than_image():
    t = RandomTranslate(offset=50)
    t._sample_offsets = lambda: (40, -40)
    results = dict(img=np.arange(H * W, dtype=np.uint8).reshape(H, W),
                   gt_seg_map=np.zeros((H, W), np.uint8))
    out = t(results)
    assert out['img'].shape == (H, W)
    assert (out['gt_seg_map'] != 255).sum() == 1  # clipped to size - 1


@pytest.mark.parametrize('offset', [-1, 2.5, True, '20'])
def test_translate_bad_offset(offset):
    with pytest.raises(ValueError, match='offset must be an int >= 0'):
        RandomTranslate(offset=offset)


def test_gamma_formula_and_bounds():
    g = RandomGamma.gamma_from_z
    assert g(0.) == 1.
    a = 0.05
    lo, hi = g(a), g(-a)
    r = a / math.sqrt(2)
    expect = math.log(0.5 + r) / math.log(0.5 - r)
    assert math.isclose(lo, expect) and lo < 1 < hi
    assert math.isclose(hi, 1 / expect)  # gamma(-z) = 1 / gamma(z)
    # gamma decreases with z: the extremes of U(-a, a) are the bounds
    zs = np.linspace(-a, a, 101)
    gammas = [g(z) for z in zs]
    assert np.all(np.diff(gammas) < 0)
    assert math.isclose(max(gammas), hi) and math.isclose(min(gammas), lo)
    # a = 0.5, the largest allowed: finite bounds
    assert 0 < g(0.5) < 1 < g(-0.5) < 20


def test_gamma_zero_range_is_identity():
    rng = np.random.default_rng(0)
    img8 = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    out = RandomGamma(a=0)(dict(img=img8.copy()))['img']
    assert out.dtype == np.uint8 and np.array_equal(out, img8)
    imgf = rng.uniform(0, 255, (5, 6, 3)).astype(np.float32)
    outf = RandomGamma(a=0.)(dict(img=imgf.copy()))['img']
    assert outf.dtype == np.float32 and np.allclose(outf, imgf)


@pytest.mark.parametrize('z', [-0.05, 0.05, 0.02])
def test_gamma_applies_formula(monkeypatch, z):
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1)
    monkeypatch.setattr(np.random, 'uniform', lambda lo, hi: z)
    out = RandomGamma(a=0.05)(dict(img=img.copy()))['img']
    gamma = RandomGamma.gamma_from_z(z)
    expect = np.rint((img / 255.)**gamma * 255).astype(np.uint8)
    assert out.dtype == np.uint8 and np.array_equal(out, expect)
    assert out[0, 0, 0] == 0 and out[-1, -1, -1] == 255  # range kept
    if z > 0:
        assert (out >= img).all()  # gamma < 1 brightens
    else:
        assert (out <= img).all()


def test_gamma_random_samples_within_bounds():
    np.random.seed(1)
    img = np.linspace(1, 254, 64, dtype=np.float32).reshape(8, 8)
    t = RandomGamma(a=0.05)
    lo = (img / 255.)**RandomGamma.gamma_from_z(-0.05) * 255
    hi = (img / 255.)**RandomGamma.gamma_from_z(0.05) * 255
    for _ in range(50):
        out = t(dict(img=img.copy()))['img']
        assert (out >= lo - 1e-3).all() and (out <= hi + 1e-3).all()


@pytest.mark.parametrize('a', [-0.01, 0.51, 1, '0.05'])
def test_gamma_bad_range(a):
    with pytest.raises(ValueError, match=r'a must be a number in \[0, 0.5\]'):
        RandomGamma(a=a)


def test_registered():
    assert isinstance(
        TRANSFORMS.build(dict(type='RandomGamma', a=0.05)), RandomGamma)
    assert isinstance(
        TRANSFORMS.build(dict(type='RandomTranslate', offset=20)),
        RandomTranslate)
