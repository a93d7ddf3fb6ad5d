"""FRRN backbone, blocks, baseline and head: structure pinned to the paper.

Pohlen et al., CVPR 2017: Table 1 (widths, unit counts, parameter counts),
Fig. 3 / Eq. 6-7 (FRRU), Sec. 5.1 (ResNet encoder/decoder baseline).
"""
import copy
import gc
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmseg_refinenet.models.backbones import FRRN, FRRNResNetBaseline
from mmseg_refinenet.models.backbones.frrn import FRRNBase
from mmseg_refinenet.models.blocks import FRRU, ResidualUnit
from mmseg_refinenet.models.decode_heads import FRRNHead
from mmseg_refinenet.models.utils import theano_bilinear_upsample

NUM_CLASSES = 19
# a two-stage FRRN, small enough for a few milliseconds per forward
TINY_SPEC = dict(
    arch=None,
    encoder=((1, 16), (1, 32)),
    decoder=((1, 16), ),
    base_channels=8,
    residual_channels=4,
    num_stem_units=1)


def num_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


def make_head(**kwargs):
    return FRRNHead(
        in_channels=48,
        channels=48,
        num_classes=NUM_CLASSES,
        loss_decode=dict(type='BootstrappedCrossEntropyLoss', k=64),
        **kwargs)


@pytest.mark.parametrize('arch, paper', [('A', 17.7e6), ('B', 24.8e6)])
def test_parameter_count_matches_table1(arch, paper):
    # Table 1: FRRN A 17.7M, FRRN B 24.8M parameters (19 classes)
    n = num_params(FRRN(arch=arch), make_head())
    assert abs(n - paper) / paper < 0.005, n


def test_baseline_parameter_count_matches_sec51():
    # Sec. 5.1: the ResNet encoder/decoder baseline has 16.7M parameters;
    # we get 16.80M (the paper does not specify the skip merge), so 1%.
    n = num_params(FRRNResNetBaseline(arch='A'), make_head())
    assert abs(n - 16.7e6) / 16.7e6 < 0.01, n
    # the concatenating variant is clearly larger than the paper's network
    n_cat = num_params(FRRNResNetBaseline(skip_mode='concat'), make_head())
    assert n_cat > 17.5e6


def test_baseline_reuses_frrn_stem_and_initialisation():
    """Sec. 5.1: the baseline is FRRN without the residual stream, so the
    stem (5x5 conv, RUs) and the initialisation are FRRN's own: built from
    the same seed, both stems are the same layers with the same weights,
    and both networks are initialised by the same init_cfg."""
    spec = dict(TINY_SPEC)
    spec.pop('residual_channels')
    models = []
    for cls, kwargs in ((FRRN, TINY_SPEC), (FRRNResNetBaseline, spec)):
        torch.manual_seed(0)
        model = cls(**kwargs)
        assert isinstance(model, FRRNBase)
        models.append(model)
    frrn, baseline = models
    assert frrn.init_cfg == baseline.init_cfg
    stem = {k: v for k, v in frrn.state_dict().items()
            if k.startswith('stem_')}
    assert stem and {k: v for k, v in baseline.state_dict().items()
                     if k.startswith('stem_')}.keys() == stem.keys()
    for key, value in stem.items():
        assert torch.equal(baseline.state_dict()[key], value), key


def test_stage_layout_matches_table1():
    a = FRRN(arch='A')
    assert [len(s) for s in a.encoder_stages] == [3, 4, 2, 2]
    assert [len(s) for s in a.decoder_stages] == [2, 2, 2]
    assert [[u.out_channels for u in s] for s in a.encoder_stages] == [
        [96] * 3, [192] * 4, [384] * 2, [384] * 2]
    assert [[u.scale for u in s] for s in a.encoder_stages] == [
        [2] * 3, [4] * 4, [8] * 2, [16] * 2]
    assert [[u.out_channels for u in s] for s in a.decoder_stages] == [
        [192] * 2, [192] * 2, [96] * 2]
    assert [[u.scale for u in s] for s in a.decoder_stages] == [
        [8] * 2, [4] * 2, [2] * 2]
    b = FRRN(arch='B')
    assert [len(s) for s in b.encoder_stages] == [3, 4, 2, 2, 2]
    assert [len(s) for s in b.decoder_stages] == [2, 2, 2, 2]
    assert [s[0].out_channels for s in b.encoder_stages] == [
        96, 192, 384, 384, 384]
    assert [s[0].scale for s in b.decoder_stages] == [16, 8, 4, 2]
    assert [s[0].out_channels for s in b.decoder_stages] == [
        192, 192, 192, 96]
    # stem 5x5 conv 48 + 3 RU 48; end: 3 RU 48, the first projects 96+32
    assert a.stem_conv.conv.kernel_size == (5, 5)
    assert [u.out_channels for u in a.stem_units] == [48] * 3
    assert [u.in_channels for u in a.end_units] == [128, 48, 48]
    assert a.residual_conv.conv.out_channels == 32
    assert a.residual_conv.with_norm
    assert not a.residual_conv.with_activation


@pytest.mark.parametrize('arch, shape', [('A', (2, 3, 64, 64)),
                                         ('B', (1, 3, 64, 128))])
def test_logits_at_full_resolution(arch, shape):
    backbone = FRRN(arch=arch).eval()
    head = make_head().eval()
    x = torch.randn(shape)
    with torch.no_grad():
        feats = backbone(x)
        logits = head(feats)
    assert isinstance(feats, (list, tuple)) and len(feats) == 1
    assert feats[0].shape == (shape[0], 48) + shape[2:]
    assert logits.shape == (shape[0], NUM_CLASSES) + shape[2:]


def test_frru_data_flow_is_sequential():
    """Each FRRU is fed by the previous FRRU's (pooling, residual) outputs.

    A public port feeds every FRRU of a stage the same input; here the
    pooling input of unit j > 0 of a stage must be unit j - 1's pooling
    output (the same tensor), the first unit of a stage must get the
    previous stage's output max-pooled / upsampled, and the residual stream
    must pass through all FRRUs in order.
    """
    model = FRRN(arch='A').eval()
    records = []
    stems = {}

    def hook(module, args, output):
        records.append((module, args, output))

    handles = [
        frru.register_forward_hook(hook)
        for stages in (model.encoder_stages, model.decoder_stages)
        for stage in stages for frru in stage
    ]
    handles.append(
        model.stem_units[-1].register_forward_hook(
            lambda m, a, o: stems.__setitem__('stem', o)))
    handles.append(
        model.residual_conv.register_forward_hook(
            lambda m, a, o: stems.__setitem__('res', o)))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()

    units = [u for stages in (model.encoder_stages, model.decoder_stages)
             for stage in stages for u in stage]
    assert [r[0] for r in records] == units  # every FRRU once, in order
    # first FRRU: stem output max-pooled 2x2 and the split-off residual
    first_args = records[0][1]
    assert torch.equal(first_args[0], F.max_pool2d(stems['stem'], 2))
    assert first_args[1] is stems['res']
    stage_starts = set()
    i = 0
    for stage in list(model.encoder_stages) + list(model.decoder_stages):
        stage_starts.add(i)
        i += len(stage)
    num_encoder = sum(len(s) for s in model.encoder_stages)
    for k in range(1, len(records)):
        (_, args, _), (_, _, prev_out) = records[k], records[k - 1]
        # the residual stream runs through every FRRU in sequence
        assert args[1] is prev_out[1]
        if k not in stage_starts:
            assert args[0] is prev_out[0]
        elif k < num_encoder:
            assert torch.equal(args[0], F.max_pool2d(prev_out[0], 2))
        else:
            up = F.interpolate(prev_out[0], scale_factor=2, mode='bilinear')
            assert torch.equal(args[0], up)
        # the pooling stream is at 1/scale of the residual stream
        scale = records[k][0].scale
        assert args[0].shape[-1] * scale == args[1].shape[-1]


def test_frru_follows_eq_6_7():
    torch.manual_seed(0)
    frru = FRRU(8, 16, scale=4, residual_channels=4).eval()
    y, z = torch.randn(1, 8, 4, 4), torch.randn(1, 4, 16, 16)
    with torch.no_grad():
        y_n, z_n = frru(y, z)
        h = frru.conv2(frru.conv1(torch.cat([y, F.max_pool2d(z, 4)], 1)))
        g = frru.conv_res(h).repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert torch.allclose(y_n, h)
    assert torch.allclose(z_n, z + g)
    assert frru.conv_res.conv.bias is not None  # 1x1 conv with bias
    assert y_n.shape == (1, 16, 4, 4) and z_n.shape == z.shape


def test_residual_unit():
    ru = ResidualUnit(8, 8).eval()
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        assert torch.allclose(ru(x), x + ru.conv2(ru.conv1(x)))
    # no ReLU after the sum: outputs can be negative
    assert (ru(x) < 0).any()
    assert isinstance(ru.shortcut, torch.nn.Identity)
    proj = ResidualUnit(8, 4)
    assert proj.shortcut.conv.kernel_size == (1, 1)
    assert proj(x).shape == (1, 4, 5, 5)


@pytest.mark.parametrize('cls', [FRRN, FRRNResNetBaseline])
def test_with_cp_same_loss_and_gradients(cls):
    torch.manual_seed(0)
    ref = cls(arch='A', with_cp=False)
    ckpt = cls(arch='A', with_cp=True)
    ckpt.load_state_dict(ref.state_dict())
    assert all(u.with_cp for u in ckpt.modules()
               if isinstance(u, (FRRU, ResidualUnit)))
    head = make_head()
    x = torch.randn(2, 3, 32, 32)
    losses, grads = [], []
    for model in (ref, ckpt):
        model.train()
        head.zero_grad()
        loss = head(model(x)).square().mean()
        loss.backward()
        losses.append(loss.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.allclose(losses[0], losses[1])
    for g0, g1 in zip(*grads):
        assert torch.allclose(g0, g1, rtol=1e-4, atol=1e-6)


def test_baseline_structure_and_forward():
    model = FRRNResNetBaseline(arch='A').eval()
    assert not any(isinstance(m, FRRU) for m in model.modules())
    assert [len(s) for s in model.encoder_stages] == [3, 4, 2, 2]
    assert [len(s) for s in model.decoder_stages] == [2, 2, 2]
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 64))
    assert out[0].shape == (1, 48, 32, 64)
    cat = FRRNResNetBaseline(arch='A', skip_mode='concat').eval()
    with torch.no_grad():
        assert cat(torch.randn(1, 3, 32, 64))[0].shape == (1, 48, 32, 64)


@pytest.mark.parametrize('cls', [FRRN, FRRNResNetBaseline])
@pytest.mark.parametrize('arch, divisor, size', [('A', 16, (40, 64)),
                                                 ('B', 32, (64, 48))])
def test_bad_input_size_names_size_and_divisor(cls, arch, divisor, size):
    model = cls(arch=arch)
    h, w = size
    with pytest.raises(ValueError, match=rf'{h}x{w}.*divisible by '
                       rf'{divisor}.*size_divisor={divisor}'):
        model(torch.randn(1, 3, h, w))


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='C'), r"invalid arch 'C'.*\['A', 'B'\]"),
    (dict(arch=None), 'both encoder and decoder'),
    (dict(encoder=((0, 96), (4, 192))), r'encoder\[0\] num_units'),
    (dict(encoder=((3, 96), (4, -1)), decoder=((2, 96), )),
     r'encoder\[1\] channels must be a positive integer number of '
     r'channels, got -1'),
    (dict(decoder=((2, 192), )), 'decoder must have len'),
    (dict(decoder=((2, 192), (2, 192), (2, 96.5))),
     r'decoder\[2\] channels'),
    (dict(encoder=[96, 192]), r'encoder\[0\] must be a \(num_units'),
    (dict(base_channels=0), 'base_channels must be a positive int'),
])
@pytest.mark.parametrize('cls', [FRRN, FRRNResNetBaseline])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def _theano_upsample_1d(x, ratio):
    """Theano's ``bilinear_upsampling`` along one axis, step by step as
    ``theano/tensor/nnet/abstract_conv.py`` does it: repeat the first and
    last sample, then the gradient of a stride-``ratio`` convolution with
    the normalised triangular kernel (a transposed convolution), cropped by
    the padding ``2r - (r - 1) // 2 - 1`` to ``ratio * n`` samples."""
    n = len(x)
    padded = np.concatenate([x[:1], x, x[-1:]])
    half = np.arange(1, ratio + 1, dtype=np.float64)
    kernel = np.concatenate([half, half[-2::-1]]) / ratio
    full = np.zeros((len(padded) - 1) * ratio + len(kernel))
    for j, value in enumerate(padded):
        full[j * ratio:j * ratio + len(kernel)] += value * kernel
    pad = 2 * ratio - (ratio - 1) // 2 - 1
    return full[pad:pad + ratio * n]


@pytest.mark.parametrize('ratio', [2, 3, 4])
def test_theano_upsample_matches_theanos_algorithm(ratio):
    x = np.random.default_rng(ratio).standard_normal((2, 3, 5, 7))
    expected = np.apply_along_axis(_theano_upsample_1d, 3, x, ratio)
    expected = np.apply_along_axis(_theano_upsample_1d, 2, expected, ratio)
    out = theano_bilinear_upsample(torch.from_numpy(x), ratio)
    assert out.shape == (2, 3, 5 * ratio, 7 * ratio)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


def test_theano_upsample_x2_closed_form_differs_from_interpolate():
    x = torch.tensor([0., 4., 8., 0., 2.]).view(1, 1, 1, 5)
    out = theano_bilinear_upsample(x, 2)[0, 0, 0]
    # out[2i] = x[i], out[2i+1] = (x[i] + x[i+1]) / 2, last repeated
    assert out.tolist() == [0., 2., 4., 6., 8., 4., 0., 1., 2., 2.]
    torch_out = F.interpolate(
        x, scale_factor=2, mode='bilinear', align_corners=False)[0, 0, 0]
    assert not torch.allclose(out, torch_out)
    with pytest.raises(ValueError, match='ratio must be a positive integer'):
        theano_bilinear_upsample(x, 1.5)


def test_frrn_theano_upsample_mode(monkeypatch):
    spec = TINY_SPEC
    torch.manual_seed(0)
    bilinear = FRRN(**spec).eval()
    theano = FRRN(upsample_mode='theano', **spec).eval()
    theano.load_state_dict(bilinear.state_dict())
    import mmseg_refinenet.models.backbones.frrn as frrn_module
    calls = []

    def spy(y, ratio):
        calls.append((tuple(y.shape), ratio))
        return theano_bilinear_upsample(y, ratio)

    monkeypatch.setattr(frrn_module, 'theano_bilinear_upsample', spy)
    x = torch.randn(1, 3, 8, 12)
    with torch.no_grad():
        out_theano = theano(x)[0]
        out_bilinear = bilinear(x)[0]
    assert out_theano.shape == out_bilinear.shape == (1, 8, 8, 12)
    assert not torch.allclose(out_theano, out_bilinear)
    # every x2 upsampling of the pooling stream, the decoder stage's and
    # the last one to full resolution, is Theano's
    assert calls == [((1, 32, 2, 3), 2), ((1, 16, 4, 6), 2)]
    with pytest.raises(ValueError, match="upsample_mode must be one of"):
        FRRN(upsample_mode='nearest', **spec)
    with pytest.raises(ValueError, match='align_corners=True has no'):
        FRRN(upsample_mode='theano', align_corners=True, **spec)


def test_bad_frrn_only_arguments():
    with pytest.raises(ValueError, match='residual_channels'):
        FRRN(residual_channels=0)
    with pytest.raises(ValueError, match='skip_mode'):
        FRRNResNetBaseline(skip_mode='sum')
    with pytest.raises(ValueError, match='scale must be a positive int'):
        FRRU(8, 8, scale=0)


def test_custom_spec():
    model = FRRN(**TINY_SPEC).eval()
    assert model.size_divisor == 4
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 12))[0].shape == (1, 8, 8, 12)


def test_head_is_only_the_classifier():
    head = make_head()
    assert num_params(head) == 48 * NUM_CLASSES + NUM_CLASSES
    assert head.dropout is None
    x = torch.randn(1, 48, 8, 8)
    assert torch.allclose(head([x]), head.conv_seg(x))
    # the features before the classifier are the backbone's map itself
    assert head._forward_feature([x]) is x
    with pytest.raises(ValueError, match='channels must equal in_channels'):
        FRRNHead(in_channels=48, channels=32, num_classes=NUM_CLASSES)


def test_deepcopy_and_norm_cfg():
    model = FRRN(arch='A', norm_cfg=dict(type='GN', num_groups=4))
    assert not any(
        isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    copy.deepcopy(model)


@pytest.mark.parametrize('with_cp', [False, True])
def test_frru_compact_pooling_frees_z_same_results(with_cp):
    """Compact pooling: the unit's full-resolution input z is not kept for
    the backward pass (with or without with_cp), and nothing changes."""
    torch.manual_seed(0)
    frrus = [
        FRRU(4, 8, scale=4, residual_channels=3, with_cp=with_cp,
             compact_pooling=flag).train() for flag in (False, True)
    ]
    frrus[1].load_state_dict(frrus[0].state_dict())
    y = torch.randn(2, 4, 4, 5, requires_grad=True)
    z0 = torch.randn(2, 3, 16, 20, requires_grad=True)
    kept, results = [], []
    for frru in frrus:
        z = z0 * 1  # a non-leaf, as inside the network
        ref = weakref.ref(z)
        y_n, z_n = frru(y, z)
        del z
        gc.collect()
        kept.append(ref() is not None)
        loss = y_n.square().sum() + z_n.sin().sum()
        grads = torch.autograd.grad(loss, [y, z0] + list(frru.parameters()))
        results.append((y_n, z_n, grads))
    assert kept == [True, False]
    (y0, zn0, grads0), (y1, zn1, grads1) = results
    torch.testing.assert_close(y1, y0, rtol=0, atol=0)
    torch.testing.assert_close(zn1, zn0, rtol=0, atol=0)
    for a, b in zip(grads1, grads0):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_frrn_compact_pooling_same_results():
    torch.manual_seed(0)
    spec = dict(arch=None, encoder=((1, 8), (2, 16)), decoder=((1, 8), ),
                base_channels=8, residual_channels=4, num_stem_units=1)
    models = [FRRN(compact_pooling=flag, **spec).train()
              for flag in (False, True)]
    models[1].load_state_dict(models[0].state_dict())
    assert all(u.compact_pooling for u in models[1].modules()
               if isinstance(u, FRRU))
    assert not any(u.compact_pooling for u in models[0].modules()
                   if isinstance(u, FRRU))
    x = torch.randn(2, 3, 16, 24)
    results = []
    for model in models:
        out = model(x)[0]
        grads = torch.autograd.grad(out.square().mean(),
                                    list(model.parameters()))
        results.append((out, grads))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    for a, b in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
