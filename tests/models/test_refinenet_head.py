"""RefineNetHead: structure against the released RefineNet, variants,
resolution, gradient flow and configuration errors."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.model import revert_sync_batchnorm

from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401
from mmseg_refinenet.converters.refinenet import (official_refinenet_shapes,
                                                  official_to_mmseg_key)

register_all_modules()


def build_refinenet(depth=101, num_classes=21, lightweight=False, **head):
    head_cfg = dict(
        type='RefineNetHead',
        in_channels=[256, 512, 1024, 2048],
        in_index=[0, 1, 2, 3],
        channels=256,
        num_classes=num_classes)
    if lightweight:
        head_cfg.update(
            adapt_kernel_size=1,
            fusion_kernel_size=1,
            crp_kernel_size=1,
            num_input_rcus=0,
            num_output_rcus=0,
            dropout_ratio=0)
    head_cfg.update(head)
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(
                type='ResNet',
                depth=depth,
                out_indices=(0, 1, 2, 3),
                style='pytorch'),
            decode_head=head_cfg))


@pytest.mark.parametrize('depth,lightweight', [(101, False), (50, True)])
def test_same_parameters_and_layers_as_released_refinenet(depth, lightweight):
    model = build_refinenet(depth, 21, lightweight)
    ours = {k: tuple(v.shape) for k, v in model.named_parameters()}
    official = official_refinenet_shapes(depth, 21, lightweight)
    assert sum(p.numel() for p in model.parameters()) == sum(
        torch.Size(s).numel() for s in official.values())
    mapped = {official_to_mmseg_key(k): s for k, s in official.items()}
    assert len(mapped) == len(official)  # one-to-one
    assert mapped == ours


def test_released_refinenet101_parameter_count():
    # 118,052,437 = torchvision ResNet-101 without fc (42,500,160) + the
    # RefineNet decoder of rf101 with 21 classes.
    model = build_refinenet(101, 21)
    assert sum(p.numel() for p in model.parameters()) == 118_052_437


def _small_head(**kwargs):
    cfg = dict(
        type='RefineNetHead',
        in_channels=[8, 16, 32, 64],
        in_index=[0, 1, 2, 3],
        channels=8,
        num_classes=5)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _feats(n=1, h=32, w=40, widths=(8, 16, 32, 64)):
    return [
        torch.randn(n, c, -(-h // 2**i), -(-w // 2**i))
        for i, c in enumerate(widths)
    ]


@pytest.mark.parametrize(
    'cascade,block_inputs', [
        (None, [1, 2, 2, 2]),
        (((2, 3), (0, 1)), [2, 3]),
        (((0, 1, 2, 3), ), [4]),
    ],
    ids=['4-cascaded', '2-cascaded', 'single'])
def test_cascade_variants(cascade, block_inputs):
    head = _small_head(cascade=cascade)
    assert [len(b.in_channels) for b in head.blocks] == block_inputs
    out = head(_feats())
    assert out.shape == (1, 5, 32, 40)


def test_default_cascade_runs_deepest_first():
    head = _small_head()
    assert head.cascade == [[3], [2], [1], [0]]
    # widths: adapt (8, 8, 8, 16); block 1 stays 16 wide, the rest 8
    assert [b.out_channels for b in head.blocks] == [16, 8, 8, 8]
    assert [[len(r) for r in b.input_rcus] for b in head.blocks] == [
        [2], [2, 0], [2, 0], [2, 0]
    ]


def test_crp_off_ablation_has_no_crp():
    head = _small_head(with_crp=False)
    assert all(b.crp is None for b in head.blocks)
    assert head(_feats()).shape == (1, 5, 32, 40)


def test_crp_recompute_pooling_reaches_every_block():
    assert all(b.crp.recompute_pooling for b in _small_head().blocks)
    head = _small_head(crp_recompute_pooling=False)
    assert not any(b.crp.recompute_pooling for b in head.blocks)


def test_input_dropout_applies_to_deepest_two_in_training_only():
    head = _small_head(input_dropout_ratio=0.5)
    assert head.input_dropout_index == [2, 3]
    seen = []
    for conv in head.adapt_convs:
        conv.register_forward_pre_hook(
            lambda m, args: seen.append((args[0] == 0).float().mean()))
    feats = [f.abs() + 1 for f in _feats()]
    head.train()
    head(feats)
    assert seen[0] == 0 and seen[1] == 0
    assert 0.3 < seen[2] < 0.7 and 0.3 < seen[3] < 0.7
    seen.clear()
    head.eval()
    head(feats)
    assert all(s == 0 for s in seen)


def test_classifier_dropout_is_element_wise_as_released():
    """The released models drop single activations before the classifier
    (guosheng/refinenet's DropOut, nn.Dropout in its PyTorch port), not
    whole channels as BaseDecodeHead's Dropout2d does."""
    head = _small_head()
    assert type(head.dropout) is torch.nn.Dropout
    assert head.dropout.p == 0.5
    head.train()
    x = torch.ones(2, 64, 8, 8)
    dropped = head.dropout(x) == 0
    # per (sample, channel): some but not all positions dropped
    per_channel = dropped.float().mean(dim=(2, 3))
    assert ((per_channel > 0) & (per_channel < 1)).all()
    assert _small_head(dropout_ratio=0).dropout is None


def test_zero_init_survives_an_init_cfg_of_the_head():
    """init_weights reaches every block: an init_cfg that re-initialises
    all convolutions of the head leaves the RCUs and CRPs starting as the
    identity (zero_init_residual), instead of silently undoing it."""
    head = _small_head(
        init_cfg=dict(type='Kaiming', layer='Conv2d', bias=0.1))
    head.init_weights()
    rcus = [
        rcu for block in head.blocks
        for rcus in list(block.input_rcus) + [block.output_rcus]
        for rcu in rcus
    ]
    assert len(rcus) == 4 * 2 + 4 * 3
    for rcu in rcus:
        assert not rcu.conv2.conv.weight.any()
        assert rcu.conv1.conv.weight.any()
    for block in head.blocks:
        assert all(not conv.conv.weight.any() for conv in block.crp.convs)
    # the adaptation convolutions did get the head's init_cfg
    assert all(conv.conv.weight.any() for conv in head.adapt_convs)


def two_scale_refinenet(**backbone):
    """A narrow 2-scale RefineNet (Fig. 7c) on ResNet-18s."""
    return MODELS.build(
        dict(
            type='EncoderDecoder',
            backbone=dict(
                type='MultiScaleBackbone',
                scales=(1.2, 0.6),
                backbone=dict(
                    type='ResNet', depth=18, out_indices=(0, 1, 2, 3),
                    **backbone)),
            decode_head=dict(
                type='RefineNetHead',
                in_channels=[64, 128, 256, 512] * 2,
                in_index=list(range(8)),
                channels=32,
                adapt_channels=[32, 32, 32, 64] * 2,
                cascade=((3, 7), (2, 6), (1, 5), (0, 4)),
                num_classes=3)))


def test_two_scale_refinenet():
    model = two_scale_refinenet()
    assert len(model.backbone.backbones) == 2
    b0, b1 = model.backbone.backbones
    assert b0.conv1.weight.data_ptr() != b1.conv1.weight.data_ptr()
    x = torch.randn(1, 3, 50, 60)
    feats = model.backbone(x)
    assert [f.shape[2:] for f in feats[:1] + feats[4:5]] == [(15, 18),
                                                             (8, 9)]
    out = model(x, mode='tensor')
    assert out.shape == (1, 3, 15, 18)  # 1/4 of the 1.2x image
    block_inputs = [len(b.in_channels) for b in model.decode_head.blocks]
    assert block_inputs == [2, 3, 3, 3]


def test_pretrained_init_cfg_reaches_every_scale(tmp_path):
    """MultiScaleBackbone's copies each load the backbone's ImageNet
    init_cfg when the Runner calls init_weights (before, the copies sat in a
    torch ModuleList that init_weights never entered: both trained from
    random weights, silently)."""
    resnet = two_scale_refinenet().backbone.backbones[0]
    weights = {
        k: torch.full_like(v, 0.125) if v.is_floating_point() else v
        for k, v in resnet.state_dict().items()
    }
    path = tmp_path / 'resnet18-imagenet.pth'
    torch.save(weights, path)
    model = two_scale_refinenet(
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for scale in model.backbone.backbones:
        for k, v in scale.state_dict().items():
            assert torch.equal(v, weights[k]), k


def test_lightweight_refinenet_by_config():
    model = build_refinenet(50, 21, lightweight=True)
    head = model.decode_head
    assert all(len(b.output_rcus) == 0 for b in head.blocks)
    assert all(len(r) == 0 for b in head.blocks for r in b.input_rcus)
    assert head.adapt_convs[0].conv.kernel_size == (1, 1)
    assert head.conv_seg.kernel_size == (3, 3)


def _resnet18_refinenet(**head):
    cfg = dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor'),
        test_cfg=ConfigDict(mode='whole'),
        backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3)),
        decode_head=dict(
            type='RefineNetHead',
            in_channels=[64, 128, 256, 512],
            in_index=[0, 1, 2, 3],
            channels=32,
            num_classes=4))
    cfg['decode_head'].update(head)
    return MODELS.build(cfg)


def test_odd_input_size_logits_cover_whole_image():
    from mmseg.structures import SegDataSample
    model = _resnet18_refinenet().eval()
    x = torch.randn(1, 3, 97, 131)
    logits = model(x, mode='tensor')
    assert logits.shape == (1, 4, 25, 33)  # ceil(97/4), ceil(131/4)
    sample = SegDataSample(
        metainfo=dict(
            img_shape=(97, 131), ori_shape=(97, 131), pad_shape=(97, 131)))
    with torch.no_grad():
        pred = model.predict(x, [sample])[0]
    assert pred.seg_logits.data.shape == (4, 97, 131)
    assert pred.pred_sem_seg.data.shape == (1, 97, 131)


def test_gradients_reach_first_backbone_layer_through_each_path():
    """Each backbone level alone carries gradient back to conv1: the
    long-range (stage 1..4) paths of the head are all connected."""
    model = _resnet18_refinenet(dropout_ratio=0).train()
    x = torch.randn(2, 3, 64, 64)
    feats = model.backbone(x)
    for level in range(4):
        model.zero_grad()
        # gradient only through one backbone level
        detached = [f if i == level else f.detach()
                    for i, f in enumerate(feats)]
        model.decode_head(detached).square().mean().backward(
            retain_graph=True)
        grad = model.backbone.conv1.weight.grad
        assert grad is not None and grad.abs().sum() > 0, level
        assert model.decode_head.adapt_convs[level].conv.weight.grad.abs(
        ).sum() > 0


def test_works_with_syncbn_with_cp_and_auxiliary_head(seg_samples):
    norm_cfg = dict(type='SyncBN', requires_grad=True)
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(type='SegDataPreProcessor'),
            backbone=dict(
                type='ResNetV1c',
                depth=18,
                out_indices=(0, 1, 2, 3),
                norm_cfg=norm_cfg,
                with_cp=True),
            decode_head=dict(
                type='RefineNetHead',
                in_channels=[64, 128, 256, 512],
                in_index=[0, 1, 2, 3],
                channels=32,
                num_classes=4,
                with_cp=True),
            auxiliary_head=dict(
                type='FCNHead',
                in_channels=256,
                in_index=2,
                channels=16,
                num_convs=1,
                num_classes=4,
                norm_cfg=norm_cfg,
                loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))))
    model = revert_sync_batchnorm(model).train()
    samples = seg_samples(2, 64, 64, 4)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    assert set(losses) >= {'decode.loss_ce', 'aux.loss_ce'}
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0


def test_with_cp_head_gives_same_gradients():
    torch.manual_seed(0)
    head = _small_head(dropout_ratio=0)
    head_cp = _small_head(dropout_ratio=0, with_cp=True)
    head_cp.load_state_dict(head.state_dict())
    feats = [f.requires_grad_() for f in _feats(2)]
    g = torch.autograd.grad(head(feats).square().sum(), feats)
    g_cp = torch.autograd.grad(head_cp(feats).square().sum(), feats)
    for a, b in zip(g, g_cp):
        torch.testing.assert_close(a, b)


# ---- configuration errors ------------------------------------------------


def test_wrong_in_channels_fails_at_first_forward_before_computing():
    head = _small_head(in_channels=[8, 16, 32, 128])
    called = []
    head.adapt_convs[0].register_forward_hook(
        lambda *a: called.append(True))
    with pytest.raises(ValueError,
                       match=r'decode_head.in_channels=\[8, 16, 32, 128\].*'
                       r'set decode_head.in_channels=\[8, 16, 32, 64\]'):
        head(_feats())
    assert not called


def test_in_index_beyond_backbone_outputs_fails_clearly():
    head = _small_head(in_index=[0, 1, 2, 5])
    with pytest.raises(ValueError, match=r'in_index\[3\]=5.*4 feature maps'):
        head(_feats())


@pytest.mark.parametrize(
    'kwargs,match', [
        (dict(cascade=((3, ), (2, ), (1, ), (4, ))),
         r'cascade\[3\] names input 4.*4 inputs'),
        (dict(cascade=((3, ), (2, ), (1, ))), r'inputs \[0\].*no block'),
        (dict(cascade=((3, ), (3, 2), (1, 0))), r'already takes'),
        (dict(crp_stages=0), r'crp_stages=0 with with_crp=True.*'
         r'with_crp=False'),
        (dict(channels=16, adapt_channels=[8, 8, 8, 16]),
         r'channels=16.*last RefineNet block outputs 8'),
        (dict(adapt_channels=[8, 8, 8]), r'adapt_channels has 3 entries'),
        (dict(adapt_channels=[8, 8, 0, 16]), r'adapt_channels\[2\]'),
        (dict(input_dropout_index=(7, )), r'input_dropout_index'),
        (dict(in_index=[0, 1, 2]), r'same length'),
        (dict(input_fusion_convs=False, cascade=((2, 3), (1, ), (0, ))),
         r'input 1 has no convolution.*out_channels=8.*in_channels\[1\]=16'),
        (dict(classifier_kernel_size=2),
         r'RefineNetHead: classifier_kernel_size must be a positive odd'),
    ],
    ids=[
        'missing-input', 'unused-input', 'duplicate-input', 'zero-crp',
        'channels', 'adapt-len', 'adapt-zero', 'dropout-index', 'index-len',
        'no-fusion-conv-width', 'even-classifier-kernel'
    ])
def test_bad_configuration_fails_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _small_head(**kwargs)


def test_crp_off_with_zero_stages_is_fine():
    head = _small_head(with_crp=False, crp_stages=0)
    assert head(_feats()).shape[1] == 5


def test_forward_is_the_classifier_on_forward_feature():
    torch.manual_seed(0)
    head = _small_head(cascade=((2, 3), (0, 1)), input_dropout_ratio=0.5)
    head.eval()
    feats = _feats()
    with torch.no_grad():
        refined = head._forward_feature(feats)
        logits = head(feats)
    # the last block's output at the largest input's resolution
    assert refined.shape == (1, 8, 32, 40)
    assert torch.equal(logits, head.conv_seg(refined))
    assert torch.equal(logits, head.cls_seg(refined))


def test_input_fusion_convs_off_sums_the_adapted_paths():
    head = _small_head(
        adapt_channels=[8, 8, 8, 8], cascade=((3, 2), (1, 0)),
        input_fusion_convs=False, num_input_rcus=0, num_output_rcus=0,
        with_crp=False).eval()
    first, second = head.blocks
    assert all(isinstance(c, torch.nn.Identity) for c in first.fusion.convs)
    assert [type(c).__name__ for c in second.fusion.convs] == [
        'Identity', 'Identity', 'ConvModule']
    feats = _feats()
    with torch.no_grad():
        f = [conv(x) for conv, x in zip(head.adapt_convs, feats)]
        # block 1: the two deepest adapted paths summed at the larger one's
        # resolution (path 2), path 3 upsampled
        up3 = torch.nn.functional.interpolate(
            f[3], size=f[2].shape[2:], mode='bilinear', align_corners=False)
        y1 = f[2] + up3
        assert torch.allclose(head.blocks[0]([f[3], f[2]]), y1, atol=1e-6)
        prev = second.fusion.convs[2](y1)
        prev = torch.nn.functional.interpolate(
            prev, size=f[0].shape[2:], mode='bilinear', align_corners=False)
        up1 = torch.nn.functional.interpolate(
            f[1], size=f[0].shape[2:], mode='bilinear', align_corners=False)
        expected = head.conv_seg(f[0] + up1 + prev)
        torch.testing.assert_close(head(feats), expected)


# ---- the kernel, pooling and order options against torch ops ---------------


def _rcu_by_hand(x, rcu, k):
    """x + conv2(relu(conv1(relu(x)))), ``k`` x ``k`` convolutions."""
    h = F.conv2d(F.relu(x), rcu.conv1.conv.weight, rcu.conv1.conv.bias,
                 padding=k // 2)
    return x + F.conv2d(F.relu(h), rcu.conv2.conv.weight, padding=k // 2)


def _crp_by_hand(x, crp, order, pool, k):
    """relu(x) + the chained stages, each pool(conv(s)) or conv(pool(s))
    with a ``pool`` x ``pool`` stride-1 max-pooling."""
    x = F.relu(x)
    out = stage = x
    for conv in crp.convs:
        weight = conv.conv.weight
        if order == 'conv_pool':
            stage = F.max_pool2d(F.conv2d(stage, weight, padding=k // 2),
                                 pool, 1, pool // 2)
        else:
            stage = F.conv2d(F.max_pool2d(stage, pool, 1, pool // 2),
                             weight, padding=k // 2)
        out = out + stage
    return out


@pytest.mark.parametrize(
    'order,pool,rcu_k,cls_k',
    [('pool_conv', 5, 3, 3), ('conv_pool', 5, 3, 3), ('pool_conv', 3, 3, 3),
     ('conv_pool', 7, 5, 1), ('pool_conv', 3, 1, 5)])
def test_crp_order_pool_size_and_kernels_compute_as_built_by_hand(
        order, pool, rcu_k, cls_k):
    """A one-block head with ``crp_order``, ``crp_pool_size``,
    ``rcu_kernel_size`` and ``classifier_kernel_size`` set gives the logits
    of the same computation written with torch ops and the head's own
    weights (all random, none zero-initialised)."""
    torch.manual_seed(0)
    head = _small_head(
        in_channels=[6], in_index=[0], adapt_channels=[8], channels=8,
        crp_order=order, crp_pool_size=pool, rcu_kernel_size=rcu_k,
        classifier_kernel_size=cls_k, num_input_rcus=2, num_output_rcus=1,
        crp_stages=3, adapt_kernel_size=3, crp_kernel_size=3,
        input_dropout_index=()).eval()
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.3)
    x = torch.randn(2, 6, 12, 10)
    block, = head.blocks
    with torch.no_grad():
        got = head([x])
        want = F.conv2d(x, head.adapt_convs[0].conv.weight, padding=1)
        for rcu in block.input_rcus[0]:
            want = _rcu_by_hand(want, rcu, rcu_k)
        want = _crp_by_hand(want, block.crp, order, pool, 3)
        for rcu in block.output_rcus:
            want = _rcu_by_hand(want, rcu, rcu_k)
        want = F.conv2d(want, head.conv_seg.weight, head.conv_seg.bias,
                        padding=cls_k // 2)
    assert got.shape == (2, 5, 12, 10)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
