"""Numerics in low precision on the CPU: BootstrappedCrossEntropyLoss,
RefineNetHead and FRRNHead stay finite under bf16 autocast and with fp16
inputs, with extreme logits and with batches that are entirely void."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401

register_all_modules()

NUM_CLASSES = 4
VOID = 255

# (dtype, magnitude): +-1e4 fits bf16 and fp16, +-6e4 is near the top of
# the fp16 range (65504).
EXTREME = [
    pytest.param(torch.bfloat16, 1e4, id='bf16-1e4'),
    pytest.param(torch.float16, 1e4, id='fp16-1e4'),
    pytest.param(torch.float16, 6e4, id='fp16-6e4'),
]


def _labels(void, n=2, size=(32, 32), seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, NUM_CLASSES, (n, *size), generator=g)
    if void:
        labels.fill_(VOID)
    else:
        labels[:, :2] = VOID  # some void pixels in every image
    return labels


def _samples(labels):
    samples = []
    for label in labels:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    return samples


def _extreme_logits(dtype, magnitude, shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, shape, generator=g) * 2 - 1
    return (sign * magnitude).to(dtype).requires_grad_()


def _loss_cfg(kind):
    if kind == 'boot_ce':
        return dict(type='BootstrappedCrossEntropyLoss', k=128,
                    loss_weight=1.0)
    return dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)


def _head(kind, loss='boot_ce'):
    if kind == 'refinenet':
        cfg = dict(type='RefineNetHead', in_channels=[8, 16, 32, 64],
                   in_index=[0, 1, 2, 3], channels=8, dropout_ratio=0.,
                   num_classes=NUM_CLASSES)
    else:
        cfg = dict(type='FRRNHead', in_channels=16, channels=16,
                   dropout_ratio=0., num_classes=NUM_CLASSES)
    cfg['loss_decode'] = _loss_cfg(loss)
    torch.manual_seed(0)
    return MODELS.build(cfg).train()


def _feats(kind, n=2, dtype=torch.float32):
    g = torch.Generator().manual_seed(2)
    if kind == 'refinenet':
        shapes = [(n, c, 16 // 2**i, 16 // 2**i)
                  for i, c in enumerate((8, 16, 32, 64))]
    else:
        shapes = [(n, 16, 32, 32)]
    return [torch.randn(s, generator=g).to(dtype) for s in shapes]


def _total(losses):
    return sum(v for k, v in losses.items() if k.startswith('loss'))


def _assert_finite_grads(module):
    grads = [(name, p.grad) for name, p in module.named_parameters()
             if p.requires_grad]
    assert grads
    for name, grad in grads:
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name


@pytest.fixture(scope='module')
def fp16_cpu_kernels():
    """Skips a test when this PyTorch has no CPU float16 kernels for the
    layers the heads use (older releases lack them). Probed once, with
    plain torch ops: an error of the code under test is never a skip."""
    x = torch.ones(1, 2, 4, 4, dtype=torch.float16, requires_grad=True)
    weight = torch.ones(2, 2, 3, 3, dtype=torch.float16)
    try:
        y = F.conv2d(x, weight, padding=1)
        y = F.max_pool2d(y, 5, 1, 2)
        y = F.interpolate(y, scale_factor=2, mode='bilinear')
        y.float().sum().backward()
    except RuntimeError as error:
        if 'not implemented for' not in str(error):
            raise
        pytest.skip(f'PyTorch {torch.__version__} has no CPU float16 '
                    f'kernel: {error}')


# -- BootstrappedCrossEntropyLoss on its own ---------------------------------

@pytest.mark.parametrize('void', [False, True], ids=['labels', 'all-void'])
@pytest.mark.parametrize('dtype,magnitude', EXTREME)
def test_bootstrapped_loss_extreme_low_precision_logits(
        dtype, magnitude, void):
    loss_fn = MODELS.build(_loss_cfg('boot_ce'))
    logits = _extreme_logits(dtype, magnitude, (2, NUM_CLASSES, 32, 32))
    labels = _labels(void)
    loss = loss_fn(logits, labels, ignore_index=VOID)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    if void:
        assert loss.item() == 0.0
    else:
        assert loss.item() > 0
    loss.backward()
    assert logits.grad.dtype == dtype
    assert torch.isfinite(logits.grad).all()
    if void:
        assert not logits.grad.any()


@pytest.mark.parametrize('void', [False, True], ids=['labels', 'all-void'])
@pytest.mark.parametrize('magnitude', [1.0, 1e4])
def test_bootstrapped_loss_under_bf16_autocast(magnitude, void):
    loss_fn = MODELS.build(_loss_cfg('boot_ce'))
    logits = _extreme_logits(torch.float32, magnitude,
                             (2, NUM_CLASSES, 32, 32))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = loss_fn(logits * 1, _labels(void), ignore_index=VOID)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    if void:
        assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()


# -- heads: loss_by_feat with extreme logits ---------------------------------

def _case(head, loss, dtype, magnitude):
    name = f'{head}-{loss}-{str(dtype)[6:]}-{magnitude:g}'
    return pytest.param(head, loss, dtype, magnitude, id=name)


HEAD_CASES = [
    _case(head, loss, p.values[0], p.values[1])
    for head in ('refinenet', 'frrn') for loss in ('boot_ce', 'ce')
    for p in EXTREME
]


@pytest.mark.parametrize('head_kind,loss,dtype,magnitude', HEAD_CASES)
def test_head_loss_by_feat_extreme_logits(head_kind, loss, dtype,
                                          magnitude):
    """The heads compute their losses on float32 logits: with MMSeg's
    CrossEntropyLoss on the fp16 logits themselves, the fp16 sum of ~2000
    pixel losses of ~1e4 (at 6e4 even one pixel loss of ~1.2e5) would
    overflow fp16 (max 65504) to inf."""
    head = _head(head_kind, loss)
    # logits at half the label resolution: loss_by_feat resizes them
    logits = _extreme_logits(dtype, magnitude, (2, NUM_CLASSES, 16, 16))
    losses = head.loss_by_feat(logits, _samples(_labels(False)))
    assert losses[f'loss_{loss}'].dtype == torch.float32
    total = _total(losses)
    assert torch.isfinite(total), {k: v for k, v in losses.items()}
    assert torch.isfinite(losses['acc_seg'])
    total.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize('loss', ['boot_ce', 'ce'])
@pytest.mark.parametrize('head_kind', ['refinenet', 'frrn'])
@pytest.mark.parametrize('dtype,magnitude', EXTREME)
def test_head_loss_by_feat_all_void(head_kind, loss, dtype, magnitude):
    head = _head(head_kind, loss)
    logits = _extreme_logits(dtype, magnitude, (2, NUM_CLASSES, 16, 16))
    losses = head.loss_by_feat(logits, _samples(_labels(True)))
    total = _total(losses)
    # both losses give exactly 0 when every pixel is void (MMSeg's
    # CrossEntropyLoss: sum 0 over numel, avg_non_ignore=False)
    assert torch.isfinite(total)
    assert total.item() == 0.0
    assert torch.isfinite(losses['acc_seg'])
    total.backward()
    assert torch.isfinite(logits.grad).all()
    assert not logits.grad.any()


def test_ce_avg_non_ignore_all_void_is_finite():
    """MMSeg divides by (0 + eps) when avg_non_ignore=True: still 0."""
    cfg = dict(type='FRRNHead', in_channels=16, channels=16,
               num_classes=NUM_CLASSES,
               loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                                avg_non_ignore=True, loss_weight=1.0))
    head = MODELS.build(cfg)
    logits = _extreme_logits(torch.bfloat16, 1e4, (2, NUM_CLASSES, 16, 16))
    losses = head.loss_by_feat(logits, _samples(_labels(True)))
    assert torch.isfinite(losses['loss_ce'])
    assert losses['loss_ce'].item() == 0.0


# -- heads: full forward + loss in low precision -----------------------------

@pytest.mark.parametrize('void', [False, True], ids=['labels', 'all-void'])
@pytest.mark.parametrize('loss', ['boot_ce', 'ce'])
@pytest.mark.parametrize('scale', [1.0, 1e3])
@pytest.mark.parametrize('head_kind', ['refinenet', 'frrn'])
def test_head_loss_under_bf16_autocast(head_kind, scale, loss, void):
    head = _head(head_kind, loss)
    feats = [f * scale for f in _feats(head_kind)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = head.loss(feats, _samples(_labels(void)), None)
    total = _total(losses)
    assert torch.isfinite(total)
    if void:
        assert total.item() == 0.0
    total.backward()
    _assert_finite_grads(head)


@pytest.mark.parametrize('void', [False, True], ids=['labels', 'all-void'])
@pytest.mark.parametrize('head_kind', ['refinenet', 'frrn'])
def test_head_loss_fp16(head_kind, void, fp16_cpu_kernels):
    head = _head(head_kind, 'boot_ce').half()
    feats = _feats(head_kind, dtype=torch.float16)
    losses = head.loss(feats, _samples(_labels(void)), None)
    total = _total(losses)
    total.backward()
    assert torch.isfinite(total)
    if void:
        assert total.item() == 0.0
    _assert_finite_grads(head)
