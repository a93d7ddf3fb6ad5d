"""Bootstrapped cross-entropy loss (Eq. 10 of Pohlen et al., CVPR 2017)."""
import math

import pytest
import torch

from mmseg.models.decode_heads import FCNHead
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData
from mmseg_refinenet.models.decode_heads import FRRNHead
from mmseg_refinenet.models.losses import BootstrappedCrossEntropyLoss

IGNORE = 255


def brute_force(logits, label, k, ignore_index=IGNORE, weight=None,
                reduction='mean'):
    """Eq. 10 with explicit loops: per image, mean of the k largest pixel
    losses among non-void pixels (all of them if fewer, 0 if none), each
    pixel loss times its ``weight`` first when given; then the mean over
    the batch (``reduction='none'``: the list of per-image values)."""
    n, c, h, w = logits.shape
    per_image = []
    for i in range(n):
        losses = []
        for y in range(h):
            for x in range(w):
                t = int(label[i, y, x])
                if t == ignore_index:
                    continue
                scores = [float(logits[i, j, y, x]) for j in range(c)]
                m = max(scores)
                lse = m + math.log(sum(math.exp(s - m) for s in scores))
                factor = 1. if weight is None else float(weight[i, y, x])
                losses.append(factor * (lse - scores[t]))
        losses.sort(reverse=True)
        top = losses[:k]
        per_image.append(sum(top) / len(top) if top else 0.)
    if reduction == 'none':
        return per_image
    return sum(per_image) / n


def random_case(seed, n=3, c=5, h=6, w=7, void_frac=0.3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g) * 3
    label = torch.randint(0, c, (n, h, w), generator=g)
    void = torch.rand(n, h, w, generator=g) < void_frac
    label[void] = IGNORE
    return logits, label


@pytest.mark.parametrize('k', [1, 5, 17, 42, 1000])
@pytest.mark.parametrize('seed', [0, 1])
def test_matches_brute_force(k, seed):
    logits, label = random_case(seed)
    loss = BootstrappedCrossEntropyLoss(k=k)(
        logits, label, ignore_index=IGNORE)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert math.isclose(
        loss.item(), brute_force(logits, label, k), rel_tol=1e-5)


def test_fewer_valid_pixels_than_k_uses_all_of_them():
    logits, label = random_case(2, n=1)
    label[:] = IGNORE
    label[0, 1, 2], label[0, 3, 4], label[0, 5, 0] = 0, 1, 2
    loss = BootstrappedCrossEntropyLoss(k=10)(logits, label)
    pixel = torch.nn.functional.cross_entropy(
        logits, label, ignore_index=IGNORE, reduction='sum') / 3
    assert torch.allclose(loss, pixel)
    assert math.isclose(loss.item(), brute_force(logits, label, 10),
                        rel_tol=1e-5)


def test_void_only_image_contributes_zero_not_nan():
    logits, label = random_case(3, n=2)
    label[1] = IGNORE
    logits.requires_grad_(True)
    loss_fn = BootstrappedCrossEntropyLoss(k=8)
    loss = loss_fn(logits, label)
    assert torch.isfinite(loss)
    expected = brute_force(logits[:1].detach(), label[:1], 8) / 2
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[1] == 0).all()
    per_image = loss_fn(logits, label, reduction_override='none')
    assert per_image.shape == (2, ) and per_image[1] == 0
    # an all-void batch
    label[:] = IGNORE
    assert loss_fn(logits, label).item() == 0.


def test_k_largest_are_selected():
    # pixel losses 0..5 (exactly) in one image: k=2 gives mean(5, 4)
    logits = torch.zeros(1, 2, 1, 6)
    logits[0, 1, 0] = torch.arange(6.)
    label = torch.zeros(1, 1, 6, dtype=torch.long)
    loss = BootstrappedCrossEntropyLoss(k=2)(logits, label)
    pixel = torch.log1p(torch.exp(torch.arange(6.)))
    assert torch.allclose(loss, (pixel[5] + pixel[4]) / 2)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_is_finite_and_float32(dtype):
    logits, label = random_case(4)
    logits = logits * 1000  # huge logits: overflow in fp16 arithmetic
    loss_fn = BootstrappedCrossEntropyLoss(k=10)
    low = loss_fn(logits.to(dtype), label)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    ref = loss_fn(logits.to(dtype).float(), label)
    assert torch.allclose(low, ref)


def test_weight_reduction_and_loss_weight():
    logits, label = random_case(5)
    base = BootstrappedCrossEntropyLoss(k=7)
    twice = BootstrappedCrossEntropyLoss(k=7, loss_weight=2.)
    assert torch.allclose(twice(logits, label), 2 * base(logits, label))
    ones = torch.ones(label.shape)
    assert torch.allclose(base(logits, label, weight=ones),
                          base(logits, label))
    assert torch.allclose(
        base(logits, label, reduction_override='sum'),
        3 * base(logits, label))


@pytest.mark.parametrize('k', [3, 11])
def test_non_uniform_weight_scales_before_the_selection(k):
    """Pixel weights (here per class, as a class-balancing sampler would
    give, with void pixels weighted too) multiply the pixel losses before
    the k largest are chosen, so they change which pixels count."""
    logits, label = random_case(6)
    class_weight = torch.tensor([0.1, 4.0, 1.0, 0.5, 2.5])
    weight = class_weight[label.clamp(max=4)]
    weight[label == IGNORE] = 7.0  # must not bring void pixels back
    loss_fn = BootstrappedCrossEntropyLoss(k=k)
    loss = loss_fn(logits, label, weight=weight, ignore_index=IGNORE)
    want = brute_force(logits, label, k, weight=weight)
    assert math.isclose(loss.item(), want, rel_tol=1e-5)
    per_image = loss_fn(logits, label, weight=weight, ignore_index=IGNORE,
                        reduction_override='none')
    for got, ref in zip(per_image.tolist(),
                        brute_force(logits, label, k, weight=weight,
                                    reduction='none')):
        assert math.isclose(got, ref, rel_tol=1e-5)
    # the case tells weighting before and after the selection apart
    n, h, w = label.shape
    unweighted = torch.nn.functional.cross_entropy(
        logits, label, ignore_index=IGNORE, reduction='none')
    after = []
    for i in range(n):
        valid = label[i] != IGNORE
        order = unweighted[i][valid].argsort(descending=True)[:k]
        after.append((unweighted[i][valid] * weight[i][valid])[order].mean())
    assert not math.isclose(want, torch.stack(after).mean().item(),
                            rel_tol=1e-3)


@pytest.mark.parametrize('k', [0, -3, 2.5, True, '8192'])
def test_bad_k(k):
    with pytest.raises(ValueError, match='k .*must be a positive int'):
        BootstrappedCrossEntropyLoss(k=k)


def make_samples(label):
    return [
        SegDataSample(gt_sem_seg=PixelData(data=lab[None]))
        for lab in label
    ]


@pytest.mark.parametrize('head_cls', [FRRNHead, FCNHead])
def test_as_loss_decode_of_a_head(head_cls):
    torch.manual_seed(0)
    extra = dict(num_convs=1, concat_input=False) if head_cls is FCNHead \
        else {}
    head = head_cls(
        in_channels=8,
        channels=8,
        num_classes=5,
        loss_decode=dict(type='BootstrappedCrossEntropyLoss', k=20),
        **extra)
    feats = [torch.randn(2, 8, 6, 7)]
    _, label = random_case(6, n=2)
    losses = head.loss(feats, make_samples(label), train_cfg=dict())
    assert set(losses) == {'loss_boot_ce', 'acc_seg'}
    assert torch.isfinite(losses['loss_boot_ce'])
    if head_cls is FRRNHead:
        logits = head(feats)
        assert math.isclose(losses['loss_boot_ce'].item(),
                            brute_force(logits.detach(), label, 20),
                            rel_tol=1e-5)
    losses['loss_boot_ce'].backward()


def test_overflowing_pixel_loss_is_not_dropped():
    """A non-void pixel whose loss overflows float32 must make the loss
    inf, never be silently left out of the top-k mean."""
    from mmseg_refinenet.models.losses import bootstrapped_cross_entropy
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0, 0, 0] = 3e38  # class 0 hugely favoured ...
    logits[0, 1, 0, 0] = -3e38
    label = torch.ones(1, 2, 2, dtype=torch.long)  # ... but the label is 1
    label[0, 1, 1] = 255
    loss = bootstrapped_cross_entropy(logits, label, k=2)
    assert torch.isinf(loss) and loss > 0
